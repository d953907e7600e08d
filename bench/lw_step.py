"""Benchmark: one LW training step against the bare matmuls of its cost matrices, at the same N and D.

One LW step (:func:`latentedit.edits.lw.lw_step`, the function training calls) edits a batch of N source codes,
solves the debiased Sinkhorn problem S_ε(edited, target) with GeomLoss's tensorized backend, backpropagates to
the affine edit and takes an Adam step. S_ε needs four N×N cost matrices, C(x,y), C(y,x), C(x,x) and C(y,y); each
is one (N, D) × (D, N) matmul. The reference here times exactly those four matmuls, nothing else, so

    ratio = t(LW step) / t(4 cost matmuls)

says how much of a step is the unavoidable O(N²·D) work. At small D the ε-annealing loop (≈ 14 log-sum-exp
passes over N×N matrices, O(N²) each, and memory-bound) dominates; at W+ size (D = 18·512 = 9216) the matmuls do.

Codes are unit Gaussians; D = 9216 is laid out as W+ (N, 18, 512) with a block-diagonal edit over all 18
layers, as the faces world trains it. The blur follows the training default (0.5·σ_rms, blur_fraction 0.5) and
scaling 0.8, so the iteration count matches training. ``--preservation`` adds a step with L_pres (an MLP latent
classifier with 14 outputs, LT's widths at D = 9216).

Usage::

    python bench/lw_step.py                       # N = 256…4096, D = 64 and 9216, all cores
    python bench/lw_step.py --n 256 1024 --d 64 --repeats 5 --csv results/bench/lw_step.csv

Times are medians over ``--repeats`` runs after one warm-up run; the table is printed and optionally written.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
from _timing import timed  # bench/ is on sys.path when run as a script

from latentedit.edits.affine import AffineEdit
from latentedit.edits.lw import Preservation, lw_step
from latentedit.edits.sinkhorn import DEFAULT_BLUR_FRACTION, DEFAULT_SCALING, default_blur
from latentedit.labels.classifiers import LatentClassifier

W_PLUS_LAYERS = 18  # D = 9216 = 18 × 512 is StyleGAN2's W+ code


def codes(n: int, d: int, shift: float, generator: torch.Generator, device) -> torch.Tensor:
    z = torch.randn(n, d, generator=generator) + shift
    if d % 512 == 0 and d // 512 == W_PLUS_LAYERS:
        z = z.reshape(n, W_PLUS_LAYERS, 512)
    return z.to(device)


def make_edit(z: torch.Tensor) -> AffineEdit:
    return AffineEdit(z.shape[1]) if z.dim() == 2 else AffineEdit(z.shape[2], n_layers=z.shape[1])


def bench_one(n: int, d: int, repeats: int, preservation: bool, device: torch.device) -> dict:
    gen = torch.Generator().manual_seed(0)
    x, y = codes(n, d, 0.0, gen, device), codes(n, d, 0.5, gen, device)
    blur = default_blur(x, y, DEFAULT_BLUR_FRACTION)
    edit = make_edit(x).to(device)
    opt = torch.optim.Adam(edit.parameters(), lr=1.0e-3)
    row = {"N": n, "D": d, "blur": blur}
    row["lw_step_s"] = timed(lambda: lw_step(edit, opt, x, y, None, None, blur, DEFAULT_SCALING), device, repeats)

    xf, yf = x.reshape(n, -1), y.reshape(n, -1)

    def cost_matmuls():
        for p, q in ((xf, yf), (yf, xf), (xf, xf), (yf, yf)):
            p @ q.T

    row["matmuls_s"] = timed(cost_matmuls, device, repeats)
    row["ratio"] = row["lw_step_s"] / row["matmuls_s"]
    row["matmul_gflops"] = 4 * 2 * n * n * xf.shape[1] / row["matmuls_s"] / 1e9
    if preservation:
        hidden = (2048, 512) if xf.shape[1] > 1024 else (256, 256)
        classifier = LatentClassifier(x.shape[1:], 14, hidden=hidden).to(device).eval()
        classifier.requires_grad_(False)
        with torch.no_grad():
            f_x = classifier(x)
        pres = Preservation(classifier, torch.full((14,), 0.5, device=device), default_blur(f_x), 1.0)
        row["lw_pres_step_s"] = timed(lambda: lw_step(edit, opt, x, y, None, None, blur, DEFAULT_SCALING, pres,
                                                      f_x), device, repeats)
        row["pres_ratio"] = row["lw_pres_step_s"] / row["matmuls_s"]
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096])
    parser.add_argument("--d", type=int, nargs="+", default=[64, 9216])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--preservation", action="store_true", help="also time a step with L_pres")
    parser.add_argument("--csv", type=Path, default=None, help="also write the table here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads, scaling "
          f"{DEFAULT_SCALING}, blur {DEFAULT_BLUR_FRACTION}·σ_rms, median of {args.repeats} after 1 warm-up",
          flush=True)
    rows = []
    for d in args.d:
        for n in args.n:
            row = bench_one(n, d, args.repeats, args.preservation, device)
            rows.append(row)
            extra = (f"  LW+pres step {row['lw_pres_step_s'] * 1e3:9.1f} ms ({row['pres_ratio']:6.1f}×)"
                     if args.preservation else "")
            print(f"N={n:5d} D={d:5d}  LW step {row['lw_step_s'] * 1e3:9.1f} ms  4 cost matmuls "
                  f"{row['matmuls_s'] * 1e3:8.2f} ms ({row['matmul_gflops']:6.1f} GFLOP/s)  ratio "
                  f"{row['ratio']:7.1f}{extra}", flush=True)
    if args.csv:
        import pandas as pd

        args.csv.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(args.csv, index=False, float_format="%.6g")
        print(f"wrote {args.csv}")
    return 0 if all(math.isfinite(r["ratio"]) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
