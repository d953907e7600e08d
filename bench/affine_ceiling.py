"""How well can *any* affine edit of the digits world's codes add one digit? A supervised ceiling for LW's family.

LW learns ``z' = z + α·H_k(z)``, H_k affine per W+ layer, from unpaired source and target codes. This benchmark
gives an affine map what LW never has: the exact clean edit of every training image. For each source image of a
count edit ("add one digit") whose code is in a finished run's latent store, it composes the same image with one
more digit in an empty slot (:func:`latentedit.data.digits.add_one_digit`), projects those targets exactly as the
run projected its images (encoder, then the per-image Adam steps of ``projection``), and fits the step
``z_t − z_s ≈ A z_s + b`` by ridge least squares, per layer as LW's H_k (and the mean step b alone, A = 0). The maps
are judged like the run's ``evaluate_edit`` jobs: d calibrated on the val source codes with the latent classifier
(τ = 1), the same 300 test sources rendered at d and at α = 1, the image oracle's target change, slots kept and
clean-edit rate, with 95 % bootstrap intervals over the images. The run's trained LW goes through the same code.

Rules for the added digit:

- ``fixed``: one glyph (``--digit``) in the first empty slot, centred — a function of the image, which an edit can
  learn exactly;
- ``random``: a random glyph in a random empty slot, as the data's own law — many targets per image, so a regression
  learns their mean.

It also renders the projections of the test sources' own targets: the ceiling of a perfect per-image edit, set by the
inversion alone.

``--kernel`` adds maps that are not affine, fit to the same pairs: kernel ridge regression of the step,
H(z) = m + Σ_i c_i exp(−‖z − z_i‖² / h) over the flattened train source codes z_i, h = ``bandwidth`` × the median
squared distance between them, (K + ridge·I) c = steps − m, m their mean; alone, and on the residual of the cleanest
affine fit (ridge 1), H = W z + b + kernel part. They say how much of the gap between the affine fit and the
projected targets is the affine form's, with as many pairs as the run has train sources.

Usage (in a finished default run's directory; ≈ 5 min on two cores)::

    python bench/affine_ceiling.py [RUNDIR] [--edits add_digit_1to2 add_digit_2to3] [--rules fixed random] [--kernel]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ itself, also when loaded by the tests

from _judging import cells, judged, load_run, write_grid  # noqa: E402
from latentedit.data.digits import DigitsConfig, add_one_digit, load_glyphs  # noqa: E402
from latentedit.edits.affine import AffineEdit  # noqa: E402
from latentedit.edits.definitions import split_selection_mask  # noqa: E402
from latentedit.edits.model import affine_parameters, apply_edit, load_edit  # noqa: E402
from latentedit.imaging import generate_uint8  # noqa: E402
from latentedit.labels.classifiers import predict_logits  # noqa: E402
from latentedit.projection.project import project_images  # noqa: E402
from latentedit.render.calibrate import calibrate  # noqa: E402
from latentedit.render.render import render_codes  # noqa: E402

Step = Callable[[torch.Tensor], torch.Tensor]  # H: codes (N, *S) ↦ their steps, the edit being z + α·H(z)

def affine_fit(source: np.ndarray, target: np.ndarray, ridge: float | None) -> dict:
    """The edit model of z_t − z_s ≈ A z_s + b, ridge ``ridge``·n on A per layer (None: the mean step, A = 0)."""
    n, n_layers, dim = source.shape
    edit = AffineEdit(dim, n_layers=n_layers)
    step = (target - source).astype(np.float64)
    with torch.no_grad():
        if ridge is None:
            edit.weight.zero_()
            edit.bias.copy_(torch.as_tensor(step.mean(0)))
        else:
            weights, biases = [], []
            for layer in range(n_layers):
                x = np.concatenate([source[:, layer].astype(np.float64), np.ones((n, 1))], 1)
                penalty = ridge * n * np.eye(dim + 1)
                penalty[-1, -1] = 0  # the offset is not shrunk
                solution = np.linalg.solve(x.T @ x + penalty, x.T @ step[:, layer])
                weights.append(solution[:-1].T)
                biases.append(solution[-1])
            edit.weight.copy_(torch.as_tensor(np.stack(weights)))
            edit.bias.copy_(torch.as_tensor(np.stack(biases)))
    return {"type": "affine", **affine_parameters(edit), "method": "affine_fit", "edit": "fit", "wstar": None}


def kernel_fit(source: np.ndarray, target: np.ndarray, bandwidth: float, ridge: float,
               base: Step | None = None) -> Step:
    """H(z) = base(z) + m + Σ_i c_i exp(−‖z − z_i‖² / h), the kernel part fit by kernel ridge regression (module
    docstring) to the steps z_t − z_s, minus ``base``'s steps when given (None: the kernel part alone)."""
    x = torch.as_tensor(source, dtype=torch.float64).flatten(1)
    steps = torch.as_tensor(target - source, dtype=torch.float64).flatten(1)
    if base is not None:
        steps = steps - base(torch.as_tensor(source)).double().flatten(1)
    mean = steps.mean(0)
    squared = torch.cdist(x, x).pow(2)
    h = bandwidth * squared[squared > 0].median()
    coef = torch.linalg.solve(torch.exp(-squared / h) + ridge * torch.eye(len(x), dtype=x.dtype), steps - mean)

    def step(z: torch.Tensor) -> torch.Tensor:
        kernel = torch.exp(-torch.cdist(z.double().flatten(1), x).pow(2) / h)
        out = (kernel @ coef + mean).to(z.dtype).view(z.shape)
        return out if base is None else out + base(z)

    return step


