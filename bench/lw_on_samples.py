"""Is the inversion what keeps LW under the paper's Table 2? LW trained and judged on the generator's own codes.

Table 2 of the default run edits *projected* codes: each real image inverted into W+ by the pSp-style head and 25
per-image Adam steps (README "The W+ world"). Those codes reconstruct the images faithfully, but nothing keeps them on
the generator's own code distribution: each layer's code is fitted separately. This benchmark runs the same
protocol on codes the generator itself produces, w = mapping(z∘s) broadcast to every W+ layer (z from the DLS prior,
s the checkpoint's scale), so that the two runs differ only in where the codes come from:

1. draw codes, render them, and label each image by the image oracle (the count of digits as one-hot ``count_k``,
   ``has_d`` for the presence of each digit); images the oracle reads with less than ``--confidence`` on any label
   are left out (mostly digits whose class it is unsure of, and a few empty canvases), and the kept codes are split
   as the run's store is (``--n-train`` / ``--n-val`` / ``--n-test``);
2. train the latent classifiers F and γ on them with the run's ``labels`` config;
3. train each ``--methods`` edit (``lw``, ``lw_nopres`` …) with the run's config section and seed 0
   (:func:`latentedit.edits.train.train_edit`, what the workflow's jobs call);
4. judge it like the ``evaluate_edit`` jobs: d calibrated on the val source codes with F (τ = ``render.
   calibration_rate``), ``render.max_images`` test sources rendered at d (and at α = 1, the step LW trains), the
   image oracle's target change, digits kept and clean-edit rate, each with its 95 % bootstrap interval over the
   images. The reference of "kept" is the oracle's reading of the unedited render (α = 0), as in the run.

The run's own LW models go through the same judging on the run's test sources for the comparison in one table
(their reference: the real test images, as in the run).

Usage (in a finished default run's directory; ≈ 5 min on one thread)::

    python bench/lw_on_samples.py [RUNDIR] [--edits add_digit_1to2 add_digit_2to3 add_digit_3to4]
        [--methods lw lw_nopres] [--grid DIR]
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

from _judging import at_d_line, finished_run, judge_at_d, overrides, test_source_images, write_grid  # noqa: E402

from latentedit.dlsgan.checkpoint import load_dlsgan  # noqa: E402
from latentedit.dlsgan.scale import sample_latent  # noqa: E402
from latentedit.edits.definitions import select_codes  # noqa: E402
from latentedit.edits.methods import get_method  # noqa: E402
from latentedit.edits.model import load_edit  # noqa: E402
from latentedit.edits.train import train_edit  # noqa: E402
from latentedit.imaging import generate_uint8  # noqa: E402
from latentedit.io.image_store import read_image_store  # noqa: E402
from latentedit.io.latent_store import LatentStore, latent_space, read_latent_store  # noqa: E402
from latentedit.labels.classifiers import (ClassifierConfig, load_latent_classifiers,  # noqa: E402
                                           train_latent_classifiers)
from latentedit.labels.correlations import correlation_matrix  # noqa: E402
from latentedit.worlds import load_judge, load_renderer  # noqa: E402

def confident(probs: np.ndarray, n_counts: int, confidence: float) -> np.ndarray:
    """(N,) whether the oracle read each image's count and every digit's presence with at least ``confidence``."""
    count, has = probs[:, :n_counts], probs[:, n_counts:]
    return (count.max(1) >= confidence) & ((has <= 1 - confidence) | (has >= confidence)).all(1)


@torch.no_grad()
def sampled_store(generator, scale, renderer, judge, names: list[str], distribution: str, n_split: dict,
                  confidence: float, seed: int, batch: int = 1024) -> tuple[LatentStore, dict]:
    """Broadcast W codes of the generator, labelled by the oracle's confident readings, split train / val / test.
    Returns the store (W+ codes, (N, L, D)) and how many draws were read and kept."""
    n_counts = sum(n.startswith("count_") for n in names)
    wanted, kept, drawn = sum(n_split.values()), [], 0
    gen = torch.Generator().manual_seed(seed)
    while sum(len(k[0]) for k in kept) < wanted:
        z = sample_latent(batch, generator.z_dim, distribution, gen)
        codes = generator.broadcast(generator.mapping(z * scale))  # (B, L, D)
        probs = judge.predict(generate_uint8(renderer, codes, 128).numpy())["probs"]  # (B, n_counts + 10)
        count, has = probs[:, :n_counts], probs[:, n_counts:]
        sure = confident(probs, n_counts, confidence)
        labels = np.concatenate([np.eye(n_counts, dtype=np.uint8)[count.argmax(1)], (has > 0.5).astype(np.uint8)], 1)
        kept.append((codes.numpy()[sure], labels[sure]))
        drawn += batch
    latents = np.concatenate([k[0] for k in kept])[:wanted].astype(np.float32)
    attributes = np.concatenate([k[1] for k in kept])[:wanted]
    split = np.concatenate([np.full(n, s) for s, n in n_split.items()])
    store = LatentStore(latents, np.array([f"sample{i}" for i in range(wanted)]), split, attributes, list(names),
                        {"latent_space": "wplus"})
    return store, {"drawn": drawn, "kept_fraction": sum(len(k[0]) for k in kept) / drawn}


def evaluate(model: dict, store: LatentStore, classifier, renderer, judge, edit: str, definition: dict,
             render_cfg: dict, n_boot: int, inputs: np.ndarray | None) -> tuple[str, np.ndarray]:
    """One edit model judged like an ``evaluate_edit`` job; ``inputs``: the real test images of the sources (None:
    the renders of their codes). Returns the table line and the renders at d of the first 8 sources."""
    cal, rendered, values = judge_at_d(model, store, classifier, renderer, judge, edit, definition, render_cfg,
                                       n_boot, inputs)
    return at_d_line(cal, rendered.shape[1], values), rendered[:, :8]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("rundir", nargs="?", default=".")
    ap.add_argument("--config", default=None, help="the run's config (default RUNDIR/config.yaml)")
    ap.add_argument("--edits", nargs="+", default=["add_digit_1to2", "add_digit_2to3", "add_digit_3to4"])
    ap.add_argument("--methods", nargs="+", default=["lw", "lw_nopres"])
    ap.add_argument("--n-train", type=int, default=3000, help="the run's train codes (projection.max_train_images)")
    ap.add_argument("--n-val", type=int, default=2000)
    ap.add_argument("--n-test", type=int, default=2000)
    ap.add_argument("--confidence", type=float, default=0.9, help="keep a draw when the oracle reads every label "
                                                                  "with at least this probability")
    ap.add_argument("--seed", type=int, default=0, help="the draws' seed")
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                    help="override options of the methods' config section for the samples' trainings, e.g. "
                         "patience_steps=300 (YAML values)")
    ap.add_argument("--grid", default=None, help="write a PNG per edit here: 8 test sources of each store, unedited "
                                                 "and at d (a folder)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    options = overrides(args.set)

    cfg, results, checkpoint = finished_run(args.rundir, args.config)
    run_store = read_latent_store(results / "latents.h5")
    space = latent_space(run_store.attrs, results / "latents.h5")
    if space != "wplus":
        raise SystemExit(f"{results / 'latents.h5'} holds {space} codes; this benchmark compares W+ runs")
    names = list(run_store.attribute_names)
    generator, _, scale, ck = load_dlsgan(checkpoint, "cpu")
    renderer = load_renderer("digits", checkpoint, "cpu", {"latent_space": "wplus"})
    judge = load_judge("digits", {"oracle": results / "oracle" / "model.pt"}, "cpu")
    distribution = ck["options"].get("distribution", "normal")

    t0 = time.perf_counter()
    store, drawn = sampled_store(generator, scale, renderer, judge, names, distribution,
                                 {"train": args.n_train, "val": args.n_val, "test": args.n_test}, args.confidence,
                                 args.seed)
    train, val, test = (store.select(s) for s in ("train", "val", "test"))
    print(f"sampled {drawn['drawn']} codes from {checkpoint} ({distribution} prior), kept "
          f"{drawn['kept_fraction']:.3f} read with confidence ≥ {args.confidence} ({time.perf_counter() - t0:.0f} s)")
    with torch.no_grad():
        probs = judge.predict(generate_uint8(renderer, torch.as_tensor(run_store.select("test").latents), 128)
                              .numpy())["probs"]
    sure = confident(probs, sum(n.startswith("count_") for n in names), args.confidence)
    print(f"  for comparison, the run's test reconstructions read with that confidence: {sure.mean():.3f} of "
          f"{len(sure)}")
    for label, s in (("samples", train), ("the run's projections", run_store.select("train"))):
        share = s.attributes.mean(0)
        print(f"  train labels of {label}: " + ", ".join(f"{n} {share[i]:.3f}" for i, n in enumerate(names)))

    t0 = time.perf_counter()
    classifier, _, metrics = train_latent_classifiers(
        train.latents, train.attributes, val.latents, val.attributes, ClassifierConfig(**cfg["labels"]["classifier"]),
        "cpu", attribute_names=names, latents_test=test.latents, attrs_test=test.attributes)
    classifier.eval().requires_grad_(False)
    gamma = correlation_matrix(train.attributes)
    print(f"latent classifiers on the samples ({time.perf_counter() - t0:.0f} s): test accuracy "
          + ", ".join(f"{n} {v:.3f}" for n, v in metrics["test"].items()))

    run_classifier = load_latent_classifiers(results / "labels" / "classifiers.pt")
    images = read_image_store(results / "images.h5")
    for edit in args.edits:
        definition = cfg["edits"]["definitions"][edit]
        n_side = {side: len(select_codes(store, definition[side], "train")[0]) for side in ("source", "target")}
        print(f"\n{edit}: samples train {n_side['source']} source / {n_side['target']} target codes; cells: target "
              f"change / digits kept / clean edit [95 %]")
        columns, labels = [], []
        for method in args.methods:
            t0 = time.perf_counter()
            model, history, _ = train_edit(method, store, definition, classifier, gamma,
                                           {**cfg["edits"][get_method(method).options], "seed": 0, **options},
                                           name=edit,
                                           weight_attributes=cfg["labels"]["weight_attributes"])
            seconds = time.perf_counter() - t0
            line, grid = evaluate(model, store, classifier, renderer, judge, edit, definition, cfg["render"],
                                  args.n_boot, None)
            steps = history[-1].get("steps", "?") if history else "?"
            print(f"  {method:10s} on samples ({len(history)} epochs, {steps} steps, {seconds:.0f} s)  {line}")
            if not columns:
                columns.append(grid[0])
                labels.append("sample")
            columns.append(grid[1])
            labels.append(f"{method}\nsamples")
        inputs = test_source_images(images, run_store, definition, cfg["render"], "the test sources")
        for method in args.methods:
            model = load_edit(results / "edits" / method / edit / "seed0" / "model.pt")
            line, grid = evaluate(model, run_store, run_classifier, renderer, judge, edit, definition, cfg["render"],
                                  args.n_boot, inputs)
            print(f"  {method:10s} on the run's projections  {line}")
            if method == args.methods[0]:
                columns.append(inputs[:8])
                labels.append("real")
            columns.append(grid[1])
            labels.append(f"{method}\nprojected")
        if args.grid:
            write_grid(columns, labels, args.grid, edit)


if __name__ == "__main__":
    main()
