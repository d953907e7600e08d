"""Benchmark: one LW training step against the irreducible work of its Sinkhorn solver, at the same N, D and settings.

One LW step (:func:`latentedit.edits.lw.lw_step`, the function training calls) edits a batch of N source codes,
solves the debiased Sinkhorn problem S_ε(edited, target), backpropagates to the affine edit and takes an Adam step.
The solver's work is log-sum-exp passes over N×N matrices: per ε step one soft-min for each of the four potentials of
the three problems (α↔β: f over rows and g over columns of C(x, y); α↔α; β↔β). The **floor** times exactly that —
``torch.logsumexp`` over ready-made N×N matrices, the cold annealing's number of ε steps
(:func:`latentedit.edits.sinkhorn.annealing_steps` at this batch's diameter), four reductions per step, plus the
forward and backward of the last, differentiable update — plus the unavoidable matmuls (below), in the same dtype
and thread count, with no potentials to combine and no edit or optimiser:

    step / floor = t(LW step) / t(floor)

Three steps are timed: **cold** (``warm=None``: the whole ε-annealing, what every step did before warm starts),
**warm** (``LWConfig.warm_start``: every code starts from its potentials of the last solve it took part in, kept in
:class:`latentedit.edits.lw.PotentialTable`, then updates at the final ε until the value settles; the targets'
costs C(y, y) gathered from those computed once, :class:`latentedit.edits.lw.TargetCosts`, as training does — and,
for the speed-up ``warm computing C(y, y) / warm``, once more with the matmul every step, as before) and **first
epoch** (no code solved yet: the previous step's potentials extended to the batch by one c-transform each, four more
cost matrices; ``auto`` does this up to 1024-d codes and solves larger ones cold). The steps cycle through a pool of
8 source and 8 target batches of the same clouds, pairing each source batch with the next target batch on every
pass, so that a warm step meets partners other than those its potentials were solved with, as in training. At large
D the N×N×D matmuls, not the soft-mins, are the work, so the floor also counts the ones no solver avoids: the three
cost matrices and the two gradient products (C(y, x) is a transpose).

Codes are unit Gaussians, the target shifted by 0.5 per dimension; a D divisible by 512 is laid out as W+ (N, D/512,
512) with a block-diagonal edit over all layers, as the faces world trains it (18 × 512 = 9216). The blur follows the
training default (0.25·σ_rms) and scaling 0.8.

``--reach r`` also times the semi-relaxed steps of ``LWConfig.target_reach`` (the targets' marginal relaxed at
reach r·δ, δ the median distance from a source code to its nearest target, ``lw.nearest_target_distance``):
**relaxed cold**, the whole ε-annealing every step, and **relaxed warm**, every code
starting from its potentials in the tables and updating at the final ε until the value moves by less than
:data:`latentedit.edits.sinkhorn.SEMI_RELAXED_WARM_TOLERANCE` (no first-epoch extension: these solves never extend),
with their ratio and the updates a warm solve ran on average.

Usage::

    python bench/lw_step.py                       # N = 256…4096, D = 64, 2048 (4×512) and 9216 (18×512)
    python bench/lw_step.py --n 512 1024 --d 64 --repeats 5 --threads 2 --csv results/bench/lw_step.csv
    python bench/lw_step.py --n 512 --d 1024 --reach 0.2 --threads 1   # the size of the digits' W+ (8 × 128)

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
from latentedit.edits.lw import Preservation, TargetCosts, WarmStarts, lw_step, nearest_target_distance
from latentedit.edits.sinkhorn import (DEFAULT_BLUR_FRACTION, DEFAULT_SCALING, SEMI_RELAXED_WARM_TOLERANCE,
                                       WARM_TOLERANCE, annealing_steps, bounding_diameter, default_blur, flatten_codes,
                                       half_squared_distances)
from latentedit.labels.classifiers import LatentClassifier
from latentedit.training_utils import Adam

LAYER = 512  # a D divisible by 512 is laid out as W+ layers of 512


def codes(n: int, d: int, shift: float, generator: torch.Generator, device) -> torch.Tensor:
    z = torch.randn(n, d, generator=generator) + shift
    if d % LAYER == 0:
        z = z.reshape(n, d // LAYER, LAYER)
    return z.to(device)


def make_edit(z: torch.Tensor) -> AffineEdit:
    return AffineEdit(z.shape[1]) if z.dim() == 2 else AffineEdit(z.shape[2], n_layers=z.shape[1])


def batch_pair(t: int, pool: int) -> tuple[int, int]:
    """Step t's source and target batch: source batch k meets a different target batch on every pass."""
    return t % pool, (t % pool + t // pool) % pool


def floor_work(x: torch.Tensor, y: torch.Tensor, blur: float, scaling: float):
    """The floor's two parts as functions, and its number of ε steps.

    - log-sum-exp: 4 reductions over ready N×N matrices per ε step of the cold annealing, then the forward and
      backward of the last update's reductions that the gradient reaches (over C(x, y) and C(x, x));
    - matmuls: the three cost matrices no solver avoids, C(x, y), C(x, x), C(y, y) (C(y, x) is a transpose), and
      the two N×N×D products of the gradient, P_xy·y and P_xx·x.
    """
    xf, yf = flatten_codes(x), flatten_codes(y)
    n_eps = annealing_steps(bounding_diameter(xf, yf), blur, scaling)
    eps = blur ** 2
    m_xy, m_yx = -half_squared_distances(xf, yf) / eps, -half_squared_distances(yf, xf) / eps
    m_xx, m_yy = -half_squared_distances(xf, xf) / eps, -half_squared_distances(yf, yf) / eps
    last_xy, last_xx = m_xy.clone().requires_grad_(True), m_xx.clone().requires_grad_(True)

    def lse():
        with torch.no_grad():
            for _ in range(n_eps):
                for m in (m_xy, m_yx, m_xx, m_yy):
                    torch.logsumexp(m, dim=1)
            torch.logsumexp(m_yx, dim=1), torch.logsumexp(m_yy, dim=1)
        (torch.logsumexp(last_xy, dim=1).sum() + torch.logsumexp(last_xx, dim=1).sum()).backward()
        last_xy.grad = last_xx.grad = None

    @torch.no_grad()
    def matmuls():
        for p, q in ((xf, yf), (xf, xf), (yf, yf)):
            p @ q.T
        m_xy @ yf, m_xx @ xf

    return lse, matmuls, n_eps


def bench_one(n: int, d: int, repeats: int, preservation: bool, device: torch.device,
              reach: float | None = None) -> dict:
    gen = torch.Generator().manual_seed(0)
    pool = 8  # batches of the same clouds, drawn in turn so that a warm step always meets new points
    xs = [codes(n, d, 0.0, gen, device) for _ in range(pool)]
    ys = [codes(n, d, 0.5, gen, device) for _ in range(pool)]
    x, y = xs[0], ys[0]
    blur = default_blur(x, y, DEFAULT_BLUR_FRACTION)
    edit = make_edit(x).to(device)
    opt = Adam(edit.parameters(), lr=1.0e-3)
    row = {"N": n, "D": d, "blur": blur}
    row["cold_step_s"] = timed(lambda: lw_step(edit, opt, x, y, None, None, blur, DEFAULT_SCALING), device, repeats)
    warm, turn = WarmStarts(pool * n, pool * n), iter(range(10 ** 9))
    index = [torch.arange(k * n, (k + 1) * n, device=device) for k in range(pool)]  # the codes' rows in the tables
    # training gathers each batch's target-to-target costs from those of all its targets (TargetCosts); here each
    # target batch's own, gathered the same way
    target_costs, rows = [TargetCosts.of(y) for y in ys], torch.arange(n, device=device)

    def warm_step(first_epoch: bool = False, gather: bool = True):
        t = next(turn)
        k, j = batch_pair(t, pool)
        if first_epoch:  # no code seen yet: the last solve's potentials, extended to the batch
            warm.tables.clear()
        costs = target_costs[j].batch(rows) if gather and target_costs[j] is not None else None
        lw_step(edit, opt, xs[k], ys[j], None, None, blur, DEFAULT_SCALING, warm=warm, idx_src=index[k],
                idx_tgt=index[j], target_costs=costs)

    for _ in range(pool):  # one epoch: the first step is cold, then every code has potentials in the tables
        warm_step()
    row["warm_step_s"] = timed(warm_step, device, repeats)
    row["warm_own_costs_step_s"] = timed(lambda: warm_step(gather=False), device, repeats)
    row["target_costs_speedup"] = row["warm_own_costs_step_s"] / row["warm_step_s"]
    row["first_epoch_step_s"] = timed(lambda: warm_step(first_epoch=True), device, repeats)
    lse, matmuls, row["eps_steps"] = floor_work(x, y, blur, DEFAULT_SCALING)
    row["floor_lse_s"] = timed(lse, device, repeats)
    row["floor_matmul_s"] = timed(matmuls, device, repeats)
    row["floor_s"] = row["floor_lse_s"] + row["floor_matmul_s"]
    row["cold_ratio"] = row["cold_step_s"] / row["floor_s"]
    row["warm_ratio"] = row["warm_step_s"] / row["floor_s"]
    row["first_epoch_ratio"] = row["first_epoch_step_s"] / row["floor_s"]
    xf = x.reshape(n, -1)
    if preservation:
        hidden = (2048, 512) if xf.shape[1] > 1024 else (256, 256)
        classifier = LatentClassifier(x.shape[1:], 14, hidden=hidden).to(device).eval()
        classifier.requires_grad_(False)
        with torch.no_grad():
            f_x = classifier(x)
        pres = Preservation(classifier, torch.full((14,), 0.5, device=device), default_blur(f_x), 1.0)
        warm_p, rows = WarmStarts(n, n), torch.arange(n, device=device)
        # one batch, every step (the best case for the tables; the step without L_pres above rotates partners)
        lw_step(edit, opt, x, y, None, None, blur, DEFAULT_SCALING, pres, f_x, warm_p, rows, rows)  # fills the tables
        row["warm_pres_step_s"] = timed(lambda: lw_step(edit, opt, x, y, None, None, blur, DEFAULT_SCALING, pres,
                                                        f_x, warm_p, rows, rows), device, repeats)
        row["warm_pres_ratio"] = row["warm_pres_step_s"] / row["floor_s"]
    if reach is not None:
        row.update(relaxed_steps(xs, ys, index, target_costs, rows, edit, opt, blur, reach, repeats, device))
    return row


def relaxed_steps(xs, ys, index, target_costs, rows, edit, opt, blur, reach, repeats, device) -> dict:
    """Cold and warm steps with the targets' marginal relaxed at reach·δ, over the same pool of batches."""
    pool, n = len(xs), len(xs[0])
    reach_abs = reach * nearest_target_distance(torch.cat(xs), torch.cat(ys))
    warm = WarmStarts(pool * n, pool * n, extend=False, tolerance=SEMI_RELAXED_WARM_TOLERANCE)
    turn = iter(range(10 ** 9))

    def step(use_warm: bool):
        t = next(turn)
        k, j = batch_pair(t, pool)
        costs = target_costs[j].batch(rows) if target_costs[j] is not None else None
        lw_step(edit, opt, xs[k], ys[j], None, None, blur, DEFAULT_SCALING, warm=warm if use_warm else None,
                idx_src=index[k], idx_tgt=index[j], target_costs=costs, reach=reach_abs)

    out = {"reach": reach_abs, "relaxed_cold_step_s": timed(lambda: step(False), device, repeats)}
    for _ in range(pool):  # one epoch fills the tables
        step(True)
    warm.solves["wasserstein"].clear()
    out["relaxed_warm_step_s"] = timed(lambda: step(True), device, repeats)
    out["relaxed_warm_updates"] = sum(u for _, u in warm.solves["wasserstein"]) / len(warm.solves["wasserstein"])
    out["relaxed_speedup"] = out["relaxed_cold_step_s"] / out["relaxed_warm_step_s"]
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096])
    parser.add_argument("--d", type=int, nargs="+", default=[64, 2048, 9216])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--preservation", action="store_true", help="also time a step with L_pres")
    parser.add_argument("--csv", type=Path, default=None, help="also write the table here")
    parser.add_argument("--reach", type=float, default=None,
                        help="also time semi-relaxed steps, targets relaxed at this × δ (LWConfig.target_reach)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads, scaling "
          f"{DEFAULT_SCALING}, blur {DEFAULT_BLUR_FRACTION}·σ_rms, median of {args.repeats} after 1 warm-up",
          flush=True)
    print("floor = log-sum-exp (4 reductions over ready N×N matrices per ε step of the cold annealing, + the last "
          "update's forward/backward) + matmuls (3 cost matrices, 2 gradient products); warm: start from each "
          f"code's potentials of its last solve, update until the value moves < {WARM_TOLERANCE:g}; first epoch: "
          "the last step's potentials extended to the batch (4 more cost matrices)", flush=True)
    rows = []
    for d in args.d:
        for n in args.n:
            row = bench_one(n, d, args.repeats, args.preservation, device, args.reach)
            rows.append(row)
            extra = (f"  warm+L_pres {row['warm_pres_step_s'] * 1e3:8.1f} ms ({row['warm_pres_ratio']:4.2f}×)"
                     if args.preservation else "")
            if args.reach is not None:
                extra += (f"  relaxed at {args.reach:g}·δ: cold {row['relaxed_cold_step_s'] * 1e3:8.1f} ms, warm "
                          f"{row['relaxed_warm_step_s'] * 1e3:8.1f} ms ({row['relaxed_warm_updates']:.1f} updates a "
                          f"solve), cold/warm {row['relaxed_speedup']:4.2f}×")
            print(f"N={n:5d} D={d:5d}  cold {row['cold_step_s'] * 1e3:8.1f} ms  warm {row['warm_step_s'] * 1e3:8.1f} "
                  f"ms  first epoch {row['first_epoch_step_s'] * 1e3:8.1f} ms  floor {row['floor_s'] * 1e3:8.1f} ms "
                  f"(lse {row['floor_lse_s'] * 1e3:.1f} over {row['eps_steps']} ε + matmuls "
                  f"{row['floor_matmul_s'] * 1e3:.1f})  cold/floor "
                  f"{row['cold_ratio']:5.2f}  warm/floor {row['warm_ratio']:5.2f}  first epoch/floor "
                  f"{row['first_epoch_ratio']:5.2f}  warm computing C(y, y) {row['warm_own_costs_step_s'] * 1e3:8.1f} "
                  f"ms (target costs: {row['target_costs_speedup']:4.2f}×){extra}", flush=True)
    if args.csv:
        import pandas as pd

        args.csv.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(args.csv, index=False, float_format="%.6g")
        print(f"wrote {args.csv}")
    return 0 if all(math.isfinite(r["warm_ratio"]) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
