"""Encode images into the generator's input space (z'∘s) and measure how well they come back.

``project_images`` gives the latent codes; ``inversion_quality`` gives, on held-out real images, the bar of the
shipped checkpoint: the oracle's count on G(E(x)∘s) equals its count on x, mean presence agreement, PSNR/SSIM.
"""

from __future__ import annotations

import numpy as np
import torch

from latentedit.dlsgan.evaluate import reconstruct, reconstruction_agreement
from latentedit.dlsgan.models import Discriminator, Generator
from latentedit.imaging import to_model_range
from latentedit.metrics import psnr, ssim
from latentedit.oracles.digits_oracle import SlotOracle, predict_images


@torch.no_grad()
def project_images(encoder: Discriminator, s: torch.Tensor, images: np.ndarray, device,
                   batch_size: int = 1000) -> np.ndarray:
    """uint8 images (N, C, H, W) → float32 latents (N, d_z) = E(x)∘s."""
    encoder = encoder.to(device).eval()
    s = s.to(device)
    out = []
    for i in range(0, len(images), batch_size):
        x = to_model_range(images[i:i + batch_size], device)
        out.append((encoder.encode(x) * s).cpu())
    return torch.cat(out).numpy().astype(np.float32)


@torch.no_grad()
def inversion_quality(g: Generator, encoder: Discriminator, s: torch.Tensor, images: np.ndarray,
                      oracle: SlotOracle, device) -> tuple[dict, torch.Tensor]:
    """Quality numbers of G(E(x)∘s) against x, and the reconstructions themselves ([-1, 1])."""
    x = to_model_range(images, device)
    rec, _ = reconstruct(g.to(device), encoder.to(device), s.to(device), x)
    p_x = predict_images(oracle, x, device)["probs"]
    p_rec = predict_images(oracle, rec, device)["probs"]
    quality = {"psnr": float(psnr(rec, x).mean()), "ssim": float(ssim(rec, x).mean()),
               **reconstruction_agreement(p_x, p_rec, oracle.max_digits)}
    return quality, rec
