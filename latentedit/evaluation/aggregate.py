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

:func:`summary_table` is the paper's Table 1/2 view: per (edit, method, seed) at the calibrated step α = d (the
smallest α at which the latent classifier reports the calibration rate τ of target change on validation codes), the
latent and the image target-change rates side by side, with attribute preservation, identity, realism and the latent
distance to the target, each with its 95 % bootstrap interval over test images; :func:`seed_summary` aggregates the
seeds (mean ± std) and :func:`summary_markdown` writes the cells people read.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from latentedit import __version__
from latentedit.evaluation.uncertainty import seed_spread
from latentedit.io.provenance import TIMING_KEYS, creation_time

COLUMNS = ["world", "source", "method", "edit", "seed", "attribute", "alpha", "step", "metric", "value", "ci_low",
           "ci_high", "config_hash", "generator_hash", "encoder_hash", "library_version", "created"]
# The numbers of the Table-1/2 view, read at α = d: the image oracle's and the latent classifier's, identity,
# realism (digits: oracle features; faces: Inception) and the latent distance to the target codes
TABLE2_METRICS = ["latent_target_change_rate", "target_change_rate", "attribute_preservation", "identity",
                  "attribute_preservation_input"]
REALISM_METRICS = ["realism_fd", "realism_kid", "realism_fd_source", "latent_sinkhorn_to_target",
                   "latent_sinkhorn_floor"]
# Judges that read image parts (digits: the slot oracle): the existing digits kept, and the target reached with them
# kept (NaN in worlds whose judge has no parts)
SLOT_METRICS = ["slots_kept", "clean_edit_rate"]
SUMMARY_METRICS = TABLE2_METRICS + SLOT_METRICS + REALISM_METRICS
# One value per (method, edit, seed), no α: real source vs real target images, real target codes vs test targets
PER_EDIT_METRICS = ("realism_fd_source", "latent_sinkhorn_floor")
SUMMARY_COLUMNS = ["edit", "method", "seed", "d", "calibrated", "n_images",
                   *[f"{m}{suffix}" for m in SUMMARY_METRICS for suffix in ("", "_ci_low", "_ci_high")]]
SEED_SUMMARY_COLUMNS = ["edit", "method", "n_seeds", "d", "calibrated", "n_images",
                        *[f"{m}{suffix}" for m in SUMMARY_METRICS for suffix in ("", "_std", "_ci_low", "_ci_high")]]


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


def history_rows(method: str, edit: str, seed: int, history: pd.DataFrame) -> pd.DataFrame:
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
                rows.append({"method": method, "edit": edit, "seed": seed, "step": step, "metric": f"{tag}.{col}",
                             "value": float(row[col])})
    return pd.DataFrame(rows)


def collect(edit_metrics: Iterable[pd.DataFrame], histories: Mapping[tuple[str, str, int], pd.DataFrame],
            stage_metrics: Mapping[str, Mapping], provenance: Mapping[str, str], world: str,
            created: str | None = None, extra: Iterable[pd.DataFrame] = ()) -> pd.DataFrame:
    """The run's long table (columns :data:`COLUMNS`); see the module docstring. ``extra``: further long tables
    that carry their own ``source`` column (the W* metrics)."""
    parts = list(extra)
    for df in edit_metrics:
        parts.append(df.assign(source="edit_metrics"))
    for (method, edit, seed), h in histories.items():
        parts.append(history_rows(method, edit, seed, h).assign(source="edit_training"))
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
    for col in ("alpha", "step", "value", "ci_low", "ci_high"):
        df[col] = df[col].astype("float64")
    df["seed"] = df["seed"].astype("Int64")  # <NA> on the rows of stages that have no edit seed
    for col in ("source", "method", "edit", "attribute", "metric"):
        df[col] = df[col].astype("string")
    return df


def calibration_from_table(df: pd.DataFrame) -> dict[tuple[str, str, int], dict]:
    """Per (method, edit, seed), the calibration the edit-metrics rows carry (``calibration.<key>`` metrics, written
    from each render store's ``calibration`` attr): ``d``, ``reached``, ``n_images``, and ``tau`` etc. as floats."""
    cal = df[df["metric"].str.startswith("calibration.")]
    out = {}
    for (method, edit, seed), g in cal.groupby(["method", "edit", "seed"]):
        values = dict(zip(g["metric"].str.removeprefix("calibration."), g["value"].astype(float)))
        out[str(method), str(edit), int(seed)] = {**values, "reached": bool(values["reached"]),
                                                  "n_images": int(values["n_images"])}
    return out


