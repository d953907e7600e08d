"""Benchmark: per-image cost of the digits world's CPU rendering and inversion loops against their batch size.

Every digits job that renders or inverts images loops over batches; the batch size changes only the
rounding of the results, not the maths. On a CPU it changes the speed: a batch of 500 32-px images at 64 channels is
131 MB per activation, far beyond the caches, while 64–128 images fit. This benchmark times, in one run, each loop at
each batch size and prints milliseconds per image (per image-step for the inversion) and

    speed-up = t(previous default batch) / t(new default batch)

Workloads (the shipped checkpoints; N images or codes; median of ``--repeats`` runs):

- ``render wplus``: the StyleGAN2 DLSGAN rendering W+ codes, eager, one thread (rule evaluate_edit renders 300
  codes per strength, so ``render.batch_size`` 500 meant batches of 300; now 128);
- ``render z``: the DCGAN rendering z codes, eager, one thread (the Z world's evaluate_edit);
- ``invert wplus``: one Adam step of the per-image inversion (forward and backward through the W+ renderer), two
  threads, eager or with ``--compile`` the compiled renderer rule project runs (``projection.optimize_batch_size``:
  256 → 128; compiling costs ≈ 25 s per batch size).

Usage::

    python bench/batch_size.py [--n 2000] [--repeats 3] [--compile]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from _timing import timed  # bench/ is on sys.path when run as a script

from latentedit.dlsgan.checkpoint import load_dlsgan
from latentedit.imaging import generate_uint8, to_model_range
from latentedit.projection.codes import digits_renderer, style_codes
from latentedit.projection.project import compiled_renderer
from latentedit.training_utils import Adam

REPO = Path(__file__).resolve().parents[1]
WPLUS = REPO / "checkpoints/digits_stylegan2/dlsgan.pt"
Z = REPO / "checkpoints/digits/dlsgan.pt"
CPU = torch.device("cpu")
# workload → (threads, batch sizes, previous default, new default)
WORKLOADS = {
    "render wplus": (1, (32, 64, 128, 300), 300, 128),
    "render z": (1, (32, 64, 128, 300), 300, 128),
    "invert wplus": (2, (32, 64, 128, 256), 256, 128),
}


def per_image(name: str, batch: int, n: int, repeats: int, compile: bool, ctx: dict) -> float:
    """Seconds per image (per image-step for ``invert wplus``) of workload ``name`` at ``batch``."""
    if name == "render wplus":
        codes = ctx["wplus_codes"][:n]
        return timed(lambda: generate_uint8(ctx["wplus_renderer"], codes, batch), CPU, repeats) / len(codes)
    if name == "render z":
        codes = ctx["z_codes"][:n]
        return timed(lambda: generate_uint8(ctx["z_renderer"], codes, batch), CPU, repeats) / len(codes)
    renderer = ctx["wplus_renderer"]
    c = ctx["wplus_codes"][np.arange(batch) % len(ctx["wplus_codes"])].clone()
    forward = compiled_renderer(renderer, c)[0] if compile else renderer
    x = to_model_range(ctx["images"][np.arange(batch) % len(ctx["images"])], CPU)
    c.requires_grad_(True)
    opt = Adam([c], lr=0.1, betas=(0.7, 0.999))

    def step():
        opt.zero_grad(set_to_none=True)
        (forward(c) - x).pow(2).flatten(1).mean(1).sum().backward()
        opt.step()

    steps = max(1, n // batch)
    return timed(lambda: [step() for _ in range(steps)], CPU, repeats) / (steps * batch)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="images or codes per timed run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="time the inversion through the compiled renderer")
    parser.add_argument("--only", nargs="*", choices=list(WORKLOADS), default=list(WORKLOADS))
    args = parser.parse_args(argv)
    gen = torch.Generator().manual_seed(0)
    g_w, _, s_w, _ = load_dlsgan(WPLUS, CPU)
    g_z, _, s_z, _ = load_dlsgan(Z, CPU)
    with torch.no_grad():
        wplus_codes = style_codes(g_w, torch.randn(args.n, s_w.numel(), generator=gen) * s_w, "wplus")
        z_codes = torch.randn(args.n, s_z.numel(), generator=gen) * s_z
        z_renderer = digits_renderer(g_z, "z", str(Z)).eval()
        images = generate_uint8(z_renderer, z_codes, 64).numpy()
    wplus_renderer = digits_renderer(g_w, "wplus", str(WPLUS)).eval().requires_grad_(False)
    ctx = {"wplus_renderer": wplus_renderer, "wplus_codes": wplus_codes, "z_renderer": z_renderer,
           "z_codes": z_codes, "images": images}
    print(f"N = {args.n}, median of {args.repeats}; ms per image (invert: per image-step"
          f"{', compiled' if args.compile else ', eager'})")
    for name in args.only:
        threads, batches, old, new = WORKLOADS[name]
        torch.set_num_threads(threads)
        times = {}
        for b in batches:
            grad = torch.enable_grad() if name == "invert wplus" else torch.no_grad()
            with grad:
                times[b] = per_image(name, b, args.n, args.repeats, args.compile, ctx)
        row = "  ".join(f"{b}: {1e3 * t:.3f}" for b, t in times.items())
        print(f"{name:13s} ({threads} thread{'s' if threads > 1 else ''})  {row}   "
              f"speed-up {old} → {new}: {times[old] / times[new]:.2f}×", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
