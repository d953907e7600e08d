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

**Low rank** (``rank`` = r; a deviation from the paper, whose H_k is a full affine map). Each linear part is trained as
W = U Vᵀ with U, V of shape (D, r) (per layer, or (L_e·D, r) coupled), so a code's step W z + c moves it along at
most r directions per layer besides the shared offset. U starts random (N(0, 1/D)), V at 0: W = 0 again, and V's
gradient (∂L/∂W)ᵀ U does not vanish. :meth:`AffineEdit.full_rank` composes the trained factors into the plain W that
the edit-model file stores. Why: on the digits W+ the part of LW's step that differs between codes both adds the
digit and redraws the digits already there; at r = 8 per layer the existing digits are kept 1.6–2.2 times as often
at a lower count (README "What LW's edit does to the digits already there", "Low rank").
"""

from __future__ import annotations

import math
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
    rank : int, optional
        Train each linear part as W = U Vᵀ of rank ≤ ``rank`` (module docstring); None: a full W.
    """

    def __init__(self, dim: int, n_layers: int | None = None, layers: Sequence[int] | None = None,
                 alpha: float = 1.0, couple_layers: bool = False, rank: int | None = None):
        super().__init__()
        if n_layers is None and (layers is not None or couple_layers):
            raise ValueError("layers and couple_layers only apply to W+ codes (give n_layers)")
        if rank is not None and int(rank) < 1:
            raise ValueError(f"rank must be ≥ 1 (or None: full), got {rank}")
        self.dim, self.n_layers, self.alpha = int(dim), n_layers, float(alpha)
        self.couple_layers = bool(couple_layers)
        self.rank = None if rank is None else int(rank)
        if n_layers is None:
            self.layers: list[int] | None = None
            shape = (dim, dim)  # W (D, D), c (D,)
        else:
            chosen = sorted(set(range(n_layers) if layers is None else (int(l) for l in layers)))
            if not chosen or chosen[0] < 0 or chosen[-1] >= n_layers:
                raise ValueError(f"layers must be a non-empty subset of 0..{n_layers - 1}, got {layers}")
            self.layers = chosen
            self.register_buffer("layer_index", torch.tensor(chosen, dtype=torch.long), persistent=False)
            n = len(chosen) * dim
            # coupled: W (L_e·D, L_e·D), rows and columns layer-major, c (L_e·D,); per layer: W (L_e, D, D), c (L_e, D)
            shape = (n, n) if self.couple_layers else (len(chosen), dim, dim)
        if self.rank is None:
            self.weight = nn.Parameter(torch.zeros(shape))
        else:  # W = U Vᵀ: U (…, D, r) random, V (…, D, r) zero
            self.u = nn.Parameter(torch.randn(*shape[:-1], self.rank) / math.sqrt(shape[-1]))
            self.v = nn.Parameter(torch.zeros(*shape[:-1], self.rank))
        self.bias = nn.Parameter(torch.zeros(shape[:-1]))

    def linear(self) -> torch.Tensor:
        """W, the linear part: the parameter, or U Vᵀ at low rank."""
        return self.weight if self.rank is None else self.u @ self.v.transpose(-1, -2)

    def full_rank(self) -> "AffineEdit":
        """This edit with a plain W (itself when it has one): what the edit-model file stores."""
        if self.rank is None:
            return self
        spec = self.spec()
        spec.pop("rank")
        full = AffineEdit.from_spec(spec).to(device=self.bias.device, dtype=self.bias.dtype)
        with torch.no_grad():
            full.weight.copy_(self.linear())
            full.bias.copy_(self.bias)
        return full.train(self.training)

    def direction(self, z: torch.Tensor) -> torch.Tensor:
        """H_k(z) for the edited part: (N, D) for flat codes, (N, L_e, D) for the edited W+ layers."""
        weight = self.linear()
        if self.n_layers is None:
            if z.dim() != 2 or z.shape[1] != self.dim:
                raise ValueError(f"expected codes (N, {self.dim}), got {tuple(z.shape)}")
            return z @ weight.T + self.bias
        if z.dim() != 3 or z.shape[1:] != (self.n_layers, self.dim):
            raise ValueError(f"expected W+ codes (N, {self.n_layers}, {self.dim}), got {tuple(z.shape)}")
        z_e = z.index_select(1, self.layer_index)  # (N, L_e, D)
        if self.couple_layers:
            return (z_e.flatten(1) @ weight.T + self.bias).view(z_e.shape)
        return torch.einsum("nld,led->nle", z_e, weight) + self.bias

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
        if self.rank is not None:
            spec["rank"] = self.rank
        return spec

    @classmethod
    def from_spec(cls, spec: dict) -> "AffineEdit":
        return cls(**spec)

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, n_layers={self.n_layers}, layers={self.layers}, alpha={self.alpha}"
                + (", couple_layers=True" if self.couple_layers else "")
                + (f", rank={self.rank}" if self.rank is not None else ""))