def summary_table(df: pd.DataFrame, calibration: Mapping[tuple[str, str, int], Mapping]) -> pd.DataFrame:
    """Per (edit, method, seed): the metrics at α = d with their 95 % intervals over images (columns
    :data:`SUMMARY_COLUMNS`; NaN where a metric has no interval).

    ``calibration`` maps (method, edit, seed) to the render store's calibration (``d``, ``reached``) and ``n_images``.
    """
    m = df[df["source"] == "edit_metrics"]
    rows = []
    for (method, edit, seed), cal in sorted(calibration.items(), key=lambda kv: (kv[0][1], kv[0][0], kv[0][2])):
        sel = m[(m["method"] == method) & (m["edit"] == edit) & (m["seed"] == seed)]
        alphas = sorted(a for a in sel["alpha"].dropna().unique() if a > 0)
        d = float(cal["d"])
        at = min(alphas, key=lambda a: abs(a - d)) if alphas else 0.0
        row = {"edit": edit, "method": method, "seed": seed, "d": d, "calibrated": bool(cal.get("reached", False)),
               "n_images": int(cal.get("n_images", 0))}
        here = sel[((sel["alpha"] == at) | sel["metric"].isin(PER_EDIT_METRICS))
                   & sel["metric"].isin(SUMMARY_METRICS)].set_index("metric")
        for metric in SUMMARY_METRICS:
            for suffix, col in (("", "value"), ("_ci_low", "ci_low"), ("_ci_high", "ci_high")):
                row[metric + suffix] = float(here.at[metric, col]) if metric in here.index else float("nan")
        rows.append(row)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def seed_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """Per (edit, method), across seeds (:func:`latentedit.evaluation.uncertainty.seed_spread`): the mean of every
    summary number, its sample std over seeds (``_std``, NaN for one seed) and the mean of the seeds' 95 % image
    intervals (``_ci_low``/``_ci_high``: with one seed, that seed's interval); ``d`` is the mean step, ``calibrated``
    whether every seed reached τ. Columns :data:`SEED_SUMMARY_COLUMNS`."""
    rows = []
    for (edit, method), g in summary.groupby(["edit", "method"], sort=True):
        row = {"edit": edit, "method": method, "n_seeds": int(len(g)), "d": float(g["d"].mean()),
               "calibrated": bool(g["calibrated"].all()), "n_images": int(g["n_images"].min())}
        for metric in SUMMARY_METRICS:
            mean, std, _ = seed_spread(g[metric])
            row.update({metric: mean, f"{metric}_std": std, f"{metric}_ci_low": float(g[f"{metric}_ci_low"].mean()),
                        f"{metric}_ci_high": float(g[f"{metric}_ci_high"].mean())})
        rows.append(row)
    return pd.DataFrame(rows, columns=SEED_SUMMARY_COLUMNS)


def summary_markdown(seeds: pd.DataFrame, columns: Iterable[str] = SUMMARY_METRICS, digits: int = 3) -> pd.DataFrame:
    """The seed summary as text cells for ``summary.md``: ``value [low, high]`` (95 % interval over images), and with
    several seeds ``mean ± std [low, high]``; metrics without an interval show the value (± std) alone."""
    out = seeds[["edit", "method", "n_seeds", "d", "calibrated"]].copy()
    out["d"] = out["d"].map(lambda v: f"{v:.{digits}g}")
    for metric in columns:
        cells = []
        for _, r in seeds.iterrows():
            v, std, lo, hi = r[metric], r[f"{metric}_std"], r[f"{metric}_ci_low"], r[f"{metric}_ci_high"]
            if not math.isfinite(v):
                cells.append("")
                continue
            cell = f"{v:.{digits}f}" if abs(v) < 100 else f"{v:.1f}"
            if math.isfinite(std):
                cell += f" ± {std:.{digits}f}"
            if math.isfinite(lo) and math.isfinite(hi):
                cell += f" [{lo:.{digits}f}, {hi:.{digits}f}]" if abs(hi) < 100 else f" [{lo:.1f}, {hi:.1f}]"
            cells.append(cell)
        out[metric] = cells
    return out


def rescoring_matrices(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The re-scoring analysis per method: an edits × attributes table of the change of every attribute's judged
    probability at α = d (the ``rescoring`` rows of :mod:`latentedit.evaluation.edit_metrics` at the rendered α
    nearest each seed's d), averaged over seeds; attributes in the order the rows list them."""
    calibration = calibration_from_table(df)
    rows = df[(df["source"] == "edit_metrics") & (df["metric"] == "rescoring")]
    picked = []
    for (method, edit, seed), g in rows.groupby(["method", "edit", "seed"], sort=False):
        d = calibration.get((str(method), str(edit), int(seed)), {}).get("d", 0.0)
        alphas = [a for a in g["alpha"].unique() if a > 0]
        if alphas:
            picked.append(g[g["alpha"] == min(alphas, key=lambda a: abs(a - d))])
    if not picked:
        return {}
    at_d = pd.concat(picked)
    attributes = list(dict.fromkeys(at_d["attribute"]))
    out = {}
    for method, g in at_d.groupby("method", sort=True):
        table = g.pivot_table(index="edit", columns="attribute", values="value", aggfunc="mean")
        out[str(method)] = table.reindex(columns=attributes).sort_index()
    return out
