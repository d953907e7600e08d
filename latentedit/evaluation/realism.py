"""Realism of edited images: are the edits distributed like real images that have the target attribute?

LW's claim is distributional: its objective pulls the edited codes onto the target codes, where a classifier-driven
edit (LT, InterFaceGAN) may leave the data. Per (method, edit) and α, with features φ of the world's realism
extractor (:func:`latentedit.worlds.load_judge`'s ``realism`` output: digits the oracle's penultimate features, faces
Inception-v3 pool features), E = φ(edited renders at α) (N images), R = φ(real **test** images whose labels match
the definition's target) (M images):

==============  ======================================================================================================
metric          value at one α
==============  ======================================================================================================
``realism_fd``  Fréchet distance ‖μ_E − μ_R‖² + Tr(Σ_E + Σ_R − 2(Σ_E Σ_R)^{1/2}) (FID's formula, Heusel et al. 2017;
                the same as :func:`latentedit.metrics.frechet_distance`)
``realism_kid`` KID: the unbiased MMD² U-statistic between E and R with the cubic polynomial kernel
                k(x, y) = (xᵀy / F + 1)³ (Bińkowski et al. 2018), on all images at once (torch-fidelity, and
                :func:`latentedit.metrics.kid`, average the same U-statistic over random subsets: the same
                expectation)
==============  ======================================================================================================

and one row per (method, edit) at ``alpha`` NaN, ``realism_fd_source``: the Fréchet distance of the real *source*
test images to R — how far an edit has to travel (an edit that only reconstructs scores about this at α = 0).

Intervals (``ci_low``, ``ci_high``): bootstrap over the N edited images with R fixed, as the normal interval
value ± 1.96·SD of the resampled values. Not the percentile interval: resampling with replacement biases both
statistics upward (a resample holds ≈ 63 % distinct images, which inflates the covariance and the within-set kernel
terms), and on the digits world the percentile interval of the Fréchet distance often lay entirely above the
estimate (InterFaceGAN on 1 → 2: 1212.7, percentile interval [1231.6, 1365.9]). The resampled values' spread is
what measures the sampling noise. KID's resampling is exact for every α (a resample is a count vector c: the
U-statistic's within-E term is (cᵀK c − Σ c_i K_ii) / (N(N−1))); the Fréchet distance needs one eigendecomposition per
resample (of the N × N Gram matrix when N < F: :class:`latentedit.metrics.FrechetReference`), so it gets an interval
at the calibrated step only (α = d, the grid's first non-zero step), where the summary reads it.

Both are feature-space distances: digits values compare with each other only, never with published FIDs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from latentedit.evaluation.edit_metrics import ROW_COLUMNS
from latentedit.evaluation.uncertainty import bootstrap_counts, normal_interval
from latentedit.metrics import FrechetReference, polynomial_kernel

FD_BOOTSTRAP = 100  # Fréchet-distance resamples at α = d (one F×F eigendecomposition each)


def kid_resampled(k_xx: np.ndarray, k_yy: np.ndarray, k_xy: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Unbiased MMD² between resamples of X (count vectors ``counts`` (B, N)) and the fixed Y, from the kernel
    matrices K_xx (N, N), K_yy (M, M), K_xy (N, M): one value per resample (B,)."""
    n, m = len(k_xx), len(k_yy)
    xx = (((counts @ k_xx) * counts).sum(1) - counts @ np.diag(k_xx)) / (n * (n - 1))  # cᵀKc − Σ c_i K_ii
    yy = (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    xy = counts @ k_xy.sum(1) / (n * m)
    return xx + yy - 2 * xy


def realism_rows(*, method: str, edit: str, attribute: str, alphas: Sequence[float], edited_features: np.ndarray,
                 target_features: np.ndarray, source_features: np.ndarray, n_boot: int = 1000,
                 fd_boot: int = FD_BOOTSTRAP, seed: int = 0) -> pd.DataFrame:
    """The realism rows of one (method, edit) (module docstring), columns :data:`ROW_COLUMNS`.

    Parameters
    ----------
    alphas : sequence of float, length A
        The render grid: ``alphas[0] = 0``, ``alphas[1] = d``.
    edited_features : ndarray, shape (A, N, F)
    target_features : ndarray, shape (M, F)
        Real test images with the target labels (M ≥ 2).
    source_features : ndarray, shape (N', F)
        Real test images with the source labels.
    n_boot, fd_boot : int
        Bootstrap resamples of KID (every α) and of the Fréchet distance (α = d).
    """
    e = np.asarray(edited_features, dtype=np.float64)
    r = np.asarray(target_features, dtype=np.float64)
    a_n, n, f = e.shape
    if len(alphas) != a_n or r.ndim != 2 or r.shape[1] != f or len(r) < 2 or n < 2:
        raise ValueError(f"realism needs (A, N, F) edited and (M ≥ 2, F) target features with A = {len(alphas)}, "
                         f"got {e.shape} and {r.shape}")
    reference = FrechetReference(r)
    k_yy = polynomial_kernel(r, r)
    counts = bootstrap_counts(n, n_boot, seed)
    fd_counts = counts[:fd_boot]
    rows = []
    for a, alpha in enumerate(alphas):
        x = e[a]
        fd_of = reference.prepared(x)
        fd = fd_of()
        lo = hi = float("nan")
        if a == 1:
            lo, hi = normal_interval(fd, [fd_of(c) for c in fd_counts])
        rows.append((method, edit, attribute, float(alpha), "realism_fd", fd, lo, hi))
        k_xx, k_xy = polynomial_kernel(x, x), polynomial_kernel(x, r)
        value = kid_resampled(k_xx, k_yy, k_xy, np.ones((1, n)))[0]
        lo, hi = normal_interval(value, kid_resampled(k_xx, k_yy, k_xy, counts))
        rows.append((method, edit, attribute, float(alpha), "realism_kid", value, lo, hi))
    s = np.asarray(source_features, dtype=np.float64)
    rows.append((method, edit, attribute, float("nan"), "realism_fd_source", reference.distance(s), float("nan"),
                 float("nan")))
    df = pd.DataFrame(rows, columns=ROW_COLUMNS)
    for col in ("value", "ci_low", "ci_high"):
        df[col] = df[col].astype("float64")
    return df
