"""What differs between the worlds once codes exist: the generator that renders codes, and the judge that scores
images.

* **renderer**: a module mapping codes (B, *S) to images (B, C, H, W) in [−1, 1], for codes of the latent store's
  space (:func:`latentedit.io.latent_store.latent_space`, passed as ``options["latent_space"]``: z and w codes have
  the same shape, so the space is never guessed from it). digits: the DLSGAN generator — the DCGAN reads z codes
  (S = (d_z,)) only, the StyleGAN2 z, w (S = (D,)) or wplus (S = (L, D)) codes
  (:func:`latentedit.projection.codes.digits_renderer`); faces: StyleGAN2 synthesis of W+ codes
  (S = (n_latent, 512)) with the stored noise, area-pooled to ``render_size`` so that render stores stay small (a
  1024² uint8 image is 3 MB).
* **judge**: ``predict(images uint8 (N, 3, H, W)) -> {"probs": (N, A), "embedding": (N, D)}``: per-attribute
  probabilities and an identity embedding compared by cosine. digits: the slot oracle (probabilities of the count
  and presence attributes, per-slot features); faces: the 40-attribute image classifiers and ArcFace.
* **realism features**: ``features(images uint8 (N, 3, H, W)) -> (N, F) float64``, what the Fréchet distance and KID
  of edited renders against real target images are computed on. digits: the slot oracle's penultimate features (its
  ``embedding``, as the DLSGAN stage's ``frechet_oracle``); faces: Inception-v3 pool features (FID/KID proper).
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
    """The world's generator on ``device``, eval mode, rendering codes of the latent store's space.

    ``options["latent_space"]`` is that space (:func:`latentedit.io.latent_store.latent_space` of the store whose
    codes are rendered): z, w or wplus for digits — required for the StyleGAN2 generator, whose z and w codes have
    the same shape; a DCGAN checkpoint has z codes only, which is its space when none is given — and wplus for faces
    when given. faces: ``checkpoint`` is a rosinality StyleGAN2 or a pSp checkpoint (its decoder); ``options`` give
    ``render_size`` and ``precision``."""
    options = options or {}
    space = options.get("latent_space")
    if world == "digits":
        from latentedit.dlsgan.checkpoint import load_dlsgan
        from latentedit.projection.codes import digits_renderer

        g = load_dlsgan(checkpoint, device)[0]
        if space is None and hasattr(g, "render"):
            raise ValueError(f"load_renderer: {checkpoint} renders z, w or wplus codes; give the latent store's space "
                             "(options['latent_space']): it is never guessed from the codes' shape")
        return digits_renderer(g, space or "z", f"the DLSGAN generator {checkpoint}")
    if space not in (None, "wplus"):
        raise ValueError(f"load_renderer: the faces generator renders wplus codes, not {space}")
    from latentedit.faces.stylegan2 import load_generator

    g = load_generator(checkpoint).to(device).eval()
    return StyleGANRenderer(g, options["render_size"], options["precision"]).eval()


class DigitsJudge:
    """The slot oracle: attribute probabilities, per-slot features, which serve as identity embedding and as realism
    features alike, and each slot's class (``slots``: a digit 0–9, or ``empty_slot``)."""

    def __init__(self, oracle_path, device):
        from latentedit.oracles.digits_oracle import EMPTY, load_oracle

        self.oracle, self.device, self.empty_slot = load_oracle(oracle_path, device), device, EMPTY

    def predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        from latentedit.oracles.digits_oracle import predict_images

        out = predict_images(self.oracle, images, self.device)
        return {"probs": out["probs"], "embedding": out["embedding"],
                "realism": out["embedding"].astype(np.float64), "slots": out["slot_classes"]}


class FacesJudge:
    """CelebA attribute classifiers (probabilities) and ArcFace (identity embeddings) on the same images, and with
    ``inception_path`` Inception-v3 pool features for realism (:mod:`latentedit.faces.inception`). It reads no slots:
    ``empty_slot`` is None and ``predict`` returns no ``slots``."""

    empty_slot = None

    def __init__(self, classifier_path, arcface_path, device, crop=None, inception_path=None,
                 batch_size: int = 32):
        from latentedit.faces.attributes import load_attribute_classifier
        from latentedit.faces.identity import ArcFace

        self.classifier = load_attribute_classifier(classifier_path, device)
        self.arcface = ArcFace(arcface_path, crop=None if crop is None else tuple(crop),
                               providers=onnx_providers(device))
        self.inception, self.batch_size = None, int(batch_size)
        if inception_path is not None:
            from latentedit.faces.inception import load_inception

            self.inception = load_inception(inception_path, device)

    def predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        out = {"probs": self.classifier.predict_proba(images), "embedding": self.arcface.embed(images)}
        if self.inception is not None:
            from latentedit.faces.inception import inception_features

            out["realism"] = inception_features(self.inception, images, self.batch_size)
        return out


def onnx_providers(device) -> list:
    """onnxruntime's execution providers for a torch device: on ``cuda:i`` CUDA on that same device first (the job's
    claimed GPU, :mod:`latentedit.devices`; a bare CUDA provider would always take device 0), else the CPU."""
    device = torch.device(device)
    if device.type != "cuda":
        return ["CPUExecutionProvider"]
    return [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]


def load_judge(world: str, inputs: Mapping, device, options: Mapping | None = None, realism: bool = False):
    """The world's judge from a job's inputs (digits: ``oracle``; faces: ``oracle``, ``arcface`` and, with
    ``realism``, ``inception``).

    ``judge.predict(images uint8 (N, C, H, W))`` returns ``probs`` (N, A), ``embedding`` (N, D) and, with ``realism``,
    ``realism`` (N, F) float64: the features the Fréchet distance and KID of :mod:`latentedit.evaluation.realism`
    compare — digits the oracle's penultimate slot features (the embedding itself: no second pass), faces
    Inception-v3 pool features from ``faces.inception_weights`` (F = 2048; ``options["batch_size"]`` images per call,
    default 32). A judge that reads slots (digits) also returns ``slots`` (N, S), each slot's class, with
    ``judge.empty_slot`` the class of an empty slot; a judge without slots (faces) has ``empty_slot`` None.
    """
    if world == "digits":
        return DigitsJudge(inputs["oracle"], device)
    options = options or {}
    return FacesJudge(inputs["oracle"], inputs["arcface"], device, options.get("identity_crop"),
                      inputs["inception"] if realism else None, options.get("batch_size", 32))
