"""Would an unbalanced transport, which need not cover every target, let LW's affine map choose the slot?

LW's S_ε is balanced: the edited sources must cover the whole target law, so on "add one digit" they must spread the
new digit over every empty slot in the targets' proportions (README "Is the choice of slot the limit?"), a per-image
choice one affine map makes badly. The unbalanced Sinkhorn divergence (Séjourné et al. 2019, "Sinkhorn divergences
for unbalanced optimal transport"; GeomLoss's ``reach``) relaxes both marginals by ρ·KL, ρ = reach², so that mass
further than about ``reach`` from the other cloud may be created or destroyed rather than carried: an edited code is
pulled only towards targets within reach, and the map need not fill the slots in the targets' proportions.

This benchmark trains LW on the run's own codes with the run's ``edits.lw`` options and judges it like Table 2
(:func:`_judging.judge_at_d`: d calibrated with the latent classifier, the image oracle at d, 95 % intervals over the
test images). Only the Wasserstein term changes: its solver is replaced by GeomLoss's ``SamplesLoss("sinkhorn",
p=2, debias=True, backend="tensorized")`` at the same blur and ε-scaling, with ``reach`` = r · δ, where δ is the
median distance from a train source code to its nearest train target code (printed) and r each ``--reach`` value
(``none``: balanced, GeomLoss's own solve of the loss LW trains; the control for the substitution). L_pres and
everything else are LW's own. GeomLoss's solves are cold and annealed (LW's own start warm).

``--relax target`` relaxes only the targets' marginal instead: every edited code must still be carried somewhere.
That is LW's own ``edits.lw.target_reach`` (:func:`latentedit.edits.sinkhorn.semi_relaxed_divergence`, the same δ),
so those trainings are LW's with that option set, nothing stood in (README "Relax only the targets").

Usage (in a finished default run's directory; 25–45 s per training on two threads, and 10 s to judge it)::

    python bench/lw_unbalanced.py [RUNDIR] [--edits add_digit_1to2 add_digit_2to3] [--reach none 0.5 1 2]
        [--relax both|target] [--seeds 0 1 2] [--grid DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ itself, also when loaded by the tests

from _judging import at_d_line, judge_at_d, load_run, overrides, test_source_images, write_grid  # noqa: E402

import latentedit.edits.lw as lw  # noqa: E402
from latentedit.edits.definitions import select_codes  # noqa: E402
from latentedit.edits.model import load_edit  # noqa: E402
from latentedit.edits.lw import nearest_target_distance  # noqa: E402
from latentedit.edits.sinkhorn import DEFAULT_SCALING, flatten_codes, marginal_weights  # noqa: E402
from latentedit.edits.train import train_edit  # noqa: E402
from latentedit.labels.correlations import read_correlations  # noqa: E402


def unbalanced_divergence(reach: float | None) -> Callable:
    """A stand-in for :func:`latentedit.edits.sinkhorn.sinkhorn_divergence` (the same arguments; warm-start ones
    ignored) that returns GeomLoss's debiased Sinkhorn divergence with ``reach`` (None: balanced) and no state, so
    every solve is cold."""
    from geomloss import SamplesLoss  # a test dependency (the reference our solver is tested against)

    def divergence(x, y, a=None, b=None, blur=None, scaling=DEFAULT_SCALING, **_warm_start):
        x, y = flatten_codes(x), flatten_codes(y)
        a, b = marginal_weights(a, len(x), x, "a"), marginal_weights(b, len(y), y, "b")
        loss = SamplesLoss("sinkhorn", p=2, blur=blur, scaling=scaling, reach=reach, debias=True,
                           backend="tensorized")
        return loss(a, x, b, y), None

    return divergence


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("rundir", nargs="?", default=".")
    ap.add_argument("--config", default=None, help="the run's config (default RUNDIR/config.yaml)")
    ap.add_argument("--edits", nargs="+", default=["add_digit_1to2", "add_digit_2to3"])
    ap.add_argument("--reach", nargs="+", default=["none", "0.5", "1", "2"],
                    help="reach in units of δ (median source → nearest target distance); none: balanced")
    ap.add_argument("--relax", choices=["both", "target"], default="both",
                    help="both: GeomLoss's unbalanced divergence (both marginals relaxed); target: only the targets' "
                         "(semi_relaxed_divergence: every edited code is carried)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0], help="train each model once per seed")
    ap.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                    help="override options of edits.lw for this benchmark's trainings (YAML values)")
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--grid", default=None, help="write a PNG per edit here: 8 test sources, the run's LW and each "
                                                 "reach's first seed at d (a folder)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    reaches = [None if r == "none" else float(r) for r in args.reach]
    run = load_run(args.rundir, args.config)
    cfg, store = run.cfg, run.store
    gamma, _ = read_correlations(run.results / "labels" / "correlations.csv", run.names)
    options = {**cfg["edits"]["lw"], **overrides(args.set)}
    balanced = lw.sinkhorn_divergence
    print(f"run {args.rundir}: {run.space} codes {store.latents.shape[1:]}. Cells: target change / digits kept / "
          f"clean edit [95 %]")
    for edit in args.edits:
        definition = cfg["edits"]["definitions"][edit]
        delta = nearest_target_distance(torch.as_tensor(select_codes(store, definition["source"], "train")[0]),
                                        torch.as_tensor(select_codes(store, definition["target"], "train")[0]))
        inputs = test_source_images(run.images, store, definition, cfg["render"], "Table 2's test sources")
        model = load_edit(run.results / "edits" / "lw" / edit / "seed0" / "model.pt")
        cal, rendered, values = judge_at_d(model, store, run.classifier, run.renderer, run.judge, edit, definition,
                                           cfg["render"], args.n_boot, inputs)
        print(f"\n{edit}: δ = {delta:.3f}\n  the run's lw        {at_d_line(cal, rendered.shape[1], values)}")
        columns, labels = [inputs[:8], rendered[1][:8]], ["input", "run's lw"]
        for r in reaches:
            semi = args.relax == "target" and r is not None  # LW's own target_reach: no stand-in
            if not semi:
                lw.sinkhorn_divergence = unbalanced_divergence(None if r is None else r * delta)
            kind = "targets" if semi else "reach"
            name, label = ("balanced", "balanced") if r is None else (f"{kind} {r:g}·δ", f"{kind} {r:g} x nn")
            try:
                for seed in args.seeds:
                    t0 = time.perf_counter()
                    model, history, _ = train_edit("lw", store, definition, run.classifier, gamma,
                                                   {**options, "seed": seed, "target_reach": r if semi else None},
                                                   name=edit,
                                                   weight_attributes=cfg["labels"]["weight_attributes"])
                    cal, rendered, values = judge_at_d(model, store, run.classifier, run.renderer, run.judge, edit,
                                                       definition, cfg["render"], args.n_boot, inputs)
                    print(f"  {name:12s} seed {seed} ({history[-1].get('steps', '?')} steps, "
                          f"{time.perf_counter() - t0:.0f} s)  {at_d_line(cal, rendered.shape[1], values)}",
                          flush=True)
                    if seed == args.seeds[0]:
                        columns.append(rendered[1][:8])
                        labels.append(label)  # the grid's font lacks δ
            finally:
                lw.sinkhorn_divergence = balanced
        if args.grid:
            write_grid(columns, labels, args.grid, edit)


if __name__ == "__main__":
    main()
