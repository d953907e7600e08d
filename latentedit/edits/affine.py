"""The LW edit z' = z + α·H_k(z) with H_k affine: H_k(z) = W z + c.

Two layouts:

- flat codes (N, D) — the DLSGAN latent here: one full affine map, W of shape (D, D);
- W+ codes (N, L, D) — StyleGAN's per-layer codes: block-diagonal, one affine map per edited layer,
  H_k(z)_l = W_l z_l + c_l for l in ``layers`` and H_k(z)_l = 0 elsewhere (those layers are left unchanged);
  or, with ``couple_layers``, one full affine map on the edited layers' codes flattened together,
  H_k(z)_E = W vec(z_E) + c with W of shape (L_e·D, L_e·D), so that each layer's step may depend on every edited
  layer's code (the digits' 8 × 128 W+: 1.05 M weights against 131 k; faces' 18 × 512 would need 85 M, which is why
  the paper's faces edits, and our default, are per layer).

H_k starts at W = 0, c = 0, i.e. the identity edit z' = z: the first Wasserstein loss is the plain source → target
distance, no random direction is baked into the result, and training is deterministic given the batches. The
gradient does not vanish at this start: ∂L/∂W = α Σ_n g_n z_nᵀ and ∂L/∂c = α Σ_n g_n with g_n = ∂L/∂z'_n, non-zero
as long as the edited cloud differs from the target (a single affine layer has no zero-initialised inner layer
whose gradient would be blocked). α scales the edit at inference (α = 1 during training).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class AffineEdit(nn.Module):
    """z' = z + α·(W z + c), full (flat codes) or block-diagonal per W+ layer.

    Parameters
    ----------
    dim : int
        D, the size of one code (flat) or of one W+ layer code (e.g. 512).
    n_layers : int, optional
        L for W+ codes (N, L, D); None for flat codes (N, D).
    layers : sequence of int, optional
        W+ only: the edited layers (default: all L). The others pass through unchanged.
    alpha : float
        Default edit strength α.
    couple_layers : bool
        W+ only: one full affine map on the flattened codes of the edited layers instead of one per layer.
    """

    def __init__(self, dim: int, n_layers: int | None = None, layers: Sequence[int] | None = None,
                 alpha: float = 1.0, couple_layers: bool = False):
        super().__init__()
        if n_layers is None and (layers is not None or couple_layers):
            raise ValueError("layers and couple_layers only apply to W+ codes (give n_layers)")
        self.dim, self.n_layers, self.alpha = int(dim), n_layers, float(alpha)
        self.couple_layers = bool(couple_layers)
        if n_layers is None:
            self.layers: list[int] | None = None
            self.weight = nn.Parameter(torch.zeros(dim, dim))  # (D, D)
            self.bias = nn.Parameter(torch.zeros(dim))  # (D,)
        else:
            chosen = sorted(set(range(n_layers) if layers is None else (int(l) for l in layers)))
            if not chosen or chosen[0] < 0 or chosen[-1] >= n_layers:
                raise ValueError(f"layers must be a non-empty subset of 0..{n_layers - 1}, got {layers}")
            self.layers = chosen
            self.register_buffer("layer_index", torch.tensor(chosen, dtype=torch.long), persistent=False)
            if self.couple_layers:
                n = len(chosen) * dim
                self.weight = nn.Parameter(torch.zeros(n, n))  # (L_e·D, L_e·D), rows and columns layer-major
                self.bias = nn.Parameter(torch.zeros(n))  # (L_e·D,)
            else:
                self.weight = nn.Parameter(torch.zeros(len(chosen), dim, dim))  # (L_e, D, D)
                self.bias = nn.Parameter(torch.zeros(len(chosen), dim))  # (L_e, D)

    def direction(self, z: torch.Tensor) -> torch.Tensor:
        """H_k(z) for the edited part: (N, D) for flat codes, (N, L_e, D) for the edited W+ layers."""
        if self.n_layers is None:
            if z.dim() != 2 or z.shape[1] != self.dim:
                raise ValueError(f"expected codes (N, {self.dim}), got {tuple(z.shape)}")
            return z @ self.weight.T + self.bias
        if z.dim() != 3 or z.shape[1:] != (self.n_layers, self.dim):
            raise ValueError(f"expected W+ codes (N, {self.n_layers}, {self.dim}), got {tuple(z.shape)}")
        z_e = z.index_select(1, self.layer_index)  # (N, L_e, D)
        if self.couple_layers:
            return (z_e.flatten(1) @ self.weight.T + self.bias).view(z_e.shape)
        return torch.einsum("nld,led->nle", z_e, self.weight) + self.bias

    def forward(self, z: torch.Tensor, alpha: float | None = None) -> torch.Tensor:
        """z' = z + α·H_k(z); same shape as z."""
        alpha = self.alpha if alpha is None else alpha
        h = self.direction(z)
        if self.n_layers is None:
            return z + alpha * h
        return z.index_add(1, self.layer_index, alpha * h)  # unedited layers copied as they are

    def spec(self) -> dict:
        """Constructor arguments, to store next to the state dict."""
        spec = {"dim": self.dim, "n_layers": self.n_layers, "layers": self.layers, "alpha": self.alpha}
        if self.couple_layers:  # only when set: the models saved before the option load unchanged
            spec["couple_layers"] = True
        return spec

    @classmethod
    def from_spec(cls, spec: dict) -> "AffineEdit":
        return cls(**spec)

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, n_layers={self.n_layers}, layers={self.layers}, alpha={self.alpha}"
                + (", couple_layers=True" if self.couple_layers else ""))
