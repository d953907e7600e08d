"""ArcFace identity similarity (Deng et al., CVPR 2019) through an insightface recognition ONNX model.

The faces world measures how well an edit keeps the person: both the input render x and the edited render x' go
through a face-recognition network φ and the score is the cosine similarity of the two embeddings,

    ID(x, x') = ⟨φ(x), φ(x')⟩ / (‖φ(x)‖ ‖φ(x')‖) ∈ [−1, 1].

φ is any ArcFace-style ONNX model that insightface loads as ``ArcFaceONNX`` — e.g. the ``w600k_r50.onnx`` of the
buffalo_l pack (ResNet-50 trained on WebFace600K) or a glint360k model; nothing is downloaded, the user supplies the
file. insightface's ``model_zoo.get_model(path)`` routes a file to ``ArcFaceONNX`` when it has one output and its
input is (N, 3, S, S) with S ≥ 112 and S divisible by 16 (112 for all published ArcFace models).

Preprocessing follows insightface exactly, by calling ``ArcFaceONNX.get_feat`` rather than re-implementing it:

* ``get_feat`` takes a list of HWC uint8 images in **BGR** order (OpenCV's convention) and builds the network input
  with ``cv2.dnn.blobFromImages(imgs, 1/std, (S, S), (mean,)*3, swapRB=True)`` — so the network itself receives
  **RGB**, as (x_rgb − mean) / std, NCHW float32. Here images arrive RGB and are flipped to BGR before the call;
  ``swapRB`` flips them back.
* ``mean``/``std`` are decided from the graph: if one of the first 8 nodes is named ``Sub*``/``_minus*`` *and* one
  ``Mul*``/``_mul*`` (the mxnet-exported models, which normalise inside the graph) then 0/1, else 127.5/127.5.
  This module never normalises by itself, so both kinds of file work.

Faces must already be aligned crops, as ArcFace was trained on 5-point aligned 112×112 faces. StyleGAN2-FFHQ renders
are aligned (FFHQ's alignment), but the face fills less of the frame than in ArcFace's template; ``crop`` cuts a box
(fractions of width/height) out of each image before the resize. :data:`FFHQ_PSP_CROP` is the box the pSp/e4e
identity loss uses on FFHQ-aligned images (rows 35:223, columns 32:220 of a 256×256 image). The default, ``None``,
keeps the whole image. Resizing is done here, in float with antialiasing (``blobFromImages`` would resize with
plain bilinear interpolation, which aliases badly from 1024 to 112), and then rounded to uint8.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

log = logging.getLogger(__name__)

# (left, top, right, bottom) as fractions of (W, H, W, H): pSp/e4e's IDLoss crop x[:, :, 35:223, 32:220] at 256 px.
FFHQ_PSP_CROP = (32 / 256, 35 / 256, 220 / 256, 223 / 256)

Crop = float | Sequence[float]


def _crop_box(crop: Crop | None) -> tuple[float, float, float, float] | None:
    """``None`` | centred side fraction ``f`` | ``(left, top, right, bottom)`` fractions → a validated box or None."""
    if crop is None:
        return None
    if isinstance(crop, (int, float)):
        f = float(crop)
        if not 0 < f <= 1:
            raise ValueError(f"a centred crop fraction must be in (0, 1], got {crop}")
        box = ((1 - f) / 2, (1 - f) / 2, (1 + f) / 2, (1 + f) / 2)
    else:
        box = tuple(float(c) for c in crop)
        if len(box) != 4:
            raise ValueError(f"crop must be a fraction or (left, top, right, bottom), got {crop!r}")
    left, top, right, bottom = box
    if not (0 <= left < right <= 1 and 0 <= top < bottom <= 1):
        raise ValueError(f"crop box must satisfy 0 ≤ left < right ≤ 1 and 0 ≤ top < bottom ≤ 1, got {box}")
    return box


def _as_image_tensor(images) -> torch.Tensor:
    x = torch.as_tensor(images) if not isinstance(images, torch.Tensor) else images.detach()
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"expected RGB images (B, 3, H, W), got shape {tuple(x.shape)}")
    if x.dtype != torch.uint8 and not x.is_floating_point():
        raise ValueError(f"images must be uint8 or float in [-1, 1], got dtype {x.dtype}")
    return x


def _preprocess_chunk(x: torch.Tensor, size: int, box) -> torch.Tensor:
    if box is not None:
        h, w = x.shape[2:]
        left, top, right, bottom = box
        r0, c0 = round(top * h), round(left * w)
        x = x[:, :, r0:max(round(bottom * h), r0 + 1), c0:max(round(right * w), c0 + 1)]
    from_uint8 = x.dtype == torch.uint8
    x = x.float()
    if tuple(x.shape[2:]) != (size, size):
        # resize before the affine map to 0..255 (they commute; the triangle filter keeps values in range): the
        # elementwise work is then done on S×S, not on the 1024×1024 input, and on the input's device
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    x = x if from_uint8 else (x + 1) * 127.5
    x = (x + 0.5).clamp_(0, 255).to(torch.uint8)  # round once, after the resize
    return x.flip(1).permute(0, 2, 3, 1).cpu()  # RGB → BGR, NCHW → NHWC


def preprocess(images, size: int = 112, crop: Crop | None = None, chunk: int = 16) -> np.ndarray:
    """RGB model-range (or uint8) images → the uint8 BGR HWC crops that ``ArcFaceONNX.get_feat`` expects.

    Parameters
    ----------
    images : Tensor or ndarray, shape (B, 3, H, W)
        RGB, uint8 or float in [−1, 1], on any device.
    size : int
        S, the network's input side.
    crop : float or (left, top, right, bottom), optional
        Box cut out before the resize (fractions of W/H); a float f is a centred box of side f.
    chunk : int
        Images converted at a time (bounds the float copies of large renders).

    Returns
    -------
    ndarray, shape (B, S, S, 3), uint8, BGR
    """
    x = _as_image_tensor(images)
    box = _crop_box(crop)
    out = [_preprocess_chunk(x[i:i + chunk], size, box) for i in range(0, len(x), chunk)]
    return np.ascontiguousarray(torch.cat(out).numpy()) if out else np.zeros((0, size, size, 3), np.uint8)


class ArcFace:
    """ArcFace embeddings φ(x) ∈ S^{D−1} of aligned face images, from an insightface recognition ONNX file.

    Parameters
    ----------
    onnx_path : str or Path
        The ``.onnx`` model (e.g. insightface's ``w600k_r50.onnx``).
    providers : list, optional
        onnxruntime execution providers; default insightface's choice (CUDA, then CPU, whichever are available).
    batch_size : int
        Images per ``get_feat`` call.
    crop : float or (left, top, right, bottom), optional
        Box cut out of every image before resizing to the network input (see :data:`FFHQ_PSP_CROP`); None keeps
        the whole image.
    threads : int, optional
        onnxruntime intra-op threads (default: onnxruntime's, all cores).

    Raises
    ------
    FileNotFoundError
        ``onnx_path`` does not exist.
    ValueError
        It is not an ONNX file, or not one insightface treats as a recognition (ArcFace) model.
    """

    def __init__(self, onnx_path: str | os.PathLike, providers: Sequence | None = None, batch_size: int = 64,
                 crop: Crop | None = None, threads: int | None = None):
        self.path = Path(onnx_path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: ArcFace ONNX model file does not exist")
        if self.path.suffix.lower() != ".onnx":
            # insightface treats a name without .onnx as a model-pack name under ~/.insightface/models
            raise ValueError(f"{self.path}: the ArcFace model must be an .onnx file")
        if batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
        self.batch_size, self.crop = int(batch_size), _crop_box(crop)
        from insightface.model_zoo import get_model
        from insightface.model_zoo.arcface_onnx import ArcFaceONNX

        kwargs: dict = {"providers": list(providers) if providers is not None else None}
        if threads is not None:
            import onnxruntime

            opts = onnxruntime.SessionOptions()
            opts.intra_op_num_threads = int(threads)
            kwargs["sess_options"] = opts
        expected = "expected one input (N, 3, S, S) with S ≥ 112, S % 16 == 0, and one output"
        try:
            model = get_model(str(self.path), **kwargs)
        except AssertionError as e:  # ArcFaceONNX asserts a single output, with an empty message
            raise ValueError(f"{self.path}: not an ArcFace-like recognition model (insightface's ArcFaceONNX "
                             f"rejected it{': ' + str(e) if str(e) else ''}; {expected})") from e
        except Exception as e:  # protobuf decode errors, onnxruntime load failures
            raise ValueError(f"{self.path}: cannot load as an insightface ONNX model: {type(e).__name__}: {e}") from e
        if not isinstance(model, ArcFaceONNX):
            found = "nothing" if model is None else type(model).__name__
            msg = f"{self.path}: not an ArcFace-like recognition model (insightface routed it to {found}; {expected})"
            raise ValueError(msg)  # noqa: TRY004 - the file's content is wrong, not an argument's type
        self.model = model
        w, h = model.input_size
        if w != h:
            raise ValueError(f"{self.path}: non-square ArcFace input {model.input_size}")
        self.input_size = int(w)
        out = model.output_shape
        self.embedding_dim = int(out[-1]) if isinstance(out[-1], int) else None
        log.info("ArcFace %s: input %d×%d, normalisation mean %g std %g, %s-d embeddings, providers %s", self.path,
                 w, h, model.input_mean, model.input_std, self.embedding_dim, model.session.get_providers())

    def embed(self, images) -> np.ndarray:
        """L2-normalised embeddings of aligned RGB face images.

        Parameters
        ----------
        images : Tensor or ndarray, shape (B, 3, H, W)
            RGB, float in [−1, 1] or uint8; any H, W (cropped by ``crop`` and resized to S×S).

        Returns
        -------
        ndarray, shape (B, D), float32, rows of unit norm
        """
        n = len(images)
        chunks = []
        for i in range(0, n, self.batch_size):
            bgr = preprocess(images[i:i + self.batch_size], self.input_size, self.crop)  # (b, S, S, 3) uint8
            feat = np.asarray(self.model.get_feat(list(bgr)), dtype=np.float32).reshape(len(bgr), -1)
            chunks.append(feat)
        if not chunks:
            return np.zeros((0, self.embedding_dim or 0), np.float32)
        feat = np.concatenate(chunks)
        return feat / np.maximum(np.linalg.norm(feat, axis=1, keepdims=True), 1e-12)

    def identity_similarity(self, a_images, b_images) -> np.ndarray:
        """Cosine similarity ⟨φ(a_i), φ(b_i)⟩ of paired images (input and edited render).

        Parameters
        ----------
        a_images, b_images : Tensor or ndarray, shape (B, 3, H, W)
            Paired RGB images, float in [−1, 1] or uint8 (the two may differ in size and type).

        Returns
        -------
        ndarray, shape (B,), float32, in [−1, 1]
        """
        if len(a_images) != len(b_images):
            raise ValueError(f"paired images differ in number: {len(a_images)} vs {len(b_images)}")
        return np.sum(self.embed(a_images) * self.embed(b_images), axis=1)

    def __repr__(self) -> str:
        return f"ArcFace({str(self.path)!r}, input_size={self.input_size}, embedding_dim={self.embedding_dim})"
