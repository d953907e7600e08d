"""Benchmark: the pipeline's CPU loops with glibc malloc's default thresholds vs :mod:`latentedit.allocator`'s.

Each workload runs in a fresh interpreter (the setting is process-wide and cannot be undone), once with
``LATENTEDIT_MALLOC=default`` and once without, alternating, ``--repeats`` times; the child calls
:func:`latentedit.allocator.keep_freed_memory` as every workflow job does (:func:`latentedit.jobs.setup_job`)
and reports the wall time of its timed part, its own system CPU time and its peak RSS. Before its loop the child
allocates and frees a 30 MiB block, as a job reading its stores does: glibc's thresholds adapt to what a process has
freed, and a fresh interpreter's would overstate what a job gains. Workloads, each the loop of
one default-run stage on the shipped digits W+ generator (``checkpoints/digits_stylegan2``):

* ``project``: per-image Adam steps through the compiled renderer (:func:`latentedit.projection.project.
  optimize_codes`), batches of 128, ``--images`` images × 25 steps, two threads — the projection job. The compile
  happens before the timed part; the targets are the generator's own images of other codes.
* ``render``: the renderer's forward on 300 codes at 11 strengths in batches of ``render.batch_size`` (128), one
  thread — an evaluation job's rendering.
* ``lw``: 100 warm-started LW steps (:func:`latentedit.edits.lw.lw_step`) at N = 512 on 8 × 128 W+ codes, one
  thread — an LW training job.

Usage::

    python bench/allocator.py                       # all three, 2 repeats
    python bench/allocator.py --workloads project --repeats 3 --images 768

Prints a line per run and, per workload, the medians and the ratio default / tuned.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from latentedit.allocator import SWITCH, keep_freed_memory

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "checkpoints" / "digits_stylegan2" / "dlsgan.pt"
THREADS = {"project": 2, "render": 1, "lw": 1}


def renderer():
    from latentedit.dlsgan.checkpoint import load_dlsgan
    from latentedit.projection.codes import digits_renderer

    g, _, _, _ = load_dlsgan(CHECKPOINT, "cpu")
    return digits_renderer(g, "wplus").eval()


def wplus_codes(n: int, seed: int):
    import torch

    return torch.randn(n, 8, 128, generator=torch.Generator().manual_seed(seed)) * 0.5


def project(images: int) -> float:
    import torch

    from latentedit.imaging import generate_uint8
    from latentedit.projection.project import compiled_renderer, optimize_codes

    r = renderer()
    r.requires_grad_(False)
    targets = generate_uint8(r, wplus_codes(images, 1), 128).numpy()
    start = wplus_codes(images, 2).numpy()
    forward, compiled = compiled_renderer(r, torch.as_tensor(start[:128]))  # compiled before the clock starts
    if not compiled:
        raise RuntimeError("torch.compile of the renderer failed")
    t0 = time.perf_counter()
    optimize_codes(forward, start, targets, "cpu", steps=25, lr=0.05, batch_size=128)
    return time.perf_counter() - t0


def render() -> float:
    import torch

    r, codes = renderer(), wplus_codes(300, 1)
    t0 = time.perf_counter()
    with torch.no_grad():
        for alpha in torch.linspace(0, 2, 11):
            for batch in (codes * (1 + alpha)).split(128):
                r(batch)
    return time.perf_counter() - t0


def lw() -> float:
    import torch

    from latentedit.edits.affine import AffineEdit
    from latentedit.edits.lw import WarmStarts, lw_step
    from latentedit.edits.sinkhorn import DEFAULT_BLUR_FRACTION, DEFAULT_SCALING, default_blur
    from latentedit.training_utils import Adam

    n, pool = 512, 6
    xs = [wplus_codes(n, 10 + k) for k in range(pool)]
    ys = [wplus_codes(n, 20 + k) + 0.3 for k in range(pool)]
    edit = AffineEdit(128, n_layers=8)
    opt = Adam(edit.parameters(), lr=1e-3)
    blur = default_blur(xs[0], ys[0], DEFAULT_BLUR_FRACTION)
    warm, rows = WarmStarts(pool * n, pool * n), [torch.arange(k * n, (k + 1) * n) for k in range(pool)]
    t0 = time.perf_counter()
    for t in range(100):
        k, j = t % pool, (t % pool + t // pool) % pool
        lw_step(edit, opt, xs[k], ys[j], None, None, blur, DEFAULT_SCALING, warm=warm, idx_src=rows[k],
                idx_tgt=rows[j])
    return time.perf_counter() - t0


def child(workload: str, images: int) -> None:
    import numpy as np
    import torch

    tuned = keep_freed_memory()
    torch.set_num_threads(THREADS[workload])
    # glibc's dynamic thresholds depend on what the process freed before: a job has read its stores by the time its
    # loop runs, and a freed mmapped block of up to 32 MiB raises them to its size (trim: twice that). Do the same,
    # so that "default" is glibc as a job meets it, not a fresh interpreter's 128 KiB.
    np.ones(30 * 2**20, dtype=np.uint8)
    seconds = project(images) if workload == "project" else render() if workload == "render" else lw()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"tuned": tuned, "seconds": seconds, "sys_s": usage.ru_stime, "user_s": usage.ru_utime,
                      "max_rss_mb": usage.ru_maxrss / 1024, "minor_faults": usage.ru_minflt}))


def run(workload: str, setting: str, images: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k != SWITCH}
    if setting == "default":
        env[SWITCH] = "default"
    out = subprocess.run([sys.executable, __file__, "--child", workload, "--images", str(images)], env=env,
                         capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        raise RuntimeError(f"{workload} ({setting}) failed:\n{out.stderr[-3000:]}")
    row = json.loads(out.stdout.strip().splitlines()[-1])
    if row["tuned"] != (setting == "tuned"):
        raise RuntimeError(f"{workload}: asked for {setting}, the child reports tuned={row['tuned']}")
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", nargs="+", choices=list(THREADS), default=list(THREADS))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--images", type=int, default=384, help="project: images (a multiple of 128)")
    parser.add_argument("--child", choices=list(THREADS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.images)
        return 0
    if args.images % 128:
        parser.error("--images must be a multiple of 128 (the compiled renderer's batch)")
    print(f"each run a fresh interpreter; 'default' = LATENTEDIT_MALLOC=default (glibc's thresholds), 'tuned' = "
          f"latentedit.allocator; {args.repeats} repeats, alternating", flush=True)
    for workload in args.workloads:
        rows = {"default": [], "tuned": []}
        for i in range(args.repeats):
            for setting in (("default", "tuned") if i % 2 == 0 else ("tuned", "default")):
                row = run(workload, setting, args.images)
                rows[setting].append(row)
                print(f"  {workload:8s} {setting:8s} {row['seconds']:7.2f} s  sys {row['sys_s']:6.2f} s  "
                      f"minor faults {row['minor_faults']:9d}  peak RSS {row['max_rss_mb']:6.0f} MB", flush=True)
        med = {s: {k: statistics.median(r[k] for r in rs) for k in ("seconds", "sys_s", "max_rss_mb")}
               for s, rs in rows.items()}
        print(f"{workload:8s} ({THREADS[workload]} thread{'s' if THREADS[workload] > 1 else ''}): default "
              f"{med['default']['seconds']:.2f} s, tuned {med['tuned']['seconds']:.2f} s, "
              f"default / tuned {med['default']['seconds'] / med['tuned']['seconds']:.2f}×; sys "
              f"{med['default']['sys_s']:.1f} → {med['tuned']['sys_s']:.1f} s; peak RSS "
              f"{med['default']['max_rss_mb']:.0f} → {med['tuned']['max_rss_mb']:.0f} MB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
