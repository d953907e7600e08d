"""Benchmark: rendering throughput of :func:`latentedit.render.render.render_edit` against the bare generator.

Both sides push the same N codes through the same generator at the same batch size, in images per second:

- bare: ``generator(z)`` per batch, nothing else (no edit, no conversion, no copy);
- render: what the ``render_edit`` rule runs per α — apply the edit to all codes, latent-classifier logits, the
  generator per batch, conversion to uint8 and the copy back to the CPU.

    ratio = throughput(render) / throughput(bare)      (1.0 = rendering adds nothing to the generator)

Defaults: the shipped digits generator (``checkpoints/digits/dlsgan.pt``), an LW-shaped affine edit and a latent
classifier of the default widths, N = 5000 codes, batch 500 (the config default), median of 5 runs.

Usage::

    python bench/render_throughput.py [--checkpoint PATH] [--n 5000] [--batch 500] [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from _timing import timed  # bench/ is on sys.path when run as a script

from latentedit.dlsgan.checkpoint import load_dlsgan
from latentedit.edits.affine import AffineEdit
from latentedit.edits.model import affine_parameters
from latentedit.labels.classifiers import LatentClassifier
from latentedit.render.render import render_edit

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=REPO / "checkpoints/digits/dlsgan.pt")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    g, _, _, _ = load_dlsgan(args.checkpoint, device)
    d = g.z_dim
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(args.n, d, generator=gen)
    edit = AffineEdit(d)
    with torch.no_grad():
        edit.weight.normal_(0, 0.01, generator=gen)
        edit.bias.normal_(0, 0.1, generator=gen)
    model = {**affine_parameters(edit), "method": "bench", "edit": "bench"}
    classifier = LatentClassifier((d,), 14).eval()
    z_dev = z.to(device)

    @torch.no_grad()
    def bare():
        for i in range(0, args.n, args.batch):
            g(z_dev[i:i + args.batch])

    def render():
        render_edit(model, g, z.numpy(), [1.0], classifier, device, args.batch)

    t_bare, t_render = timed(bare, device, args.repeats), timed(render, device, args.repeats)
    ratio = t_bare / t_render
    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads, N={args.n}, "
          f"batch {args.batch}, median of {args.repeats}")
    print(f"bare generator  {args.n / t_bare:10.0f} images/s")
    print(f"render_edit     {args.n / t_render:10.0f} images/s")
    print(f"ratio render/bare = {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
