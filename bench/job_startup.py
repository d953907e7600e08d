"""What a workflow job costs besides its work, with and without :mod:`latentedit.forkserver`: a synthetic workflow
of ``--jobs`` ``script:`` jobs shaped like ours, each importing what our jobs import (torch, numpy, h5py, pandas,
matplotlib) and then burning ``--cpu-seconds`` of CPU on one thread, run with ``--cores 2``, the Snakefile wired as
``rules/common.smk`` wires it.

For each variant it prints the wall seconds, the CPU seconds of everything the run started (Snakemake, the jobs, the
server: ``getrusage`` of the finished run) and how many jobs started as forks of the server, then the ratios. The
first jobs of a run start as fresh interpreters while the server imports (≈ 2 s).

Usage::

    python bench/job_startup.py [--jobs 40] [--cpu-seconds 1]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# rules/common.smk's wiring of the fork server, for a Snakefile outside the checkout (also tests/test_forkserver.py)
WIRING = """
import sys
sys.path.insert(0, {repo!r})
from latentedit.forkserver import route_scripts, start_server, stop_server
assert route_scripts()

onstart:
    start_server(workflow)

onsuccess:
    stop_server()

onerror:
    stop_server()
"""

SNAKEFILE = WIRING + """
rule all:
    input: expand("out/{{i}}.txt", i=range({jobs}))

rule job:
    output: "out/{{i}}.txt"
    threads: 1
    script: "job.py"
"""

JOB = """
import os, sys, time
forked = "torch" in sys.modules  # a fresh interpreter has not imported it yet
import h5py, matplotlib.pyplot, numpy, pandas, torch
torch.set_num_threads(1)
start = time.process_time()
x = torch.randn(256, 256)
while time.process_time() - start < {cpu_seconds}:
    x = torch.tanh(x @ x.T / 256)
with open(snakemake.output[0], "w") as f:
    f.write(f"{{int(forked)}}\\n")
"""


def run(work: Path, forkserver: bool, jobs: int, cpu_seconds: float) -> dict[str, float]:
    """Run the synthetic workflow once: wall seconds, CPU seconds of the whole run, jobs started as forks."""
    work.mkdir(parents=True)
    (work / "Snakefile").write_text(SNAKEFILE.format(repo=str(REPO), jobs=jobs))
    (work / "job.py").write_text(JOB.format(cpu_seconds=cpu_seconds))
    env = dict(os.environ)
    env.pop("LATENTEDIT_FORKSERVER", None)
    if not forkserver:
        env["LATENTEDIT_FORKSERVER"] = "off"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--quiet"], cwd=work, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"snakemake failed in {work}:\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    forked = sum(int((work / "out" / f"{i}.txt").read_text()) for i in range(jobs))
    return {"wall_s": wall, "cpu_s": cpu, "forked": forked}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--cpu-seconds", type=float, default=1.0)
    args = parser.parse_args(argv)
    print(f"{args.jobs} script jobs importing torch, numpy, h5py, pandas and matplotlib, then {args.cpu_seconds:g} s "
          f"of CPU each, --cores 2")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for forkserver in (False, True):
            name = "fork server" if forkserver else "fresh interpreters"
            results[name] = r = run(Path(tmp) / name.replace(" ", "_"), forkserver, args.jobs, args.cpu_seconds)
            print(f"{name:19s} wall {r['wall_s']:6.1f} s, CPU {r['cpu_s']:6.1f} s, "
                  f"{r['forked']} of {args.jobs} jobs forked")
    before, after = results["fresh interpreters"], results["fork server"]
    per_job = (before["cpu_s"] - after["cpu_s"]) / max(after["forked"], 1)
    print(f"wall {before['wall_s'] / after['wall_s']:.2f}x, CPU {before['cpu_s'] / after['cpu_s']:.2f}x less with the "
          f"fork server ({per_job:.2f} CPU-s saved per forked job)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
