"""What the benchmarks that score edits like Table 2 share: a finished run's config, results folder and generator
checkpoint, and what they load from it (:func:`load_run`); the image oracle's target change, digits kept and
clean-edit rate of renders, with 95 % bootstrap intervals over the images (``evaluate_edit``'s metrics), for a model
judged at its calibrated step d (:func:`judge_at_d`); the digits' slot layouts and which empty slots an edit fills;
the PNG grid of what was judged; and ``--set KEY=VALUE`` overrides of a method's config section."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from latentedit.edits.definitions import select_codes
from latentedit.evaluation.edit_metrics import edit_metric_rows
from latentedit.plotting import image_grid
from latentedit.render.calibrate import calibrate_edit
from latentedit.render.render import render_codes, render_edit

METRICS = ("target_change_rate", "slots_kept", "clean_edit_rate")


def finished_run(rundir: str | Path, config: str | Path | None = None) -> tuple[dict, Path, Path]:
    """(config, results folder, generator checkpoint) of a finished digits run in ``rundir``; ``config``: the run's
    config file (None: RUNDIR/config.yaml)."""
    run = Path(rundir)
    with open(config or run / "config.yaml") as f:
        cfg = yaml.safe_load(f)
    results = run / "results" / "digits"
    checkpoint = (results / "dlsgan" / "dls" / "checkpoint.pt" if cfg["dlsgan"]["retrain"]
                  else run / cfg["dlsgan"]["checkpoint"])
    return cfg, results, checkpoint


@dataclass
class Run:
    """What a finished digits run holds that the benchmarks re-project codes, render and judge with."""

    cfg: dict
    results: Path
    checkpoint: Path
    store: Any  # LatentStore of results/digits/latents.h5
    space: str  # the codes' latent space
    images: Any  # ImageStore of results/digits/images.h5
    classifier: Any  # the latent classifiers F
    generator: Any
    scale: Any  # the DLS scale s
    encoder: Any  # the run's projection encoder
    renderer: Any
    judge: Any
    projection: dict  # project_images' per-image optimisation options, uncompiled

    @property
    def names(self) -> list[str]:
        return list(self.store.attribute_names)


def load_run(rundir: str | Path, config: str | Path | None = None) -> Run:
    """Load a finished digits run on CPU (:func:`finished_run`); its encoder must give the store's latent space."""
    from latentedit.dlsgan.checkpoint import load_dlsgan
    from latentedit.io.image_store import read_image_store
    from latentedit.io.latent_store import latent_space, read_latent_store
    from latentedit.labels.classifiers import load_latent_classifiers
    from latentedit.projection.options import RefineConfig
    from latentedit.projection.wplus import load_code_encoder
    from latentedit.worlds import load_judge, load_renderer

    cfg, results, checkpoint = finished_run(rundir, config)
    store = read_latent_store(results / "latents.h5")
    space = latent_space(store.attrs, results / "latents.h5")
    generator, _, scale, _ = load_dlsgan(checkpoint, "cpu")
    encoder, encoder_space = load_code_encoder(results / "projection" / "encoder.pt", "cpu")
    if encoder_space != space:
        raise SystemExit(f"the run's encoder gives {encoder_space} codes, its latent store holds {space}")
    projection = RefineConfig(**cfg["projection"]).optimization()
    projection["optimize_compile"] = False  # a few thousand images at most: compiling costs more than it saves
    return Run(cfg, results, checkpoint, store, space, read_image_store(results / "images.h5"),
               load_latent_classifiers(results / "labels" / "classifiers.pt"), generator, scale, encoder,
               load_renderer("digits", checkpoint, "cpu", {"latent_space": space}),
               load_judge("digits", {"oracle": results / "oracle" / "model.pt"}, "cpu"), projection)


def overrides(items: Sequence[str]) -> dict:
    """``--set KEY=VALUE …`` as {key: YAML value}: options of a method's config section for a benchmark's trainings."""
    pairs = [item.split("=", 1) for item in items]
    bad = [item for item, pair in zip(items, pairs) if len(pair) != 2]
    if bad:
        raise SystemExit(f"--set takes KEY=VALUE, got {bad}")
    return {key: yaml.safe_load(value) for key, value in pairs}


