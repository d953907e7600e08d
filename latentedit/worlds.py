"""What differs between the worlds once codes exist: the generator that renders codes, and the judge that scores
images.

* **renderer**: a module mapping codes (B, *S) to images (B, 3, H, W) in [−1, 1]. digits: the DLSGAN generator
  (S = (d_z,)); faces: StyleGAN2 synthesis of W+ codes (S = (n_latent, 512)) with the stored noise, area-pooled to
  ``render_size`` so that render stores stay small (a 1024² uint8 image is 3 MB).
* **judge**: ``predict(images uint8 (N, 3, H, W)) -> {"probs": (N, A), "embedding": (N, D)}``: per-attribute
  probabilities and an identity embedding compared by cosine. digits: the slot oracle (probabilities of the count
  and presence attributes, per-slot features); faces: the 40-attribute image classifiers and ArcFace.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class StyleGANRenderer(nn.Module):
    """W+ codes (B, L, D) → StyleGAN2 images (B, 3, render_size, render_size) in [−1, 1] (area-pooled)."""

    def __init__(self, generator: nn.Module, render_size: int, precision: str = "fp32"):
        super().__init__()
        self.generator, self.render_size, self.precision = generator, int(render_size), precision

    def forward(self, wplus: torch.Tensor) -> torch.Tensor:
        image = self.generator.synthesis(wplus, noise="const", precision=self.precision)
        if image.shape[-1] != self.render_size:
            image = F.interpolate(image, size=(self.render_size, self.render_size), mode="area")
        return image


def load_renderer(world: str, checkpoint, device, options: Mapping | None = None) -> nn.Module:
    """The world's generator on ``device``, eval mode. faces: ``checkpoint`` is a rosinality StyleGAN2 or a pSp
    checkpoint (its decoder); ``options`` give ``render_size`` and ``precision``."""
    if world == "digits":
        from latentedit.dlsgan.checkpoint import load_dlsgan

        return load_dlsgan(checkpoint, device)[0]
    from latentedit.faces.stylegan2 import load_generator

    g = load_generator(checkpoint).to(device).eval()
    return StyleGANRenderer(g, options["render_size"], options["precision"]).eval()


class DigitsJudge:
    def __init__(self, oracle_path, device):
        from latentedit.oracles.digits_oracle import load_oracle

        self.oracle, self.device = load_oracle(oracle_path, device), device

    def predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        from latentedit.oracles.digits_oracle import predict_images

        out = predict_images(self.oracle, images, self.device)
        return {"probs": out["probs"], "embedding": out["embedding"]}


class FacesJudge:
    """CelebA attribute classifiers (probabilities) and ArcFace (identity embeddings) on the same images."""

    def __init__(self, classifier_path, arcface_path, device, crop=None):
        from latentedit.faces.attributes import load_attribute_classifier
        from latentedit.faces.identity import ArcFace

        self.classifier = load_attribute_classifier(classifier_path, device)
        self.arcface = ArcFace(arcface_path, crop=None if crop is None else tuple(crop),
                               providers=onnx_providers(device))

    def predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        return {"probs": self.classifier.predict_proba(images), "embedding": self.arcface.embed(images)}


def onnx_providers(device) -> list[str]:
    """onnxruntime's execution providers for a torch device: CUDA first on a CUDA device, else the CPU."""
    return ["CUDAExecutionProvider", "CPUExecutionProvider"] if torch.device(device).type == "cuda" \
        else ["CPUExecutionProvider"]


def load_judge(world: str, inputs: Mapping, device, options: Mapping | None = None):
    """The world's judge from a job's inputs (digits: ``oracle``; faces: ``oracle`` and ``arcface``)."""
    if world == "digits":
        return DigitsJudge(inputs["oracle"], device)
    return FacesJudge(inputs["oracle"], inputs["arcface"], device, (options or {}).get("identity_crop"))
