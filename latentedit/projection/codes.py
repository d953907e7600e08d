"""Codes of the digits latent spaces and their images, through the DLSGAN generator (``projection.space``).

With the DLS scale s and, for the StyleGAN2 generator (:class:`latentedit.dlsgan.stylegan.DLSStyleGenerator`), its
mapping network f and L synthesis layers, an image's codes are

    z     = z'∘s                      (B, d)      the generator's input (the DCGAN's only space)
    w     = f(z'∘s)                   (B, D)      one style vector for every layer
    wplus = (w_1, …, w_L)             (B, L, D)   one per layer (broadcast(w) before per-layer refinement)

and ``generator.render(codes, space)`` draws them. z and w codes have the same shape, so the space always travels
with the codes (the latent store's ``latent_space``), never guessed from the shape. :func:`digits_renderer` is the
world's renderer of one space (:func:`latentedit.worlds.load_renderer`) and the projection's
(:mod:`latentedit.projection.project`); it lives here, below both, so that projecting does not depend on the world
module.
"""

from __future__ import annotations

import torch
from torch import nn

from latentedit.io.latent_store import LATENT_SPACES


def style_codes(generator: nn.Module, z_scaled: torch.Tensor, space: str) -> torch.Tensor:
    """The codes of scaled latents z∘s (B, d) in ``space``: z itself, w = mapping(z∘s) (B, D), or its broadcast to
    the L layers (B, L, D)."""
    if space == "z":
        return z_scaled
    w = generator.mapping(z_scaled)  # (B, D)
    if space == "w":
        return w
    if space == "wplus":
        return generator.broadcast(w)  # (B, L, D)
    raise ValueError(f"unknown latent space {space!r}")


class DigitsRenderer(nn.Module):
    """Codes of one latent space → images, through the DLSGAN StyleGAN2's ``render(codes, space)``: z (B, d) the
    whole generator, w (B, D) synthesis of the broadcast w, wplus (B, L, D) synthesis."""

    def __init__(self, generator: nn.Module, space: str):
        super().__init__()
        self.generator, self.space = generator, space

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.generator.render(codes, self.space)


def check_generator_space(generator: nn.Module, space: str, what="the generator") -> None:
    """A ValueError naming ``projection.space`` when ``generator`` has no codes of ``space``: w and wplus need a
    mapping network (the DLSGAN StyleGAN2); the DCGAN reads z only."""
    if space not in LATENT_SPACES:
        raise ValueError(f"unknown latent space {space!r} (known: {', '.join(LATENT_SPACES)})")
    if space != "z" and not (hasattr(generator, "render") and hasattr(generator, "mapping")):
        raise ValueError(f"projection.space is {space}, but {what} ({type(generator).__name__}) has no mapping "
                         "network: a DCGAN DLSGAN generator reads z codes only (projection.space: z), W and W+ need "
                         "the StyleGAN2 one (dlsgan.train.arch: stylegan2)")


def digits_renderer(generator: nn.Module, space: str, what="the generator") -> nn.Module:
    """The renderer of ``space`` codes: the DLSGAN generator itself for z codes of a DCGAN (no ``render``), else a
    :class:`DigitsRenderer`; a ValueError when the generator has no such codes (:func:`check_generator_space`)."""
    check_generator_space(generator, space, what)
    if not hasattr(generator, "render"):
        return generator
    return DigitsRenderer(generator, space).eval()
