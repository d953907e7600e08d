"""The W* training losses (all on minibatches of codes w_n with labels y_nl and perceptual features φ_n).

- **Linear attribute separation** with frozen linear classifiers (a_l, b_l) fitted in the original space:

      L_a = mean_{n,l} BCEWithLogits(⟨a_l, T(w_n)⟩ + b_l, y_nl).

  At T = id this is the classifiers' own training loss; lowering it moves codes to the correct side of fixed
  hyperplanes, i.e. makes every attribute more linearly separable in W*.

- **Distance unfolding** over the pairs (i < j) of a batch, with D_perc(I_i, I_j) = ‖φ_i − φ_j‖² the squared distance
  of perceptual features of the images I = G(w) (config ``wstar.perceptual``, :mod:`latentedit.wstar.perceptual`:
  digits the oracle's per-slot features, flattened; faces LPIPS-normalised VGG16 block 2–4 features):

      L_d = mean_{i<j} (‖T(w_i) − T(w_j)‖² − c·D_perc(I_i, I_j))² / m²,

  with the rescaling factor c = m / mean D_perc and m = mean ‖w_i − w_j‖², both measured once on the original
  training codes (c puts perceptual distances in squared latent units; dividing by m² makes L_d dimensionless, so
  λ_d does not depend on the code dimension).

- **Identity** (optional, λ_ID): a small step ε ~ N(0, σ²I) in W* should not change the perceptual features (the
  gradient flows through G and φ, so φ must be differentiable: the oracle's, or VGG16's on faces),

      L_ID = mean_n ‖φ(G(T⁻¹(T(w_n) + ε_n))) − φ(G(w_n))‖² / mean D_perc.

Total: L = L_a + λ_d·L_d + λ_ID·L_ID.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def attribute_separation_loss(w_star: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor,
                              bias: torch.Tensor) -> torch.Tensor:
    """L_a: mean BCE of the frozen linear classifiers on W* codes.

    Parameters
    ----------
    w_star : Tensor, shape (N, *S)
        T(w).
    labels : Tensor, shape (N, A)
        0/1 attribute labels.
    weight : Tensor, shape (A, D)
        Classifier normals a_l (D = prod(S)).
    bias : Tensor, shape (A,)
    """
    logits = w_star.reshape(len(w_star), -1) @ weight.T + bias  # (N, A)
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


def pair_sq_distances(x: torch.Tensor, max_elements: int = 2 ** 25) -> torch.Tensor:
    """‖x_i − x_j‖² for the pairs i < j of a batch: (N, *S) → (N(N−1)/2,).

    Differences of all pairs when they fit in ``max_elements`` (N(N−1)/2 · D); else the same values through the
    Gram matrix of the batch-centred rows, ‖a‖² + ‖b‖² − 2⟨a, b⟩ (VGG16 features: 128 codes × 43,904-d would be
    1.4 GB of differences).
    """
    x = x.reshape(len(x), -1)
    i, j = torch.triu_indices(len(x), len(x), offset=1, device=x.device)
    if len(i) * x.shape[1] <= max_elements:
        return (x[i] - x[j]).pow(2).sum(1)
    xc = x - x.mean(0, keepdim=True)  # distances are shift-invariant; centring limits cancellation
    gram = xc @ xc.T  # (N, N)
    sq = gram.diagonal()
    return (sq[i] + sq[j] - 2 * gram[i, j]).clamp_min(0)


def distance_loss(w_star: torch.Tensor, features: torch.Tensor, scale: float, norm: float) -> torch.Tensor:
    """L_d = mean_{i<j} (‖T(w_i) − T(w_j)‖² − scale·‖φ_i − φ_j‖²)² / norm².

    Parameters
    ----------
    w_star : Tensor, shape (N, *S)
    features : Tensor, shape (N, F)
        Perceptual features φ of the images G(w).
    scale : float
        c, squared latent units per unit of D_perc.
    norm : float
        m, the mean squared latent pair distance (normaliser).
    """
    if len(w_star) < 2:
        return w_star.sum() * 0.0
    diff = pair_sq_distances(w_star) - scale * pair_sq_distances(features)
    return diff.pow(2).mean() / norm ** 2


def identity_loss(w: torch.Tensor, T, generator: Callable, features: Callable, sigma: float,
                  norm: float, generator_gen: torch.Generator | None = None) -> torch.Tensor:
    """L_ID = mean ‖φ(G(T⁻¹(T(w) + ε))) − φ(G(w))‖² / norm, ε ~ N(0, σ²I) in W*.

    ``generator`` maps codes to images, ``features`` images to (N, F) features (both differentiable, frozen);
    ``norm`` is the mean perceptual pair distance (so L_ID is dimensionless).
    """
    eps = torch.randn(w.shape, generator=generator_gen, dtype=w.dtype).to(w.device) * sigma
    moved = T.inverse(T(w) + eps)
    with torch.no_grad():
        ref = features(generator(w))
    return (features(generator(moved)) - ref).pow(2).sum(1).mean() / norm
