"""Latent-space quality metrics of the W* paper's Table 1, computed identically in any space (original or W*).

- **Linear separability**: per attribute l, a linear SVM (``LinearSVC``, codes standardised on the fit set) fitted
  on the fit codes, accuracy on the held-out codes; reported per attribute and as min / max / mean over attributes.
- **DCI** (Eastwood & Williams, ICLR 2018) with Lasso regressors (α = 0.02, the W* seed's value; 0.01 moves D and
  C by ≈ 0.06 on the digits world): factor l (a 0/1 attribute, standardised) is
  regressed on the standardised codes; R_il = |β_il| is the importance of code dimension i for factor l. With
  P_il = R_il / Σ_k R_ik and P̃_il = R_il / Σ_j R_jl,

      D = Σ_i ρ_i (1 − H_A(P_i·)),  ρ_i = Σ_l R_il / Σ_jl R_jl      (disentanglement; entropy in base A)
      C = mean_l (1 − H_D(P̃_·l))                                  (completeness; entropy in base D)
      I = mean_l R²_l on the held-out codes                         (informativeness = 1 − normalised MSE)

  (I is reported as an R² so that all three are "higher is better", in [0, 1] for useful regressors.)
- **Distance agreement** over random pairs (i, j) of held-out codes: δ_ij = (‖x_i − x_j‖² − c·D_perc(i, j)) / m with
  the *original space's* rescaling c and normaliser m (:mod:`latentedit.wstar.losses`) for both spaces; mean and std
  of δ (0 and 0 for a space whose squared distances are exactly the rescaled perceptual ones).
- **2AFC** over random triplets (r, a, b): the fraction on which the latent distance picks the same one of a, b as
  closer to r as the perceptual distance does (ties in the perceptual distance are dropped):

      2AFC = mean 1[ sign(‖x_r − x_a‖ − ‖x_r − x_b‖) = sign(D_perc(r, a) − D_perc(r, b)) ].
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class WStarMetricsConfig:
    """Options of Table 1 (config ``wstar.metrics``; rule ``wstar_metrics``)."""

    max_codes: int = 2000  # per split: train codes fit the SVMs / Lasso regressors, test codes are measured
    n_pairs: int = 5000  # random pairs of the distance-agreement statistics
    n_triplets: int = 5000  # random triplets of the 2AFC score
    lasso_alpha: float = 0.02  # DCI's Lasso L1 weight on standardised codes and factors, as the W* seed
    svm_C: float = 1.0
    seed: int = 0

    @classmethod
    def from_options(cls, options: Mapping) -> WStarMetricsConfig:
        unknown = set(options) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown wstar.metrics options {sorted(unknown)}")
        return cls(**options)

    def to_dict(self) -> dict:
        return asdict(self)


def _flat(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(len(x), -1)


def _standardise(fit: np.ndarray, *others: np.ndarray):
    mu, sd = fit.mean(0), fit.std(0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    return [(x - mu) / sd for x in (fit, *others)]


def svm_accuracy(x_fit, y_fit, x_eval, y_eval, names: Sequence[str], C: float = 1.0, seed: int = 0) -> dict[str, float]:
    """Held-out accuracy of one linear SVM per attribute: {name: accuracy} (NaN when an attribute has one class in
    the fit set)."""
    from sklearn.svm import LinearSVC

    a, b = _standardise(_flat(x_fit), _flat(x_eval))
    y_fit, y_eval = np.asarray(y_fit), np.asarray(y_eval)
    out = {}
    for l, name in enumerate(names):
        if len(np.unique(y_fit[:, l])) < 2:
            out[name] = float("nan")
            continue
        clf = LinearSVC(C=C, dual="auto", random_state=seed, max_iter=5000)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning on near-separable attributes: accuracy is fine
            clf.fit(a, y_fit[:, l])
        out[name] = float((clf.predict(b) == y_eval[:, l]).mean())
    return out


def _entropy(p: np.ndarray, base: int, axis: int) -> np.ndarray:
    p = np.clip(p, 1e-12, None)
    return -(p * np.log(p)).sum(axis) / np.log(base)


def dci(x_fit, y_fit, x_eval, y_eval, alpha: float = 0.02) -> dict[str, float]:
    """Disentanglement, completeness, informativeness (module docstring) with ``Lasso(alpha)`` regressors.

    Parameters
    ----------
    x_fit, x_eval : array, shapes (N, *S), (M, *S)
        Codes to fit the regressors on / to measure informativeness on.
    y_fit, y_eval : array, shapes (N, A), (M, A)
        Factors (attribute labels), standardised with the fit set's statistics.
    alpha : float
        Lasso's L1 weight (on standardised codes and factors).

    Returns
    -------
    dict with ``disentanglement``, ``completeness``, ``informativeness`` and the importance matrix ``R`` (D, A').
    Factors constant on the fit set are skipped.
    """
    from sklearn.linear_model import Lasso

    a, b = _standardise(_flat(x_fit), _flat(x_eval))
    yf, ye = _flat(y_fit), _flat(y_eval)
    keep = yf.std(0) > 1e-12
    yf, ye = _standardise(yf[:, keep], ye[:, keep])
    n_dim, n_fac = a.shape[1], yf.shape[1]
    if n_fac == 0:
        raise ValueError("DCI needs at least one factor that varies on the fit codes")
    R, r2 = np.zeros((n_dim, n_fac)), []
    for l in range(n_fac):
        reg = Lasso(alpha=alpha, max_iter=10_000).fit(a, yf[:, l])
        R[:, l] = np.abs(reg.coef_)
        err = ((reg.predict(b) - ye[:, l]) ** 2).mean()
        var = ye[:, l].var()
        r2.append(1.0 - err / var if var > 1e-12 else float("nan"))
    total = R.sum()
    if total <= 0:
        return {"disentanglement": 0.0, "completeness": 0.0, "informativeness": float(np.nanmean(r2)), "R": R}
    row = R.sum(1)
    used = row > 0
    p_row = R[used] / row[used, None]
    d_i = 1.0 - (_entropy(p_row, n_fac, 1) if n_fac > 1 else np.zeros(used.sum()))
    disent = float((row[used] / total * d_i).sum())
    col = R.sum(0)
    has = col > 0
    p_col = R[:, has] / col[None, has]
    c_l = 1.0 - (_entropy(p_col, n_dim, 0) if n_dim > 1 else np.zeros(has.sum()))
    complete = float(np.concatenate([c_l, np.zeros((~has).sum())]).mean())
    return {"disentanglement": disent, "completeness": complete, "informativeness": float(np.nanmean(r2)), "R": R}


def random_pairs(n: int, n_pairs: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n_pairs random pairs (i, j), i ≠ j."""
    i = rng.integers(0, n, n_pairs)
    j = (i + rng.integers(1, n, n_pairs)) % n
    return i, j


def indexed_sq_distances(x, i, j, budget: int = 2 ** 24) -> np.ndarray:
    """‖x_i − x_j‖² (float64) over index arrays i, j of rows of x (N, *S), ``budget`` differences at a time (VGG16
    features are 43,904-d: 5000 pairs at once would be 1.8 GB of float64)."""
    x = np.asarray(x)
    x = x.reshape(len(x), -1)
    i, j = np.asarray(i), np.asarray(j)
    step = max(1, budget // max(x.shape[1], 1))
    out = [((x[i[s:s + step]].astype(np.float64) - x[j[s:s + step]].astype(np.float64)) ** 2).sum(1)
           for s in range(0, len(i), step)]
    return np.concatenate(out) if out else np.zeros(0)


def distance_agreement(x, features, i, j, scale: float, norm: float) -> dict[str, float]:
    """Mean and std of δ_ij = (‖x_i − x_j‖² − scale·‖φ_i − φ_j‖²) / norm over the given pairs."""
    d_lat = indexed_sq_distances(x, i, j)
    d_per = indexed_sq_distances(features, i, j)
    delta = (d_lat - scale * d_per) / norm
    return {"distance_diff_mean": float(delta.mean()), "distance_diff_std": float(delta.std())}


def two_afc(latent_dist, perceptual_dist, r, a, b) -> float:
    """2AFC agreement on triplets (r, a, b) given two distance functions f(i, j) → (n,) over index arrays."""
    dl = latent_dist(r, a) - latent_dist(r, b)
    dp = perceptual_dist(r, a) - perceptual_dist(r, b)
    keep = dp != 0
    if not keep.any():
        return float("nan")
    return float((np.sign(dl[keep]) == np.sign(dp[keep])).mean())


def random_triplets(n: int, n_triplets: int, rng: np.random.Generator):
    """n_triplets (r, a, b) of distinct indices (n ≥ 3)."""
    if n < 3:
        raise ValueError("2AFC needs at least 3 codes")
    r = rng.integers(0, n, n_triplets)
    a = (r + rng.integers(1, n, n_triplets)) % n
    b = rng.integers(0, n, n_triplets)
    bad = (b == r) | (b == a)
    while bad.any():
        b[bad] = rng.integers(0, n, bad.sum())
        bad = (b == r) | (b == a)
    return r, a, b


def sq_dist_fn(x):
    return lambda i, j: indexed_sq_distances(x, i, j)


def space_metrics(x_fit, y_fit, x_eval, y_eval, f_eval, names: Sequence[str], scale: float, norm: float,
                  n_pairs: int = 5000, n_triplets: int = 5000, lasso_alpha: float = 0.02, svm_C: float = 1.0,
                  seed: int = 0) -> dict:
    """Every Table-1 metric of one space: ``svm_accuracy`` {attr: acc} and its min/max/mean, DCI, distance agreement
    and 2AFC (pairs and triplets drawn from ``seed``, so two spaces measured with one seed share them)."""
    svm = svm_accuracy(x_fit, y_fit, x_eval, y_eval, names, svm_C, seed)
    acc = np.array([v for v in svm.values() if np.isfinite(v)])
    d = dci(x_fit, y_fit, x_eval, y_eval, lasso_alpha)
    rng = np.random.default_rng(seed)
    i, j = random_pairs(len(x_eval), n_pairs, rng)
    r, a, b = random_triplets(len(x_eval), n_triplets, rng)
    return {"svm_accuracy": svm, "svm_accuracy_min": float(acc.min()), "svm_accuracy_max": float(acc.max()),
            "svm_accuracy_mean": float(acc.mean()), "dci_disentanglement": d["disentanglement"],
            "dci_completeness": d["completeness"], "dci_informativeness": d["informativeness"],
            **distance_agreement(x_eval, f_eval, i, j, scale, norm),
            "two_afc": two_afc(sq_dist_fn(x_eval), sq_dist_fn(f_eval), r, a, b)}


TABLE_METRICS = ["svm_accuracy_min", "svm_accuracy_max", "svm_accuracy_mean", "dci_disentanglement",
                 "dci_completeness", "dci_informativeness", "distance_diff_mean", "distance_diff_std", "two_afc"]


def metrics_rows(spaces: dict[str, dict]) -> pd.DataFrame:
    """Long rows (``attribute``, ``metric``, ``value``) of {space: space_metrics(...)}: metric ``<space>.<name>``;
    per-attribute SVM accuracies carry the attribute."""
    rows = []
    for space, m in spaces.items():
        for name in TABLE_METRICS:
            rows.append({"attribute": None, "metric": f"{space}.{name}", "value": float(m[name])})
        for attr, v in m["svm_accuracy"].items():
            rows.append({"attribute": attr, "metric": f"{space}.svm_accuracy", "value": float(v)})
    return pd.DataFrame(rows, columns=["attribute", "metric", "value"])


def table1(df: pd.DataFrame) -> pd.DataFrame:
    """Table 1 view of :func:`metrics_rows`: one row per metric, one column per space."""
    summary = df[df["attribute"].isna()]
    split = summary["metric"].str.split(".", n=1, expand=True)
    t = pd.DataFrame({"space": split[0], "metric": split[1], "value": summary["value"].to_numpy()})
    out = t.pivot(index="metric", columns="space", values="value").reindex(TABLE_METRICS)
    return out.reset_index()
