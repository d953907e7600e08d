"""Inception-v3 pool features for FID and KID of faces images, from the user's weights file (never downloaded).

* **network**: torch-fidelity's ``FeatureExtractorInceptionV3`` (registered as ``inception-v3-compat``), the PyTorch
  port of the TensorFlow Inception-v3 graph of 2015-12-05 that FID's reference code uses (Heusel et al. 2017, "GANs
  trained by a two time-scale update rule converge to a local Nash equilibrium"; torch-fidelity, Obukhov et al.).
  Its weights file is normally ``pt_inception-2015-12-05-6726825d.pth`` (:data:`WEIGHTS_FILE`; torch-fidelity's
  release asset is called ``weights-inception-2015-12-05-6726825d.pth``), a plain ``state_dict`` in torchvision's
  Inception3 key naming; the user supplies it (``faces.inception_weights``) and :func:`check_weights` checks it.
* **layer**: ``"2048"``, the global average pool after ``Mixed_7c`` (TensorFlow's ``pool_3``): (N, 2048) features.
* **resize**: inside the extractor, bilinear to 299×299 the way TensorFlow 1.x resizes
  (``torch_fidelity.interpolate_compat_tensorflow``), whatever the input side.
* **input range**: uint8 RGB (N, 3, H, W) in [0, 255], mapped to (x − 128)/128 ∈ [−1, 1) inside the extractor: the
  image and render stores' own layout, so images go in as stored.

The extractor is built only from an existing file: torch-fidelity downloads its weights only when
``feature_extractor_weights_path`` is None, which :func:`load_inception` never passes.
"""

from __future__ import annotations

import io

import numpy as np
import torch

from latentedit.io.checkpoints import read_weights_file

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"  # torch-fidelity's converted TensorFlow weights
FEATURE = "2048"  # torch-fidelity's name of the pool_3 features (feature_layer_fid / feature_layer_kid default)
FEATURE_DIM = 2048
NAME = "inception-v3-compat"  # torch-fidelity's registry name of the extractor


def _extractor_class():
    """torch-fidelity's extractor class. torch_fidelity imports torchvision on import, which needs the CPU-torch
    workaround of :mod:`latentedit.faces.torchvision_compat` here."""
    from latentedit.faces.torchvision_compat import import_torchvision

    import_torchvision()
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    return FeatureExtractorInceptionV3


def inception_layout() -> dict[str, tuple[torch.Size, torch.dtype]]:
    """Key → (shape, dtype) of the state_dict torch-fidelity's extractor loads (``strict=True``), read off the
    library's own constructor on the meta device (no weights, no file, no network)."""
    cls = _extractor_class()

    class _Layout(cls):
        def load_state_dict(self, state_dict, strict=True, assign=False):  # the layout only: load nothing
            return None

    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    with torch.device("meta"):
        module = _Layout(NAME, [FEATURE], feature_extractor_weights_path=empty)
    return {k: (v.shape, v.dtype) for k, v in module.state_dict().items()}


def check_weights(weights_path) -> None:
    """Raise ``ValueError`` naming ``weights_path`` unless it is a state_dict with exactly the keys and shapes of
    torch-fidelity's Inception-v3; ``FileNotFoundError`` naming it when it does not exist."""
    read_weights_file(weights_path, {k: shape for k, (shape, _) in inception_layout().items()},
                      f"torch-fidelity's Inception-v3 weights (faces.inception_weights, {WEIGHTS_FILE} layout)")


def load_inception(weights_path, device="cpu") -> torch.nn.Module:
    """torch-fidelity's Inception-v3 extractor of the ``"2048"`` pool features, weights from ``weights_path``.

    Parameters
    ----------
    weights_path : str or Path
        The user's weights file (normally ``pt_inception-2015-12-05-6726825d.pth``); checked first, so a missing file
        or one whose keys or shapes differ fails naming the file (:func:`check_weights`).
    device : str or torch.device
        Where the extractor runs.

    Returns
    -------
    torch.nn.Module
        The extractor in eval mode on ``device``, gradients off; feed it with :func:`inception_features`.
    """
    if weights_path is None:  # torch-fidelity's cue to download: never
        raise FileNotFoundError("faces.inception_weights is not set: Inception-v3 weights are never downloaded")
    check_weights(weights_path)
    extractor = _extractor_class()(NAME, [FEATURE], feature_extractor_weights_path=str(weights_path))
    return extractor.to(device).eval()


@torch.no_grad()
def inception_features(extractor: torch.nn.Module, images, batch_size: int = 32) -> np.ndarray:
    """(N, 2048) float64 pool features of uint8 images (N, 3, H, W) (numpy or torch; any side, resized to 299
    inside; a grey (N, 1, H, W) image is repeated to RGB)."""
    if images.dtype not in (np.uint8, torch.uint8) or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected uint8 images (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
    device = next(extractor.parameters()).device
    out = []
    for i in range(0, len(images), batch_size):
        x = torch.as_tensor(images[i:i + batch_size]).to(device)  # (B, C, H, W) uint8
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        (feats,) = extractor(x)  # (B, 2048) float32
        out.append(feats.double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, FEATURE_DIM))
