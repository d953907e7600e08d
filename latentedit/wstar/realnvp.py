"""Real NVP bijection T: latent → W* (Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP", ICLR 2017).

T is a stack of affine coupling layers on the **flattened** code u = flatten(w) ∈ R^D (flat codes: D = d_z; W+ codes
(L, 512): D = L·512, so the couplings see every layer at once and may mix them). Coupling c with a binary mask m_c
(1 = conditioning half, kept) maps

    y = m ⊙ u + (1 − m) ⊙ (u ⊙ exp(s(m ⊙ u)) + t(m ⊙ u)),     s = tanh(MLP_s(·)),  t = MLP_t(·),

and is inverted exactly by u = m ⊙ y + (1 − m) ⊙ ((y − t(m ⊙ y)) ⊙ exp(−s(m ⊙ y))), since the conditioning half passes
unchanged. log|det ∂y/∂u| = Σ (1 − m) ⊙ s. The tanh bounds every log-scale to (−1, 1) per coupling, which keeps T and
T⁻¹ well conditioned (no batch norm: T is a fixed function of one code, the same in training and evaluation).
Masks: couplings come in complementary pairs (m, 1 − m); pair p uses a seeded random half of the coordinates (so
successive pairs mix different halves); an odd last coupling uses a fresh half. The last layer of every MLP is
zero-initialised, so T starts as the identity and W* starts as the original space.

Why flattened rather than per W+ layer: the W* losses (linear attribute separation, distance unfolding) are defined
on the whole code, and a per-layer T could not move information between layers; the cost is MLPs of input size
L·512 = 9216 on faces (≈ 4.7 M parameters per MLP at hidden (256,)), acceptable on a GPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


def _mlp(dim: int, hidden: Sequence[int], negative_slope: float = 0.2) -> nn.Sequential:
    """D → hidden… → D with LeakyReLU; last layer zero-initialised (the coupling starts as the identity)."""
    layers, width = [], dim
    for h in hidden:
        layers += [nn.Linear(width, int(h)), nn.LeakyReLU(negative_slope)]
        width = int(h)
    last = nn.Linear(width, dim)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(*layers, last)


def coupling_masks(dim: int, n_couplings: int, seed: int = 0) -> torch.Tensor:
    """(n_couplings, D) float masks: complementary pairs of seeded random halves (1 = conditioning coordinate)."""
    if dim < 2:
        raise ValueError(f"a coupling needs at least 2 coordinates, got D = {dim}")
    gen = torch.Generator().manual_seed(seed)
    masks = []
    for c in range(n_couplings):
        if c % 2 == 0:
            half = torch.zeros(dim)
            half[torch.randperm(dim, generator=gen)[:dim // 2]] = 1.0
            masks.append(half)
        else:
            masks.append(1.0 - masks[-1])
    return torch.stack(masks)


class AffineCoupling(nn.Module):
    """One affine coupling y = m ⊙ u + (1 − m) ⊙ (u ⊙ exp(tanh(MLP_s)) + MLP_t), conditioned on m ⊙ u."""

    def __init__(self, mask: torch.Tensor, hidden: Sequence[int]):
        super().__init__()
        self.register_buffer("mask", mask.clone())
        dim = mask.numel()
        self.scale = _mlp(dim, hidden)
        self.shift = _mlp(dim, hidden)

    def _st(self, kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        free = 1.0 - self.mask
        return torch.tanh(self.scale(kept)) * free, self.shift(kept) * free

    def forward(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, D) → (y (N, D), log|det| (N,))."""
        kept = u * self.mask
        s, t = self._st(kept)
        return kept + (1.0 - self.mask) * (u * torch.exp(s) + t), s.sum(1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        kept = y * self.mask
        s, t = self._st(kept)
        return kept + (1.0 - self.mask) * ((y - t) * torch.exp(-s))


class RealNVP(nn.Module):
    """T: codes (N, *S) → W* codes (N, *S), a stack of :class:`AffineCoupling` on the flattened code.

    Parameters
    ----------
    code_shape : sequence of int
        S, the shape of one code: (d_z,) for flat codes, (L, D) for W+ codes (flattened to L·D).
    n_couplings : int
        Number of coupling layers (default 4: two complementary pairs).
    hidden : sequence of int
        Hidden widths of each scale / translation MLP.
    seed : int
        Seed of the coupling masks (stored as buffers, so a loaded model has the same masks).
    """

    def __init__(self, code_shape: Sequence[int], n_couplings: int = 4, hidden: Sequence[int] = (256, 256),
                 seed: int = 0):
        super().__init__()
        if n_couplings < 1:
            raise ValueError(f"n_couplings must be ≥ 1, got {n_couplings}")
        self.code_shape = tuple(int(s) for s in code_shape)
        self.dim = math.prod(self.code_shape)
        self.n_couplings, self.hidden, self.seed = int(n_couplings), [int(h) for h in hidden], int(seed)
        masks = coupling_masks(self.dim, self.n_couplings, self.seed)
        self.couplings = nn.ModuleList(AffineCoupling(m, self.hidden) for m in masks)

    def _flat(self, z: torch.Tensor) -> torch.Tensor:
        if tuple(z.shape[1:]) != self.code_shape:
            raise ValueError(f"expected codes (N, {', '.join(map(str, self.code_shape))}), got {tuple(z.shape)}")
        return z.reshape(len(z), self.dim)

    def forward_with_logdet(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(T(z) (N, *S), log|det ∂T/∂z| (N,))."""
        u = self._flat(z)
        logdet = torch.zeros(len(u), dtype=u.dtype, device=u.device)
        for c in self.couplings:
            u, ld = c(u)
            logdet = logdet + ld
        return u.reshape(z.shape), logdet

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """T(z): (N, *S) → (N, *S)."""
        return self.forward_with_logdet(z)[0]

    def inverse(self, w: torch.Tensor) -> torch.Tensor:
        """T⁻¹(w): (N, *S) → (N, *S)."""
        u = self._flat(w)
        for c in reversed(self.couplings):
            u = c.inverse(u)
        return u.reshape(w.shape)

    def spec(self) -> dict:
        """Constructor arguments, stored next to the state dict."""
        return {"code_shape": list(self.code_shape), "n_couplings": self.n_couplings, "hidden": list(self.hidden),
                "seed": self.seed}

    @classmethod
    def from_spec(cls, spec: dict) -> RealNVP:
        return cls(**spec)


def wstar_from_checkpoint(ck: dict) -> RealNVP:
    """The frozen T (eval mode, CPU, no gradients) of a ``{"spec", "state_dict"}`` dict (a W* model or the copy of T
    stored inside an edit model)."""
    from latentedit.io.checkpoints import load_state_dict_strict

    model = RealNVP.from_spec(dict(ck["spec"]))
    load_state_dict_strict(model, dict(ck["state_dict"]), "W* model")
    model.requires_grad_(False)
    return model.eval()


def load_wstar(path) -> dict:
    """A W* model written by the ``train_wstar`` rule (``weights_only`` load, kind ``wstar``)."""
    from latentedit.io.checkpoints import load_checkpoint

    return load_checkpoint(path, expect_kind="wstar", require=("spec", "state_dict"))


@torch.no_grad()
def map_codes(fn, z: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """fn (T or T.inverse) on codes in chunks, without gradients."""
    if len(z) == 0:
        return z.clone()
    return torch.cat([fn(z[i:i + chunk]) for i in range(0, len(z), chunk)])
