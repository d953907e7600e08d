"""Absolute correlation γ between binary attributes: γ_lk = |φ(a_l, a_k)|, the phi coefficient.

For 0/1 columns the Pearson correlation is the phi coefficient of their 2×2 contingency table,

    φ_lk = (n₁₁ n₀₀ − n₁₀ n₀₁) / √(n₁• n₀• n•₁ n•₀),

which is what the Latent Transformer (Yao et al. 2021) computes with ``np.corrcoef`` over the label table and LW
(Doubinsky et al. 2023) uses to weight its attribute-preservation loss: w_l = 1 − γ_lk, so attributes tied to the
edited attribute k are free to change with it. A constant column (an attribute nobody or everybody has in the split)
has no defined correlation; here it is uncorrelated with every other attribute (γ = 0, the LT repository's NaN → 0)
and γ_ll = 1 on the diagonal, so no NaN ever reaches a loss.
"""

from __future__ import annotations

import numpy as np


def correlation_matrix(attributes: np.ndarray, absolute: bool = True) -> np.ndarray:
    """Pairwise (absolute) Pearson correlation of binary attribute columns.

    Parameters
    ----------
    attributes : ndarray, shape (N, A)
        Binary labels (any dtype holding 0/1, e.g. the latent store's uint8 ``attributes``), usually of the training
        split. N ≥ 1.
    absolute : bool
        Return |φ| (γ, default) or the signed φ.

    Returns
    -------
    ndarray, shape (A, A), float64
        Symmetric, with 1 on the diagonal and entries in [0, 1] (absolute) or [−1, 1] (signed). Columns that are
        constant over the N rows get 0 off the diagonal.
    """
    x = np.asarray(attributes, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"attributes must have shape (N, A) with N ≥ 1, got {x.shape}")
    if not np.isin(x, (0.0, 1.0)).all():
        raise ValueError("attributes must be binary (0/1)")
    xc = x - x.mean(0)  # (N, A)
    cov = xc.T @ xc / len(x)  # (A, A)
    std = np.sqrt(np.diag(cov))  # (A,)
    varying = std > 0
    denom = np.outer(std, std)
    corr = np.zeros_like(cov)
    both = np.outer(varying, varying)
    corr[both] = cov[both] / denom[both]
    corr = np.clip(corr, -1.0, 1.0)  # rounding can leave |φ| a hair above 1
    np.fill_diagonal(corr, 1.0)
    return np.abs(corr) if absolute else corr


def write_correlations(path, gamma: np.ndarray, attribute_names) -> None:
    """Write γ as a CSV table (header and index = attribute names, ``%.6g``), atomically."""
    import pandas as pd

    from latentedit.io.atomic import atomic_path

    gamma = np.asarray(gamma, dtype=np.float64)
    names = list(attribute_names)
    if gamma.shape != (len(names), len(names)):
        raise ValueError(f"gamma has shape {gamma.shape} for {len(names)} attribute names")
    with atomic_path(path) as tmp:
        pd.DataFrame(gamma, index=pd.Index(names, name="attribute"), columns=names).to_csv(tmp, float_format="%.6g")


def read_correlations(path, attribute_names=None) -> tuple[np.ndarray, list[str]]:
    """Read a table written by :func:`write_correlations`: (γ (A, A), names).

    With ``attribute_names`` the table is returned in that order and must hold exactly those attributes
    (a ValueError names the file otherwise). Parsed with ``csv``, not pandas: every LW and LT training job reads it,
    and importing pandas is ≈ 0.55 s of a job.
    """
    import csv

    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    if not rows:
        raise ValueError(f"{path}: empty correlation table")
    names = [str(c) for c in rows[0][1:]]
    if [r[0] for r in rows[1:]] != names or any(len(r) != len(names) + 1 for r in rows[1:]):
        raise ValueError(f"{path}: rows and columns of the correlation table disagree")
    try:
        gamma = np.array([[float(v) for v in r[1:]] for r in rows[1:]], dtype=np.float64).reshape(len(names),
                                                                                               len(names))
    except ValueError as err:
        raise ValueError(f"{path}: correlation table holds a value that is not a number ({err})") from None
    if attribute_names is not None:
        wanted = list(attribute_names)
        if sorted(wanted) != sorted(names):
            raise ValueError(f"{path}: correlation table has attributes {names}, expected {wanted}")
        order = [names.index(n) for n in wanted]
        gamma, names = gamma[np.ix_(order, order)], wanted
    if not np.isfinite(gamma).all():
        raise ValueError(f"{path}: correlation table holds non-finite values")
    return gamma, names
