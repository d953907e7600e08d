"""DLSGAN networks for small square images: a generator and a discriminator with two heads.

Generator: z∘s (B, d_z) → linear → (B, C₀, 4, 4) → [nearest ×2, conv3×3, LeakyReLU, PixelNorm] per octave → conv →
tanh, channels halving towards the output (capped at ``max_channels``). PixelNorm instead of BatchNorm keeps the
EMA generator free of running statistics.

Discriminator: the mirror image with strided 4×4 convs, then a shared trunk feeding an adversarial logit and an
encoder head that predicts z' (B, d_z) — the DLSGAN encoder.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + 1e-8)


def _channels(canvas: int, width: int, max_channels: int) -> list[int]:
    """Channels per resolution from 4×4 up to canvas×canvas (width at the output, ×2 per octave down)."""
    n = int(math.log2(canvas // 4))
    if 4 * 2 ** n != canvas:
        raise ValueError(f"canvas must be 4·2^k pixels, got {canvas}")
    return [min(max_channels, width * 2 ** (n - i)) for i in range(n + 1)]


class Generator(nn.Module):
    def __init__(self, z_dim: int = 64, canvas: int = 32, channels: int = 1, width: int = 32,
                 max_channels: int = 128):
        super().__init__()
        self.spec = {"z_dim": z_dim, "canvas": canvas, "channels": channels, "width": width,
                     "max_channels": max_channels}
        ch = _channels(canvas, width, max_channels)
        self.z_dim = z_dim
        self.fc = nn.Sequential(nn.Linear(z_dim, ch[0] * 16), nn.LeakyReLU(0.2))
        blocks = []
        for c_in, c_out in zip(ch[:-1], ch[1:]):
            blocks += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1),
                       nn.LeakyReLU(0.2), PixelNorm()]
        self.blocks = nn.Sequential(PixelNorm(), *blocks)
        self.to_image = nn.Conv2d(ch[-1], channels, 3, padding=1)
        self.c0 = ch[0]

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        """latent: the *scaled* code z∘s (B, d_z) → images (B, C, H, W) in [-1, 1]."""
        x = self.fc(latent).reshape(-1, self.c0, 4, 4)
        return torch.tanh(self.to_image(self.blocks(x)))


class Discriminator(nn.Module):
    def __init__(self, z_dim: int = 64, canvas: int = 32, channels: int = 1, width: int = 32,
                 max_channels: int = 128, hidden: int = 256):
        super().__init__()
        self.spec = {"z_dim": z_dim, "canvas": canvas, "channels": channels, "width": width,
                     "max_channels": max_channels, "hidden": hidden}
        ch = _channels(canvas, width, max_channels)[::-1]  # output res → 4×4
        layers = [nn.Conv2d(channels, ch[0], 3, padding=1), nn.LeakyReLU(0.2)]
        for c_in, c_out in zip(ch[:-1], ch[1:]):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        self.trunk = nn.Sequential(*layers, nn.Flatten(), nn.Linear(ch[-1] * 16, hidden), nn.LeakyReLU(0.2))
        self.adv = nn.Linear(hidden, 1)
        self.enc = nn.Linear(hidden, z_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images (B, C, H, W) → (adversarial logit (B,), predicted z' (B, d_z))."""
        h = self.trunk(x)
        return self.adv(h).squeeze(1), self.enc(h)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.enc(self.trunk(x))