def judged(judge, rendered: np.ndarray, alphas: np.ndarray, input_pred: dict, latent_logits: np.ndarray, edit: str,
           definition: dict, names: list[str], n_boot: int) -> dict:
    """{(metric, α index): (value, ci_low, ci_high)} of renders (A, N, C, H, W) at ``alphas`` (alphas[0] = 0), the
    judge's predictions on the inputs they edit being ``input_pred``."""
    a, n = rendered.shape[:2]
    pred = judge.predict(rendered.reshape(a * n, *rendered.shape[2:]))
    rows = edit_metric_rows(
        method="bench", edit=edit, definition=definition, attribute_names=names, alphas=alphas,
        edited_probs=pred["probs"].reshape(a, n, -1), edited_embeddings=pred["embedding"].reshape(a, n, -1),
        input_probs=input_pred["probs"], input_embeddings=input_pred["embedding"], latent_logits=latent_logits,
        edited_slots=pred["slots"].reshape(a, n, -1), empty_slot=judge.empty_slot, n_boot=n_boot, seed=0)
    out = {}
    for metric in METRICS:
        for i, alpha in enumerate(alphas):
            row = rows[(rows.metric == metric) & np.isclose(rows.alpha, alpha)].iloc[0]
            out[metric, i] = (row.value, row.ci_low, row.ci_high)
    return out


def judge_at_d(model: dict, store, classifier, renderer, judge, edit: str, definition: dict, render_cfg: dict,
               n_boot: int, inputs: np.ndarray | None = None, calibration_store=None) -> tuple:
    """One edit model judged like an ``evaluate_edit`` job: d calibrated with the latent classifier on the val codes
    of ``calibration_store`` (None: ``store``), ``render.max_images`` of ``store``'s test sources rendered at α = 0,
    d and 1, and :func:`judged` against the judge's reading of ``inputs``, the sources' real images (None: their
    renders at α = 0). Returns (the calibration, the renders (3, N, C, H, W), :func:`judged`'s values)."""
    names = list(store.attribute_names)
    k, t = names.index(definition["attribute"]), int(definition["target"][definition["attribute"]])
    calibration_store = store if calibration_store is None else calibration_store
    val_source = torch.as_tensor(select_codes(calibration_store, definition["source"], "val")[0])
    val_target = torch.as_tensor(select_codes(calibration_store, definition["target"], "val")[0])
    cal = calibrate_edit(model, val_source, val_target, classifier, k, t, tau=render_cfg["calibration_rate"])
    codes, _ = render_codes(store, definition["source"], render_cfg["max_images"], render_cfg["seed"])
    alphas = np.array([0.0, cal.d, 1.0])
    rendered, logits = render_edit(model, renderer, codes, alphas, classifier, "cpu", 128, desc=edit)
    input_pred = judge.predict(rendered[0] if inputs is None else inputs)
    return cal, rendered, judged(judge, rendered, alphas, input_pred, logits, edit, definition, names, n_boot)


def test_source_images(images, store, definition: dict, render_cfg: dict, what: str) -> np.ndarray:
    """The real images of the test sources :func:`judge_at_d` renders from ``store`` (the same ``render_codes``
    draw), read from the image store ``images``; ``what`` names them in the error when one is missing."""
    ids = render_codes(store, definition["source"], render_cfg["max_images"], render_cfg["seed"])[1]
    return images.images[images.rows_of(ids, what)]


def at_d_line(cal, n_images: int, values: dict, extra: str = "") -> str:
    """The table line of :func:`judge_at_d`: d (with † and the classifier's peak reading where τ was not reached),
    the three metrics at d, ``extra``, and the three at α = 1."""
    reached = "" if cal.reached else f" †{cal.rate:.3f}"
    return (f"d = {cal.d:.3f}{reached} (n = {n_images}): {cells(values, 1, ' / ', False)}{extra} | α = 1: "
            f"{cells(values, 2, ' / ', False)}")


def layouts(slot_labels: np.ndarray) -> np.ndarray:
    """(N,) str: which slots each image fills, ``x`` filled and ``.`` empty, in slot order (``xx..``; 0 1 / 2 3 row by
    row)."""
    filled = np.where(np.asarray(slot_labels) >= 0, "x", ".")
    return np.array(["".join(row) for row in filled])


def empty_slots_filled(edited_slots: np.ndarray, layout: str, empty: int) -> np.ndarray:
    """(S,) per slot, the share of the edited images (their slots' classes (N, S), ``empty`` that of an empty slot)
    that hold a digit there, for the slots their source ``layout`` leaves empty; NaN for the slots it fills."""
    shares = (np.asarray(edited_slots) != empty).mean(0)
    return np.where(np.array(list(layout)) == "x", np.nan, shares)


def cells(values: dict, i: int, sep: str = "  ", named: bool = True) -> str:
    """The three metrics at α index i, each as value [ci_low, ci_high]."""
    return sep.join((f"{m.replace('_rate', '')} " if named else "")
                    + f"{values[m, i][0]:.3f} [{values[m, i][1]:.3f}, {values[m, i][2]:.3f}]" for m in METRICS)


def write_grid(columns: list[np.ndarray], labels: list[str], folder: str | Path, edit: str) -> None:
    """One PNG per edit in ``folder``: a column per image source (each (K, C, H, W) uint8), K rows."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    image_grid([np.stack(row) for row in zip(*columns)], Path(folder) / f"{edit}.png", col_labels=labels)
    print(f"  wrote {Path(folder) / f'{edit}.png'}")
