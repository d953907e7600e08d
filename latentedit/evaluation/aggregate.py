"""One long-format results table for a run, and the summaries people read.

:func:`collect` stacks every measurement of a run into one table with the columns :data:`COLUMNS`:

- ``source = "edit_metrics"``: :mod:`latentedit.evaluation.edit_metrics` rows, one per (method, edit, α, metric);
- ``source = "edit_training"``: the last and best rows of each edit model's training history (``step`` = epoch);
- ``source = "wstar_metrics"``: the W* paper's Table 1 in both spaces (:mod:`latentedit.wstar.metrics`; metric
  ``<space>.<name>``, per-attribute SVM accuracies with their ``attribute``), when the W* stage runs;
- ``source = "<name>"``: flat JSON metrics of the other stages (DLSGAN quality, inversion quality, oracle and
  latent-classifier accuracies), with ``metric`` the dotted key path;

plus the run's provenance on every row: ``config_hash`` (of the config without plotting options, so restyling a
figure does not change the results), ``generator_hash``, ``encoder_hash``, ``library_version`` and ``created``
(:func:`latentedit.io.provenance.creation_time`: with ``SOURCE_DATE_EPOCH`` set, two runs of the same config and seed
on the same machine write byte-identical tables).

:func:`summary_table` is the paper's Table 1/2 view: per (edit, method) at the calibrated step α = d (the smallest α
at which the latent classifier reports the calibration rate τ of target change on validation codes), the latent and
the image target-change rates side by side, with attribute preservation and identity.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from latentedit import __version__
from latentedit.io.provenance import TIMING_KEYS, creation_time

COLUMNS = ["world", "source", "method", "edit", "attribute", "alpha", "step", "metric", "value", "config_hash",
           "generator_hash", "encoder_hash", "library_version", "created"]
SUMMARY_COLUMNS = ["edit", "method", "d", "calibrated", "latent_target_change_rate", "target_change_rate",
                   "attribute_preservation", "identity", "attribute_preservation_input", "n_images"]


def flatten(d: Mapping, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a nested mapping, keyed by dotted paths (booleans as 0/1; strings dropped)."""
    out = {}
    for key, v in d.items():
        name = f"{prefix}{key}"
        if isinstance(v, Mapping):
            out.update(flatten(v, name + "."))
        elif isinstance(v, (bool, int, float, np.integer, np.floating)) and math.isfinite(float(v)):
            out[name] = float(v)
    return out


def history_rows(method: str, edit: str, history: pd.DataFrame) -> pd.DataFrame:
    """The final and the best epoch of a training history as long rows (metric ``final.<col>`` / ``best.<col>``)."""
    numeric = history.select_dtypes("number")
    rows = []
    picks = [("final", history.iloc[-1])]
    if "best" in history:
        best = history[history["best"].astype(str).str.lower() == "true"]
        if len(best):
            picks.append(("best", best.iloc[-1]))
    for tag, row in picks:
        step = float(row["epoch"]) if "epoch" in row else float("nan")
        for col in numeric.columns:
            if col != "epoch" and col not in TIMING_KEYS and pd.notna(row[col]):
                rows.append({"method": method, "edit": edit, "step": step, "metric": f"{tag}.{col}",
                             "value": float(row[col])})
    return pd.DataFrame(rows)


def collect(edit_metrics: Iterable[pd.DataFrame], histories: Mapping[tuple[str, str], pd.DataFrame],
            stage_metrics: Mapping[str, Mapping], provenance: Mapping[str, str], world: str,
            created: str | None = None, extra: Iterable[pd.DataFrame] = ()) -> pd.DataFrame:
    """The run's long table (columns :data:`COLUMNS`); see the module docstring. ``extra``: further long tables
    that carry their own ``source`` column (the W* metrics)."""
    parts = list(extra)
    for df in edit_metrics:
        parts.append(df.assign(source="edit_metrics"))
    for (method, edit), h in histories.items():
        parts.append(history_rows(method, edit, h).assign(source="edit_training"))
    for name, metrics in stage_metrics.items():
        flat = flatten(metrics)
        parts.append(pd.DataFrame({"metric": list(flat), "value": list(flat.values())}).assign(source=name))
    df = pd.concat([p for p in parts if len(p)], ignore_index=True) if parts else pd.DataFrame()
    df = df.reindex(columns=COLUMNS)
    df["world"] = world
    for key in ("config_hash", "generator_hash", "encoder_hash"):
        df[key] = str(provenance.get(key, ""))
    df["library_version"] = __version__
    df["created"] = created or creation_time()
    for col in ("alpha", "step", "value"):
        df[col] = df[col].astype("float64")
    for col in ("source", "method", "edit", "attribute", "metric"):
        df[col] = df[col].astype("string")
    return df


def calibration_from_table(df: pd.DataFrame) -> dict[tuple[str, str], dict]:
    """Per (method, edit), the calibration the edit-metrics rows carry (``calibration.<key>`` metrics, written from
    each render store's ``calibration`` attr): ``d``, ``reached``, ``n_images``, and ``tau`` etc. as floats."""
    cal = df[df["metric"].str.startswith("calibration.")]
    out = {}
    for (method, edit), g in cal.groupby(["method", "edit"]):
        values = dict(zip(g["metric"].str.removeprefix("calibration."), g["value"].astype(float)))
        out[str(method), str(edit)] = {**values, "reached": bool(values["reached"]),
                                       "n_images": int(values["n_images"])}
    return out


def summary_table(df: pd.DataFrame, calibration: Mapping[tuple[str, str], Mapping]) -> pd.DataFrame:
    """Per (edit, method): the metrics at α = d (columns :data:`SUMMARY_COLUMNS`).

    ``calibration`` maps (method, edit) to the render store's calibration (``d``, ``reached``) and ``n_images``.
    """
    m = df[df["source"] == "edit_metrics"]
    rows = []
    for (method, edit), cal in sorted(calibration.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        sel = m[(m["method"] == method) & (m["edit"] == edit) & m["alpha"].notna()]
        alphas = sorted(a for a in sel["alpha"].unique() if a > 0)
        d = float(cal["d"])
        at = min(alphas, key=lambda a: abs(a - d)) if alphas else 0.0
        row = {"edit": edit, "method": method, "d": d, "calibrated": bool(cal.get("reached", False)),
               "n_images": int(cal.get("n_images", 0))}
        here = sel[(sel["alpha"] == at) & (sel["metric"] != "attribute_agreement")]
        values = dict(zip(here["metric"], here["value"]))
        for col in SUMMARY_COLUMNS:
            if col not in row:
                row[col] = values.get(col, float("nan"))
        rows.append(row)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
