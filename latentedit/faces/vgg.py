"""VGG16 perceptual features for W*'s D_perc on faces, from the user's ImageNet weights file (never downloaded).

The W* paper (Shukor et al. 2021, "Semantic and geometric unfolding of StyleGAN latent space") measures perceptual
distance with VGG16 (ImageNet) features of blocks 2, 3 and 4; its code is not public and its text gives no more
detail, so the distance follows LPIPS's standard form without learned weights (Zhang et al. 2018, "The unreasonable
effectiveness of deep features as a perceptual metric", ``lpips.normalize_tensor`` and ``spatial_average``):

    D_perc(I_i, I_j) = Σ_l mean_hw ‖n_l(I_i)_hw − n_l(I_j)_hw‖²,    n_l = a_l / (‖a_l‖_channels + 1e-10),

* **network**: ``torchvision.models.vgg16(weights=None)`` (through :mod:`latentedit.faces.torchvision_compat`),
  weights from ``faces.vgg16_weights``: torchvision's ``vgg16-397923af.pth`` (:data:`WEIGHTS_FILE`), or the same
  file without its ``classifier.*`` keys — the features never reach the classifier, so only the 26 ``features.*``
  tensors (59 MB of the file's 553 MB) are required and loaded (:func:`check_weights`).
* **layers** (:data:`LAYERS`): ``features[8]``, ``[15]``, ``[22]``, the ReLUs that end blocks 2, 3 and 4 (relu2_2,
  relu3_3, relu4_3, just before each block's max-pool; LPIPS's VGG slices end at the same indices). The network is
  cut after index 22.
* **input**: RGB in [−1, 1] → [0, 1] → bilinear resize to 224×224 (antialiased when shrinking; VGG16's ImageNet
  training size) → ImageNet normalisation (mean 0.485, 0.456, 0.406; std 0.229, 0.224, 0.225).
* **per-image vectors**: D_perc must be a squared Euclidean distance of per-image vectors φ so that W*'s L_d and
  Table 1 can use it (:mod:`latentedit.wstar.losses`). Flattening n_l / √(H_l W_l) gives exactly the formula above but
  2.8 M floats (11 MB) per image at 224 px; by default (:data:`GRID`) each n_l is average-pooled to a 7×7 grid
  (VGG16's own final pooling grid: 4×4, 8×8 and 16×16 patches of relu4_3, relu3_3, relu2_2) and divided by 7, so
  ‖φ_i − φ_j‖² is the formula above on patch-averaged normalised features (≤ the full-resolution value, by Jensen);
  (128 + 256 + 512)·49 = 43,904 floats (176 KB) per image. ``grid=None`` keeps full resolution.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from latentedit.io.checkpoints import read_weights_file

WEIGHTS_FILE = "vgg16-397923af.pth"  # torchvision's ImageNet VGG16 (IMAGENET1K_V1)
LAYERS = (8, 15, 22)  # relu2_2, relu3_3, relu4_3: the ends of blocks 2, 3, 4 of vgg16().features
CHANNELS = (128, 256, 512)
SIZE = 224  # input side (VGG16's ImageNet training crop)
GRID = 7  # pooled grid per layer (None: full resolution); see the module docstring
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EPS = 1e-10  # LPIPS's normalize_tensor epsilon


def _vgg16(device=None) -> nn.Module:
    from latentedit.faces.torchvision_compat import import_torchvision

    tv = import_torchvision()
    if device is None:
        return tv.models.vgg16(weights=None)
    with torch.device(device):
        return tv.models.vgg16(weights=None)


def vgg16_layout() -> dict[str, torch.Size]:
    """Key → shape of torchvision's ``vgg16`` state_dict (read off the library on the meta device; no weights)."""
    return {k: v.shape for k, v in _vgg16("meta").state_dict().items()}


def check_weights(weights_path) -> dict[str, torch.Tensor]:
    """The ``features.*`` tensors of a torchvision VGG16 state_dict at ``weights_path``.

    Raises ``FileNotFoundError`` naming the file when it does not exist, ``ValueError`` naming it when it is not a
    state_dict of tensors, lacks a ``features.*`` key, has a key outside torchvision's VGG16 layout, or a shape
    differs from it. ``classifier.*`` keys are optional (checked when present, never loaded).
    """
    layout = vgg16_layout()
    needed = {k for k in layout if k.startswith("features.")}
    state = read_weights_file(weights_path, layout,
                              f"torchvision's VGG16 weights (faces.vgg16_weights, {WEIGHTS_FILE} layout)",
                              optional=set(layout) - needed)
    return {k[len("features."):]: state[k].float() for k in sorted(needed)}


