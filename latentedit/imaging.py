"""Pixel conventions: stores hold uint8 0..255; every model works on float images in [-1, 1]."""

from __future__ import annotations

import numpy as np
import torch


def to_model_range(images: np.ndarray | torch.Tensor, device=None) -> torch.Tensor:
    """uint8 (N, C, H, W) → float32 tensor in [-1, 1] (float input is passed through), optionally moved to ``device``."""
    x = torch.as_tensor(images)
    if x.dtype == torch.uint8:
        x = x.float().div(127.5).sub(1)
    return x if device is None else x.to(device)


def to_uint8_tensor(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float tensor → uint8 tensor on the same device, rounded and clipped (convert before copying: 4× less
    to move)."""
    return ((x.detach() + 1) * 127.5 + 0.5).clamp_(0, 255).to(torch.uint8)


@torch.no_grad()
def generate_uint8(generator: torch.nn.Module, codes: torch.Tensor, batch_size: int) -> torch.Tensor:
    """G(codes) as uint8 (N, C, H, W) on the CPU, batched; conversion happens on the generator's device."""
    out = []
    for i in range(0, len(codes), batch_size):
        out.append(to_uint8_tensor(generator(codes[i:i + batch_size])).cpu())
    return torch.cat(out)


def to_uint8(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """[-1, 1] float images (tensor or array) → uint8 array, rounded and clipped."""
    if isinstance(x, torch.Tensor):
        return to_uint8_tensor(x).cpu().numpy()
    return np.clip((np.asarray(x) + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8)
