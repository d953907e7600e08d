"""The perceptual features φ of W*: D_perc(I_i, I_j) = ‖φ(I_i) − φ(I_j)‖² (L_d, Table 1) and L_ID's φ.

Config ``wstar.perceptual`` (:data:`KINDS`; default per world, :func:`default_perceptual`):

* ``oracle`` (digits only, the digits default): the slot oracle's per-slot features of the uint8 render, flattened;
  differentiable for L_ID through the oracle on the float render.
* ``judge``: the world's judge embedding of the uint8 render (digits: the oracle's, i.e. ``oracle``; faces: ArcFace,
  run by onnxruntime, so **not differentiable**: no L_ID on faces with it).
* ``vgg16`` (faces only, the faces default): LPIPS-normalised VGG16 block 2–4 features of the float render
  (:mod:`latentedit.faces.vgg`, weights ``faces.vgg16_weights``); differentiable, so L_ID uses them too. The seed
  takes L_ID's φ from a face-recognition network; the one here (ArcFace ONNX) has no gradients.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

# Imported at workflow parse time (latentedit.config): torch is imported inside the functions only.
KINDS = ("vgg16", "judge", "oracle")
BATCH = {"digits": 500, "faces": 16}  # codes rendered and featurised per call (faces: 1024-px StyleGAN2 renders)


def default_perceptual(world: str) -> str:
    """``oracle`` on digits (its per-slot features), ``vgg16`` on faces (the W* paper's distance)."""
    return "oracle" if world == "digits" else "vgg16"


def configured_perceptual(cfg: Mapping) -> str:
    """``wstar.perceptual`` of a workflow config, or the world's default when unset."""
    return (cfg.get("wstar") or {}).get("perceptual") or default_perceptual(cfg["world"])


@dataclass
class Perceptual:
    """φ of one run. ``features`` maps float renders (B, C, H, W) in [−1, 1] to (B, F) float32 numpy (no grad);
    ``differentiable`` maps them to a (B, F) tensor with gradients (None: L_ID is unavailable)."""

    kind: str
    features: Callable[[torch.Tensor], np.ndarray]
    differentiable: Callable[[torch.Tensor], torch.Tensor] | None
    batch_size: int
    spec: dict = field(default_factory=dict)


def load_perceptual(kind: str, world: str, inputs: Mapping, device, judge_options: Mapping | None = None) -> Perceptual:
    """φ from a job's inputs: ``oracle`` / ``judge`` read the judge's (``judge_inputs``), ``vgg16`` reads
    ``inputs["vgg16"]`` (``faces.vgg16_weights``)."""
    import torch

    from latentedit.imaging import to_uint8_tensor

    if kind not in KINDS:
        raise ValueError(f"wstar.perceptual: unknown {kind!r} (one of {', '.join(KINDS)})")
    if kind == "oracle" and world != "digits":
        raise ValueError("wstar.perceptual: oracle is the digits oracle's per-slot features (digits only)")
    if kind == "vgg16":
        if world != "faces":
            raise ValueError("wstar.perceptual: vgg16 reads faces.vgg16_weights (faces world only)")
        from latentedit.faces import vgg

        net = vgg.load_vgg16(inputs["vgg16"], device)

        @torch.no_grad()
        def features(images):
            return net(images.to(device)).float().cpu().numpy()

        spec = {"layers": list(vgg.LAYERS), "size": vgg.SIZE, "grid": vgg.GRID, "weights": str(inputs["vgg16"])}
        return Perceptual(kind, features, net, BATCH[world], spec)
    from latentedit.worlds import load_judge

    judge = load_judge(world, inputs, device, judge_options)

    def features(images):
        return np.asarray(judge.predict(to_uint8_tensor(images).cpu().numpy())["embedding"], dtype=np.float32)

    differentiable = None
    if world == "digits":  # the judge is the oracle: L_ID through its per-slot features of the float render
        oracle = judge.oracle.requires_grad_(False)

        def oracle_slot_features(images):
            return oracle(images)[1].flatten(1)

        differentiable = oracle_slot_features
    return Perceptual(kind, features, differentiable, BATCH[world], {"embedding": type(judge).__name__})


def render_features(codes: np.ndarray, renderer: torch.nn.Module, perceptual: Perceptual, device) -> np.ndarray:
    """φ(G(w)) of codes (N, *S), rendered and featurised ``perceptual.batch_size`` at a time: (N, F) float32."""
    import torch

    z = torch.as_tensor(np.asarray(codes), dtype=torch.float32)
    with torch.no_grad():
        out = [perceptual.features(renderer(z[i:i + perceptual.batch_size].to(device)))
               for i in range(0, len(z), perceptual.batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)
