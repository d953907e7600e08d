"""Uncertainty of the published numbers: bootstrap intervals over test images, spread over training seeds.

**Over images.** Every rate, preservation, identity and rescoring number of :mod:`latentedit.evaluation.edit_metrics`
is a mean over the N rendered test images of a per-image value v_n (an indicator, a fraction of kept attributes,
a cosine). Its 95 % interval is the percentile bootstrap (Efron & Tibshirani 1993, ch. 13): draw B resamples of
the N images with replacement, take the 2.5 and 97.5 percentiles of the B resampled means. A resample is a vector
of multinomial counts c (Σ c_n = N), so the B means are one matrix product (v · cᵀ / N) — no (B, N, …) copy of the
values. The same resamples are used for every metric and every α of a (method, edit), so intervals of two metrics
of one job come from the same bootstrap world. The tests check coverage at the nominal level by simulation.

Statistics that are not means of per-image values and whose resamples are biased (the realism distances) use the
normal bootstrap interval instead (:func:`normal_interval`: estimate ± 1.96·SD of the resampled values).

**Over seeds.** With ``edits.seeds`` listing S > 1 seeds, every (method, edit) is trained S times; the summary
reports mean ± sample standard deviation (ddof = 1) of each number across seeds (:func:`seed_spread`).
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

N_BOOTSTRAP = 1000  # resamples per interval: percentile endpoints move by < 0.01 for rates at N = 300 (tests)
LEVEL = 0.95


def bootstrap_counts(n: int, n_boot: int = N_BOOTSTRAP, seed: int = 0) -> np.ndarray:
    """(B, N) multinomial counts of B resamples of N items with replacement (each row sums to N)."""
    if n < 1:
        raise ValueError("the bootstrap needs at least one item")
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)


def bootstrap_mean_interval(values: np.ndarray, counts: np.ndarray, level: float = LEVEL,
                            axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of the mean of ``values`` over its image axis.

    Parameters
    ----------
    values : ndarray, shape (..., N, ...)
        Per-image values; ``axis`` is the image axis (length N). NaNs are not allowed.
    counts : ndarray, shape (B, N)
        Resamples from :func:`bootstrap_counts`.
    level : float
        Coverage of the interval (0.95: the 2.5 and 97.5 percentiles).

    Returns
    -------
    low, high : ndarrays with the image axis removed.
    """
    v = np.moveaxis(np.asarray(values, dtype=np.float64), axis, -1)  # (..., N)
    if v.shape[-1] != counts.shape[1]:
        raise ValueError(f"{v.shape[-1]} values per resample axis, {counts.shape[1]} in the resamples")
    if not np.isfinite(v).all():
        raise ValueError("bootstrap values must be finite")
    means = v @ counts.T / counts.shape[1]  # (..., B)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(means, [tail, 100 - tail], axis=-1)
    return low, high


def normal_interval(estimate: float, resampled, level: float = LEVEL) -> tuple[float, float]:
    """The normal bootstrap interval estimate ± z·SD(resampled) (z = 1.96 at 95 %), for statistics whose resampled
    values are biased (the Fréchet distance, KID: :mod:`latentedit.evaluation.realism`), where the percentile interval
    can miss the estimate itself."""
    half = NormalDist().inv_cdf(0.5 + level / 2) * float(np.std(np.asarray(resampled, dtype=np.float64), ddof=1))
    return float(estimate) - half, float(estimate) + half


def seed_spread(values) -> tuple[float, float, int]:
    """(mean, sample std, count) of one number measured once per seed (std NaN for a single seed)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan"), 0
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else float("nan"), int(len(v))
