"""What the benchmarks that score edits like Table 2 share: a finished run's config, results folder and generator
checkpoint; the image oracle's target change, digits kept and clean-edit rate of renders, with 95 % bootstrap
intervals over the images (``evaluate_edit``'s metrics); and the PNG grid of what was judged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from latentedit.evaluation.edit_metrics import edit_metric_rows
from latentedit.plotting import image_grid

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


def cells(values: dict, i: int, sep: str = "  ", named: bool = True) -> str:
    """The three metrics at α index i, each as value [ci_low, ci_high]."""
    return sep.join((f"{m.replace('_rate', '')} " if named else "")
                    + f"{values[m, i][0]:.3f} [{values[m, i][1]:.3f}, {values[m, i][2]:.3f}]" for m in METRICS)


def write_grid(columns: list[np.ndarray], labels: list[str], folder: str | Path, edit: str) -> None:
    """One PNG per edit in ``folder``: a column per image source (each (K, C, H, W) uint8), K rows."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    image_grid([np.stack(row) for row in zip(*columns)], Path(folder) / f"{edit}.png", col_labels=labels)
    print(f"  wrote {Path(folder) / f'{edit}.png'}")