def model_step(model: dict) -> Step:
    """The step H of an edit model (z' = z + α·H(z) for an affine one)."""
    return lambda z: apply_edit(model, z, 1.0) - z


def judge_step(step: Step, run, codes: np.ndarray, val_source: torch.Tensor, k: int, t: int, pred_in: dict,
               edit: str, definition: dict, names: list[str], n_boot: int) -> tuple:
    """Judge z ↦ z + α·H(z) like an ``evaluate_edit`` job: d from the latent classifier on the val sources (τ = 1,
    unit 1, as for LW), the test codes rendered at 0, d and 1. Returns (calibration, renders, judged values)."""
    with torch.no_grad():
        val_step = step(val_source)

        def rate(alpha: float) -> float:
            read = predict_logits(run.classifier, val_source + alpha * val_step)[:, k] > 0
            return float((read.long() == t).float().mean())

        cal = calibrate(rate, tau=1.0, n_codes=len(val_source))
        alphas = np.array([0.0, cal.d, 1.0])
        z = torch.as_tensor(codes)
        test_step = step(z)
        edited = [z + float(alpha) * test_step for alpha in alphas]
        logits = np.stack([predict_logits(run.classifier, e).numpy() for e in edited]).astype(np.float32)
        rendered = np.stack([generate_uint8(run.renderer, e, 128).numpy() for e in edited])
    return cal, rendered, judged(run.judge, rendered, alphas, pred_in, logits, edit, definition, names, n_boot)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("rundir", nargs="?", default=".")
    ap.add_argument("--config", default=None, help="the run's config (default RUNDIR/config.yaml)")
    ap.add_argument("--edits", nargs="+", default=["add_digit_1to2", "add_digit_2to3"])
    ap.add_argument("--rules", nargs="+", default=["fixed", "random"], choices=["fixed", "random"])
    ap.add_argument("--digit", type=int, default=5, help="the glyph class of the fixed rule")
    ap.add_argument("--ridge", nargs="+", type=float, default=[1e-3, 1e-2, 1e-1])
    ap.add_argument("--kernel", action="store_true", help="also fit kernel ridge maps (module docstring)")
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--grid", default=None, help="write a PNG per edit here: the first 8 test sources, their projected "
                                                 "targets and every map at its d (a folder)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    run = load_run(args.rundir, args.config)
    cfg, results, store, space, images = run.cfg, run.results, run.store, run.space, run.images
    generator, scale, encoder = run.generator, run.scale, run.encoder
    renderer, judge, projection = run.renderer, run.judge, run.projection
    digits_cfg = DigitsConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg["digits"].items()})
    glyphs = load_glyphs(digits_cfg, np.random.default_rng(digits_cfg.seed))
    names = list(store.attribute_names)
    print(f"run {args.rundir}: {space} codes {store.latents.shape[1:]}; projection {projection}")

    for edit in args.edits:
        definition = cfg["edits"]["definitions"][edit]
        k, t = names.index(definition["attribute"]), int(definition["target"][definition["attribute"]])
        train = split_selection_mask(store, definition["source"], "train")
        val_source = torch.as_tensor(store.latents[split_selection_mask(store, definition["source"], "val")])
        codes, ids = render_codes(store, definition["source"], cfg["render"]["max_images"], cfg["render"]["seed"])
        inputs = images.images[images.rows_of(ids, "the test sources")]
        pred_in = judge.predict(inputs)

        print(f"\n{edit}: {train.sum()} train source codes, {len(val_source)} val (calibration), {len(codes)} test")
        run_lw = load_edit(results / "edits" / "lw" / edit / "seed0" / "model.pt")
        steps = {"LW, trained by the run": model_step(run_lw)}
        columns, labels = [inputs[:8]], ["input"]  # the grid: one column per image source, 8 test sources
        for rule in args.rules:
            t0 = time.perf_counter()
            train_rows = images.rows_of(store.ids[train], "the train sources")
            paired, _ = add_one_digit(images.images[train_rows], images.extra["slot_labels"][train_rows], glyphs,
                                      "train", digits_cfg, rule, args.digit, seed=0)
            targets = project_images(encoder, scale, paired, "cpu", space=space, generator=generator, **projection)
            test_rows = images.rows_of(ids, "the test sources")
            paired_test, _ = add_one_digit(images.images[test_rows], images.extra["slot_labels"][test_rows], glyphs,
                                           "test", digits_cfg, rule, args.digit, seed=1)
            test_targets = project_images(encoder, scale, paired_test, "cpu", space=space, generator=generator,
                                          **projection)
            half_sq = 0.5 * ((targets - store.latents[train]) ** 2).reshape(len(targets), -1).sum(1).mean()
            print(f"  rule {rule}: projected {len(targets)} train and {len(test_targets)} test targets in "
                  f"{time.perf_counter() - t0:.0f} s; mean ½‖z_t − z_s‖² {half_sq:.1f}")
            renders = np.stack([generate_uint8(renderer, torch.as_tensor(z), 128).numpy()
                                for z in (codes, test_targets)])
            ceiling = judged(judge, renders, np.array([0.0, 1.0]), pred_in,
                             np.zeros((2, len(codes), len(names)), np.float32), edit, definition, names, args.n_boot)
            print(f"  {rule + ': projected targets (ceiling)':44s} {cells(ceiling, 1)}")
            columns.append(renders[1][:8])
            labels.append(f"{rule}:\ntarget")
            source = store.latents[train]
            steps[f"{rule}: mean step"] = model_step(affine_fit(source, targets, None))
            for ridge in args.ridge:
                steps[f"{rule}: affine per layer, ridge {ridge:g}"] = model_step(affine_fit(source, targets, ridge))
            if args.kernel:
                affine = model_step(affine_fit(source, targets, 1.0))
                for bandwidth, ridge in ((1.0, 0.1), (0.5, 0.1), (0.5, 1.0)):
                    steps[f"{rule}: kernel h {bandwidth:g}, ridge {ridge:g}"] = kernel_fit(source, targets, bandwidth,
                                                                                         ridge)
                    steps[f"{rule}: affine 1 + kernel h {bandwidth:g}, ridge {ridge:g}"] = kernel_fit(
                        source, targets, bandwidth, ridge, base=affine)
        for name, step in steps.items():
            cal, rendered, values = judge_step(step, run, codes, val_source, k, t, pred_in, edit, definition, names,
                                               args.n_boot)
            columns.append(rendered[1][:8])
            labels.append(name.replace("affine per layer, ", "").replace(": ", ":\n").replace(", ", ",\n"))
            reached = "" if cal.reached else f" (τ not reached: {cal.rate:.3f})"
            print(f"  {name:44s} at d = {cal.d:.3f}{reached}: {cells(values, 1)}\n  {'':44s} at α = 1:{'':8s}"
                  f"{cells(values, 2)}")
        if args.grid:
            write_grid(columns, labels, args.grid, edit)


if __name__ == "__main__":
    main()
