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


def to_uint8(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """[-1, 1] float images (tensor or array) → uint8 array, rounded and clipped."""
    x = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    return np.clip((x + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8)