class VGGPerceptual(nn.Module):
    """φ(images): concatenated LPIPS-normalised VGG16 block 2–4 features (module docstring), differentiable.

    Parameters
    ----------
    features : nn.Module
        ``vgg16().features`` with weights (cut after ``max(LAYERS)`` here).
    size : int
        Input side images are resized to.
    grid : int or None
        Pooled grid side per layer (None: full resolution).
    """

    def __init__(self, features: nn.Module, size: int = SIZE, grid: int | None = GRID):
        super().__init__()
        self.body = nn.Sequential(*list(features)[:max(LAYERS) + 1])
        for m in self.body:
            if isinstance(m, nn.ReLU):
                m.inplace = False  # the taken activations must not be overwritten (and autograd-safe)
        self.size, self.grid = int(size), grid
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False).eval()

    def layer_activations(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The raw activations a_l at :data:`LAYERS`, each (B, C_l, H_l, W_l), of RGB images in [−1, 1]."""
        x = (images.float() + 1) / 2  # (B, 3, H, W) in [0, 1]
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if tuple(x.shape[2:]) != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False,
                              antialias=x.shape[-1] > self.size)
        x = (x - self.mean) / self.std
        out = []
        for i, module in enumerate(self.body):
            x = module(x)
            if i in LAYERS:
                out.append(x)
        return out

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """φ, shape (B, Σ_l C_l·g_l²) with g_l = min(grid, H_l) (or H_l·W_l cells when ``grid`` is None)."""
        parts = []
        for a in self.layer_activations(images):
            n = a / (a.pow(2).sum(1, keepdim=True).sqrt() + EPS)  # (B, C, H, W), unit vectors over channels
            if self.grid is not None and n.shape[-1] > self.grid:
                n = F.adaptive_avg_pool2d(n, self.grid)  # (B, C, g, g)
            cells = n.shape[-2] * n.shape[-1]
            parts.append(n.flatten(1) / cells ** 0.5)
        return torch.cat(parts, 1)


def load_vgg16(weights_path, device="cpu", size: int = SIZE, grid: int | None = GRID) -> VGGPerceptual:
    """:class:`VGGPerceptual` from the user's weights file (checked first, :func:`check_weights`), eval, no grads."""
    if weights_path is None:
        raise FileNotFoundError("faces.vgg16_weights is not set: VGG16 weights are never downloaded")
    features = check_weights(weights_path)
    vgg = _vgg16()
    vgg.features.load_state_dict(features, strict=True)
    return VGGPerceptual(vgg.features, size, grid).to(device)


# Seeded fill for the tiny faces world (latentedit.faces.tiny): each key's own stream latentedit.faces.recipe.draw,
# He-scaled convolutions (the activations keep their scale through the ReLUs; no batch norm to calibrate), small
# biases. Random VGG features already order image pairs far better than pixels (Zhang et al. 2018, Table 5).
def vgg16_fill(key: str, shape: tuple[int, ...]) -> torch.Tensor:
    """The seeded value of one ``features.*`` key: weights N(0, 2/fan_in), biases N(0, 0.01²)."""
    from latentedit.faces.recipe import draw

    z = draw(key, shape)
    if key.endswith(".weight"):
        value = z * np.float32(np.sqrt(2.0 / np.prod(shape[1:])))
    elif key.endswith(".bias"):
        value = z * np.float32(0.01)
    else:
        raise KeyError(f"{key!r}: no VGG16 fill rule (expected a .weight or .bias)")
    return torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))


def write_vgg16_weights(path: str | Path) -> Path:
    """A seeded state_dict of torchvision's ``vgg16`` ``features.*`` keys and shapes (26 tensors, 59 MB of float32;
    the ``classifier.*`` keys, 494 MB, are left out: :func:`check_weights` does not need them)."""
    state = {k: vgg16_fill(k, tuple(s)) for k, s in vgg16_layout().items() if k.startswith("features.")}
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    return path
