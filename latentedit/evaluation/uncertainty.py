"""Uncertainty of the published numbers: bootstrap intervals over test images, spread over training seeds.

**Over images.** Every rate, preservation, identity and rescoring number of :mod:`latentedit.evaluation.edit_metrics`
is a mean over the N rendered test images of a per-image value v_n (an indicator, a fraction of kept attributes,
a cosine). Its 95 % interval is the percentile bootstrap (Efron & Tibshirani 1993, ch. 13): draw B resamples of
the N images with replacement, take the 2.5 and 97.5 percentiles of the B resampled means. A resample is a vector
of multinomial counts c (Σ c_n = N), so the B means are one matrix product (v · cᵀ / N) — no (B, N, …) copy of the
values. The same resamples are used for every metric and every α of a (method, edit), so intervals of two metrics
of one job come from the same bootstrap world. The tests check coverage at the nominal level by simulation.

**Over seeds.** With ``edits.seeds`` listing S > 1 seeds, every (method, edit) is trained S times; the summary
reports mean ± sample standard deviation (ddof = 1) of each number across seeds (:func:`seed_spread`).
"""

from __future__ import annotations

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


def bootstrap_statistic_interval(statistic, n: int, n_boot: int, seed: int = 0,
                                 level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of ``statistic(indices)`` over ``n_boot`` resamples of ``n`` items (for statistics that
    are not means, e.g. a Fréchet distance; each call gets an (n,) index array drawn with replacement)."""
    rng = np.random.default_rng(seed)
    values = [statistic(rng.integers(0, n, size=n)) for _ in range(n_boot)]
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def seed_spread(values) -> tuple[float, float, int]:
    """(mean, sample std, count) of one number measured once per seed (std NaN for a single seed)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan"), 0
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else float("nan"), int(len(v))
