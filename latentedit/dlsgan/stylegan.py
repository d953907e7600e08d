"""DLSGAN's StyleGAN2 generator: the project's rosinality-layout StyleGAN2 (:mod:`latentedit.faces.stylegan2`), narrow
for small images and without noise inputs, as the DLSGAN seed trains it (Kang et al. 2022: "StyleGAN2 with a reduced
filter size of convolution layers", no noise inputs, mapping network at 0.01× learning rate).

Notation: B = batch, d = d_z, D = style_dim (= d_z unless ``style_dim`` is set), L = ``n_latent`` = 2·log2(canvas) − 2.

    w  = f(z∘s)                      f = PixelNorm → EqualLinear(d, D) → (n_mlp − 1) × EqualLinear(D, D),
                                     each at lr_mul 0.01 with a leaky ReLU                               (B, D)
    W+ = broadcast(w) = (w, …, w)                                                                          (B, L, D)
    x  = synthesis(W+)               StyleGAN2 synthesis (Karras et al. 2020), g_channels[i] at 4·2^i px,
                                     ``channels`` image channels, not clamped (``to_uint8`` clips)       (B, C, H, W)

No noise, with the layout kept: the ``NoiseInjection`` strengths and the stored ``noises.noise_i`` maps are zero and
the strengths frozen, so the stored-noise synthesis (``noise="const"``) would add exactly 0 and the state_dict is a
rosinality generator's (``load_generator`` and the faces renderer read it and draw the same images). Synthesis here
skips the noise (``noise="none"``): the same images, one pass over the activations less per layer.

**d_z and the style dimension.** The seed trains d_z = 512 = D. ``style_dim`` may differ from d_z: only the first
mapping layer is then (D, d_z), and the DLS scale still acts on all d_z inputs, which is what the seed's ablation is
about. With ``style_dim`` unset (the shipped generator, D = d_z = 128) the layout is upstream's, key for key and shape
for shape. A 512-wide style costs the same per training step on CPU, but needs G's lr 1e-3 instead of StyleGAN2's
2e-3 (at 2e-3 it does not start drawing digits in 2,400 steps; README "DLSGAN", "A 512-wide style": its W+ edits keep
more digits and reach the count less often).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from latentedit.dlsgan.scale import sample_latent
from latentedit.faces.stylegan2 import Generator as StyleGAN2Generator
from latentedit.faces.stylegan2 import NoiseInjection

LATENT_SPACES = ("z", "w", "wplus")  # what render(codes, space) takes: z∘s (B, D), w (B, D), W+ (B, L, D)


class DLSStyleGenerator(nn.Module):
    """z∘s (B, d_z) → images (B, C, canvas, canvas) through a narrow, noise-free rosinality StyleGAN2 ``self.g``.

    Parameters
    ----------
    z_dim : int
        d_z, the mapping network's input.
    style_dim : int or None
        The style dimension D of w and W+; None: d_z (a square mapping network, upstream's layout).
    canvas : int
        Image side in pixels, a power of two ≥ 4.
    channels : int
        Image channels C (1 for the digits).
    g_channels : sequence of int
        Synthesis width per resolution, from 4 px to ``canvas`` (log2(canvas) − 1 entries).
    n_mlp : int
        Mapping layers (at lr_mul 0.01, the value every StyleGAN2 loader here assumes).
    generator : faces.stylegan2.Generator or None
        Wrap this (loaded) network instead of building a fresh one; it must have the configuration above and zero
        noise strengths and maps.

    Attributes
    ----------
    spec : dict
        {arch: "stylegan2", z_dim, canvas, channels, g_channels, n_mlp[, style_dim]}: what the checkpoint stores
        (``style_dim`` only when it differs from d_z).
    n_latent, style_dim, z_dim : int
        L, D and d_z.
    """

    def __init__(self, z_dim: int = 128, canvas: int = 32, channels: int = 1,
                 g_channels: Sequence[int] = (64, 64, 64, 32), n_mlp: int = 4,
                 generator: StyleGAN2Generator | None = None, style_dim: int | None = None):
        super().__init__()
        g_channels = [int(c) for c in g_channels]
        log_size = int(math.log2(canvas)) if canvas >= 4 else 0
        if canvas < 4 or 2**log_size != canvas:
            raise ValueError(f"canvas must be a power of two >= 4 pixels, got {canvas}")
        if len(g_channels) != log_size - 1:
            raise ValueError(f"g_channels needs one width per resolution 4 ... {canvas} px ({log_size - 1}), "
                             f"got {len(g_channels)}: {g_channels}")
        widths = {4 * 2**i: c for i, c in enumerate(g_channels)}
        style = z_dim if style_dim is None else int(style_dim)
        if generator is None:
            generator = StyleGAN2Generator(canvas, style_dim=style, n_mlp=n_mlp, channels=widths,
                                           out_channels=channels, z_dim=z_dim)
            self._zero_noise(generator)
        else:
            found = {"canvas": generator.size, "z_dim": generator.z_dim, "style_dim": generator.style_dim,
                     "n_mlp": generator.n_mlp, "channels": generator.out_channels,
                     "g_channels": [generator.channels[res] for res in sorted(widths)]}
            expected = {"canvas": canvas, "z_dim": z_dim, "style_dim": style, "n_mlp": n_mlp, "channels": channels,
                        "g_channels": g_channels}
            differ = {k: (found[k], expected[k]) for k in expected if found[k] != expected[k]}
            if differ:
                raise ValueError(f"the StyleGAN2 network does not match the spec (found, expected): {differ}")
            noisy = [name for name, t in self._noise_tensors(generator) if t.count_nonzero()]
            if noisy:
                raise ValueError(f"a DLSGAN StyleGAN2 has no noise inputs, but these are non-zero: {noisy[:5]}")
        for _, t in self._noise_tensors(generator):
            t.requires_grad_(False)
        self.g = generator
        self.z_dim, self.style_dim = z_dim, style
        self.n_latent = generator.n_latent
        self.spec = {"arch": "stylegan2", "z_dim": z_dim, "canvas": canvas, "channels": channels,
                     "g_channels": g_channels, "n_mlp": n_mlp}
        if style != z_dim:
            self.spec["style_dim"] = style

    @staticmethod
    def _noise_tensors(g: StyleGAN2Generator) -> list[tuple[str, torch.Tensor]]:
        """The noise strengths (``conv1`` / ``convs.*`` ``noise.weight``) and the stored noise maps."""
        strengths = [(f"{name}.weight", m.weight) for name, m in g.named_modules() if isinstance(m, NoiseInjection)]
        return strengths + [(f"noises.{name}", b) for name, b in g.noises.named_buffers()]

    @classmethod
    @torch.no_grad()
    def _zero_noise(cls, g: StyleGAN2Generator) -> None:
        for _, t in cls._noise_tensors(g):
            t.zero_()

    def mapping(self, z_scaled: torch.Tensor) -> torch.Tensor:
        """z∘s (B, d_z) → w (B, D)."""
        return self.g.mapping(z_scaled)

    def broadcast(self, w: torch.Tensor) -> torch.Tensor:
        """w (B, D) → W+ (B, L, D), the same code at every layer."""
        return w.unsqueeze(1).repeat(1, self.n_latent, 1)

    def synthesis(self, wplus: torch.Tensor, precision: str = "fp32") -> torch.Tensor:
        """W+ (B, L, D) → images (B, C, canvas, canvas), not clamped (no noise: its strengths are zero)."""
        return self.g.synthesis(wplus, noise="none", precision=precision)

    def forward(self, z_scaled: torch.Tensor) -> torch.Tensor:
        """z∘s (B, d_z) → images (B, C, canvas, canvas) = synthesis(broadcast(mapping(z∘s)))."""
        return self.synthesis(self.broadcast(self.mapping(z_scaled)))

    def render(self, codes: torch.Tensor, space: str) -> torch.Tensor:
        """Images of codes in ``space``: "z" (z∘s, (B, d_z)) → forward; "w" ((B, D)) → synthesis(broadcast);
        "wplus" ((B, L, D)) → synthesis. z and w codes may share a shape, so the space is always said, never
        guessed."""
        if space not in LATENT_SPACES:
            raise ValueError(f"space must be one of {LATENT_SPACES}, got {space!r}")
        if space == "wplus":
            return self.synthesis(codes)
        dim = self.z_dim if space == "z" else self.style_dim
        if codes.ndim != 2 or codes.shape[1] != dim:
            raise ValueError(f"{space} codes must be (B, {dim}), got {tuple(codes.shape)}")
        return self.forward(codes) if space == "z" else self.synthesis(self.broadcast(codes))

    @torch.no_grad()
    def mean_w(self, scale: torch.Tensor, distribution: str = "normal", n: int = 4096, seed: int = 0) -> torch.Tensor:
        """Mean of mapping(z∘s) over ``n`` seeded draws of the DLS prior z (normal or uniform), (D,): the
        ``latent_avg`` a StyleGAN2 checkpoint carries (truncation centre)."""
        dev = self.g.input.input.device
        z = sample_latent(n, self.z_dim, distribution, torch.Generator().manual_seed(seed), dev)
        return self.mapping(z * scale.to(dev)).mean(0)
