"""Is the choice of an empty slot what keeps LW's count edits under 0.90? LW where the new digit's slot is fixed.

In the digits world a count edit ("add one digit", n → n + 1) has no single right answer: an image with n digits has
4 − n empty slots, and the target codes put the new digit in any of them. An affine step can only choose between
slots as a linear function of the code, and ``bench/lw_anatomy.py`` finds LW misses most where it must choose (2 → 3
by source layout: 0.98 where its map commits to one slot, 0.71 where it splits between two). This benchmark removes
the choice without changing the generator, the inversion or the judge. The sources of an n → n + 1 edit are
restricted to one layout, the first n slots in reading order (0 1 / 2 3; ``xx..`` for n = 2), and two sets of
targets are compared (``--rules``):

- ``next``: the targets fill the first empty slot too (``xxx.``), so the new digit has one place to go;
- ``any``: the targets fill any one of the empty slots (``xxx.`` and ``xx.x``), the data's own law on these sources:
  the control, which differs from ``next`` only in the choice.

1. **Codes.** Train codes of the source layout and of each rule's target layouts are projected from the run's image
   store exactly as the run projected its own (encoder, then ``projection``'s per-image steps), as many per side as
   the run's edit has train sources (``--n-train``): the run's store holds only a quarter to a sixth of that per
   layout. Val and test codes are the run's own, restricted to the same layouts.
2. **Training.** Each ``--methods`` edit is trained on those codes with the run's config section, once per
   ``--seeds``, with the run's latent classifier and γ (:func:`latentedit.edits.train.train_edit`, what the
   workflow's jobs call).
3. **Judging**, like the ``evaluate_edit`` jobs: d calibrated on the restricted val codes with the latent classifier
   (τ = ``render.calibration_rate``), the restricted test sources rendered at d and at α = 1, the image oracle's
   target change, digits kept and clean-edit rate with 95 % bootstrap intervals over the images, and the share of
   images that receive a digit in each empty slot.

The run's own models (trained on every layout) are judged on all of Table 2's test sources and on the restricted
ones (d calibrated as in the run, on the val codes of every layout).

Usage (in a finished default run's directory; both edits with one rule, method and seed: 5 min on two threads)::

    python bench/lw_slot_choice.py [RUNDIR] [--edits add_digit_1to2 add_digit_2to3] [--rules next any]
        [--methods lw lw_nopres] [--seeds 0 1 2] [--grid DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ itself, also when loaded by the tests

from _judging import (at_d_line, empty_slots_filled, judge_at_d, layouts, load_run, overrides,  # noqa: E402
                      test_source_images, write_grid)

from latentedit.edits.definitions import select_codes  # noqa: E402
from latentedit.edits.methods import get_method  # noqa: E402
from latentedit.edits.model import load_edit  # noqa: E402
from latentedit.edits.train import train_edit  # noqa: E402
from latentedit.io.latent_store import LatentStore  # noqa: E402
from latentedit.labels.correlations import read_correlations  # noqa: E402
from latentedit.projection.project import project_images  # noqa: E402


def reading_order(n: int, n_slots: int) -> str:
    """The layout of n digits in the first n slots: ``reading_order(2, 4) == "xx.."``."""
    return "x" * n + "." * (n_slots - n)


def count_of(selection: dict) -> int:
    """n of an edit selection that sets ``count_n`` to 1 (SystemExit for any other selection)."""
    counts = [int(name.split("_")[1]) for name, value in selection.items() if name.startswith("count_") and value]
    if len(counts) != 1:
        raise SystemExit(f"{selection} is not a count selection (one count_n: 1); this benchmark needs count edits")
    return counts[0]


def target_layouts(source: str, rule: str) -> list[str]:
    """The layouts an "add one digit" edit of ``source`` may end in: ``next`` fills its first empty slot only (one
    place for the new digit), ``any`` fills any one of its empty slots (the data's own law, restricted to ``source``'s
    filled slots)."""
    empty = [i for i, c in enumerate(source) if c == "."]
    if not empty:
        raise ValueError(f"layout {source} has no empty slot")
    return [source[:i] + "x" + source[i + 1:] for i in (empty[:1] if rule == "next" else empty)]


def evaluate(model: dict, store: LatentStore, calibration_store: LatentStore, classifier, renderer, judge,
             edit: str, definition: dict, cfg: dict, inputs: np.ndarray, source: str | None, n_boot: int):
    """One edit model judged like an ``evaluate_edit`` job on ``store``'s test sources, d calibrated on
    ``calibration_store``'s val codes; ``source``: the sources' one layout (None: every layout). Returns the table
    line and the renders at d of the first 8 sources."""
    cal, rendered, values = judge_at_d(model, store, classifier, renderer, judge, edit, definition, cfg["render"],
                                       n_boot, inputs, calibration_store)
    slots = ""
    if source is not None:
        shares = empty_slots_filled(judge.predict(rendered[1])["slots"], source, judge.empty_slot)
        slots = "; filled at d: " + ", ".join(f"slot {i} {v:.3f}" for i, v in enumerate(shares) if not np.isnan(v))
    return at_d_line(cal, rendered.shape[1], values, slots), rendered[1][:8]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("rundir", nargs="?", default=".")
    ap.add_argument("--config", default=None, help="the run's config (default RUNDIR/config.yaml)")
    ap.add_argument("--edits", nargs="+", default=["add_digit_1to2", "add_digit_2to3"])
    ap.add_argument("--methods", nargs="+", default=["lw"])
    ap.add_argument("--rules", nargs="+", default=["next", "any"], choices=["next", "any"],
                    help="where the targets put the new digit: the first empty slot only, or any empty slot")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0], help="train each model once per seed")
    ap.add_argument("--n-train", type=int, default=None,
                    help="train codes per side (default: as many as the run's edit has train sources)")
    ap.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                    help="override options of the methods' config section for this benchmark's trainings, e.g. "
                         "rank=1 (YAML values)")
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--grid", default=None, help="write a PNG per edit here: 8 restricted test sources, the run's "
                                                 "models and each rule's first seed at d (a folder)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    options = overrides(args.set)

    run = load_run(args.rundir, args.config)
    cfg, results, run_store, space, images, names = run.cfg, run.results, run.store, run.space, run.images, run.names
    gamma, _ = read_correlations(results / "labels" / "correlations.csv", names)
    classifier, renderer, judge = run.classifier, run.renderer, run.judge
    image_layouts = layouts(images.extra["slot_labels"])
    store_layouts = image_layouts[images.rows_of(run_store.ids, "the latent store's codes")]
    n_slots = images.extra["slot_labels"].shape[1]
    rng = np.random.default_rng(0)
    print(f"run {args.rundir}: {space} codes {run_store.latents.shape[1:]}; projection {run.projection}")

    for edit in args.edits:
        definition = cfg["edits"]["definitions"][edit]
        n = count_of(definition["source"])
        if count_of(definition["target"]) != n + 1:
            raise SystemExit(f"{edit}: not an 'add one digit' edit ({definition['source']} → {definition['target']})")
        source = reading_order(n, n_slots)
        n_train = args.n_train or len(select_codes(run_store, definition["source"], "train")[0])

        def projected(layouts_wanted: list[str]) -> tuple[np.ndarray, np.ndarray]:
            """(rows, codes) of ``n_train`` train images of the given layouts, projected like the run's codes."""
            pool = np.flatnonzero((images.split == "train") & np.isin(image_layouts, layouts_wanted))
            rows = np.sort(rng.choice(pool, size=n_train, replace=False))
            return rows, project_images(run.encoder, run.scale, images.images[rows], "cpu", space=space,
                                        generator=run.generator, **run.projection)

        t0 = time.perf_counter()
        source_rows, source_codes = projected([source])
        print(f"\n{edit}: {n_train} train sources of layout {source} projected in {time.perf_counter() - t0:.0f} s. "
              f"Cells: target change / digits kept / clean edit [95 %]")
        columns, labels, inputs = [], [], None
        for rule in args.rules:
            targets = target_layouts(source, rule)
            t0 = time.perf_counter()
            target_rows, target_codes = projected(targets)
            rows = np.concatenate([source_rows, target_rows])
            held_out = (run_store.split != "train") & np.isin(store_layouts, [source, *targets])
            store = LatentStore(
                np.concatenate([source_codes, target_codes, run_store.latents[held_out]]),
                np.concatenate([images.ids[rows], run_store.ids[held_out]]),
                np.concatenate([np.full(len(rows), "train"), run_store.split[held_out]]),
                np.concatenate([images.attributes[rows], run_store.attributes[held_out]]), names,
                dict(run_store.attrs))
            sizes = {s: "/".join(str(len(select_codes(store, definition[side], s)[0])) for side in ("source", "target"))
                     for s in ("train", "val", "test")}
            print(f"  targets {' '.join(targets)} ({rule}): source/target codes per split {sizes}, targets projected "
                  f"in {time.perf_counter() - t0:.0f} s")
            if inputs is None:  # the test sources are the same for every rule: judge the run's models on them once
                inputs = test_source_images(images, store, definition, cfg["render"], "the restricted test sources")
                all_inputs = test_source_images(images, run_store, definition, cfg["render"], "Table 2's test sources")
                columns, labels = [inputs[:8]], ["input"]
                for method in args.methods:
                    model = load_edit(results / "edits" / method / edit / "seed0" / "model.pt")
                    line, _ = evaluate(model, run_store, run_store, classifier, renderer, judge, edit, definition,
                                       cfg, all_inputs, None, args.n_boot)
                    print(f"    {method:10s} the run's, every layout (Table 2)  {line}")
                    line, grid = evaluate(model, store, run_store, classifier, renderer, judge, edit, definition, cfg,
                                          inputs, source, args.n_boot)
                    print(f"    {method:10s} the run's, {source} sources           {line}")
                    columns.append(grid)
                    labels.append(f"{method}\nrun's")
            for method in args.methods:
                for seed in args.seeds:
                    t0 = time.perf_counter()
                    model, history, _ = train_edit(method, store, definition, classifier, gamma,
                                                   {**cfg["edits"][get_method(method).options], "seed": seed,
                                                    **options},
                                                   name=edit, weight_attributes=cfg["labels"]["weight_attributes"])
                    steps = history[-1].get("steps", "?") if history else "?"
                    line, grid = evaluate(model, store, store, classifier, renderer, judge, edit, definition, cfg,
                                          inputs, source, args.n_boot)
                    print(f"    {method:10s} {rule}, seed {seed} ({steps} steps, {time.perf_counter() - t0:.0f} s)  "
                          f"{line}")
                    if seed == args.seeds[0]:
                        columns.append(grid)
                        labels.append(f"{method}\n{rule}")
        if args.grid:
            write_grid(columns, labels, args.grid, edit)


if __name__ == "__main__":
    main()
