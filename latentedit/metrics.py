"""Image-quality and distribution metrics: PSNR, SSIM, Fréchet distance, KID.

The Fréchet distance is FID's formula, ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^{1/2}), and :func:`kid` is KID's unbiased
MMD², both on whatever features they are given (the judge's ``realism`` output, :func:`latentedit.worlds.load_judge`):
the digits oracle's penultimate features, whose values are comparable only with each other, or on faces
Inception-v3 pool features from the user's weights, which makes them FID and KID (tests/test_realism.py checks them
against torch-fidelity).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """Per-image PSNR (dB) of (B, C, H, W) images; data_range 2 for images in [-1, 1]."""
    mse = ((x - y) ** 2).flatten(1).mean(1).clamp_min(1e-12)
    return 10 * torch.log10(data_range ** 2 / mse)


def _gaussian_window(size: int, sigma: float, channels: int) -> torch.Tensor:
    g = torch.exp(-((torch.arange(size, dtype=torch.float64) - (size - 1) / 2) ** 2) / (2 * sigma ** 2))
    g = (g / g.sum()).float()
    return (g[:, None] @ g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0, window: int = 7, sigma: float = 1.5) -> torch.Tensor:
    """Per-image SSIM (Wang et al. 2004) with a Gaussian window, valid convolution, K1=0.01, K2=0.03."""
    c = x.shape[1]
    w = _gaussian_window(window, sigma, c).to(x)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = F.conv2d(x, w, groups=c), F.conv2d(y, w, groups=c)
    sxx = F.conv2d(x * x, w, groups=c) - mu_x ** 2
    syy = F.conv2d(y * y, w, groups=c) - mu_y ** 2
    sxy = F.conv2d(x * y, w, groups=c) - mu_x * mu_y
    m = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (sxx + syy + c2))
    return m.flatten(1).mean(1)


def _psd_sqrt(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(a)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


class FrechetReference:
    """A fixed reference set's Gaussian (μ_R, Σ_R, Σ_R^{1/2}), to measure many sets (or resamples of one set)
    against it with FID's formula without redoing the reference's F×F square root.

    Tr((Σ_X Σ_R)^{1/2}) = Σ √λ(Σ_R^{1/2} Σ_X Σ_R^{1/2}) (same spectrum, symmetric PSD, stable when singular). With
    Σ_X = X_cᵀ diag(c) X_c / (n − 1) (c: per-row counts of a resample, 1 by default), that matrix is MᵀM with
    M = diag(√c) X_c Σ_R^{1/2} / √(n − 1), whose non-zero eigenvalues are those of the n × n Gram matrix M Mᵀ —
    so for n < F (300 renders of 2048-d Inception features) one n × n eigendecomposition replaces an F × F one, and
    X Σ_R^{1/2} is computed once per set.
    """

    def __init__(self, feats: np.ndarray):
        r = np.asarray(feats, dtype=np.float64)
        if r.ndim != 2 or len(r) < 2:
            raise ValueError(f"the reference needs (M ≥ 2, F) features, got {r.shape}")
        self.mu = r.mean(0)
        self.cov = np.atleast_2d(np.cov(r, rowvar=False))
        self.root = _psd_sqrt(self.cov)
        self.trace = float(np.trace(self.cov))

    def distance(self, feats: np.ndarray, counts: np.ndarray | None = None) -> float:
        """Fréchet distance of ``feats`` (N, F) — or of the resample with per-row ``counts`` (N,) — to the reference."""
        return self.prepared(feats)(counts)

    def prepared(self, feats: np.ndarray):
        """``counts ↦ distance`` for one set, with X Σ_R^{1/2} computed once (for bootstrap resamples of the set)."""
        x = np.asarray(feats, dtype=np.float64)
        n = len(x)
        if x.ndim != 2 or x.shape[1] != len(self.mu) or n < 2:
            raise ValueError(f"features (N ≥ 2, {len(self.mu)}) expected, got {x.shape}")
        xr = x @ self.root  # (N, F)

        def distance(counts: np.ndarray | None = None) -> float:
            c = np.ones(n) if counts is None else np.asarray(counts, dtype=np.float64)
            mu = c @ x / n
            xc = x - mu
            trace_x = float((c * (xc ** 2).sum(1)).sum()) / (n - 1)  # Tr Σ_X
            m = np.sqrt(c)[:, None] * (xr - mu @ self.root) / np.sqrt(n - 1)  # (N, F)
            gram = m @ m.T if n < m.shape[1] else m.T @ m
            tr_covmean = float(np.sqrt(np.clip(np.linalg.eigvalsh(gram), 0, None)).sum())
            return float(((mu - self.mu) ** 2).sum() + trace_x + self.trace - 2 * tr_covmean)

        return distance


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, F) (FID's formula; see
    :class:`FrechetReference` for how the trace term is computed)."""
    return FrechetReference(feats_b).distance(feats_a)


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """KID's kernel k(x, y) = (xᵀy / F + 1)³ for (N, F) and (M, F) features → (N, M)."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def kid(feats_a: np.ndarray, feats_b: np.ndarray, subset_size: int = 1000, n_subsets: int = 100,
        seed: int = 2020) -> tuple[float, float]:
    """Kernel Inception Distance (Bińkowski et al. 2018): the unbiased MMD² with k(x, y) = (xᵀy/d + 1)³.

    MMD²_u = [Σ_{i≠j} k(a_i, a_j) + Σ_{i≠j} k(b_i, b_j)] / (m(m − 1)) − 2 Σ_{i,j} k(a_i, b_j) / m² on each of
    ``n_subsets`` pairs of subsets, ``subset_size`` = m rows of each set drawn without replacement. The subsets are
    torch-fidelity's (``numpy.random.RandomState(seed).choice``, a's then b's, per subset; its default seed 2020),
    so the two agree to rounding. Unbiased: about 0 for two samples of one distribution, possibly slightly negative.

    Parameters
    ----------
    feats_a, feats_b : ndarray (N_a, F), (N_b, F)
        Features of the two sets (computed in float64).
    subset_size : int
        m, at most min(N_a, N_b) (KID's authors and torch-fidelity: 1000; a few hundred images: all of them).
    n_subsets : int
        Number of subset pairs (torch-fidelity: 100).
    seed : int
        Seed of the subset draws.

    Returns
    -------
    (float, float)
        Mean and standard deviation (numpy's, ddof = 0, as torch-fidelity) of MMD²_u over the subsets.
    """
    feats_a, feats_b = np.asarray(feats_a, np.float64), np.asarray(feats_b, np.float64)
    n_a, n_b = len(feats_a), len(feats_b)
    if not 2 <= subset_size <= min(n_a, n_b):
        raise ValueError(f"KID subset_size {subset_size} must be in [2, min(N_a, N_b) = {min(n_a, n_b)}]")
    rng = np.random.RandomState(seed)
    m = subset_size
    mmds = np.empty(n_subsets)
    for s in range(n_subsets):
        a = feats_a[rng.choice(n_a, m, replace=False)]
        b = feats_b[rng.choice(n_b, m, replace=False)]
        k_aa, k_bb, k_ab = polynomial_kernel(a, a), polynomial_kernel(b, b), polynomial_kernel(a, b)
        within = (k_aa.sum() - np.trace(k_aa) + k_bb.sum() - np.trace(k_bb)) / (m * (m - 1))
        mmds[s] = within - 2 * k_ab.sum() / m ** 2
    return float(mmds.mean()), float(mmds.std())
