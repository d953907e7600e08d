"""Face crops for pSp: FFHQ alignment from five landmarks (found by an insightface detector), or a centre crop.

pSp and StyleGAN2-FFHQ expect FFHQ-aligned crops. FFHQ's alignment (Karras et al., ``ffhq-dataset``'s
``recreate_aligned_images``; pSp's and e4e's ``align_face`` use the same rule) builds an oriented square from the
eyes and the mouth:

    e = (e_l + e_r)/2,  m = (m_l + m_r)/2,  x̂ = (e_r − e_l) − R(m − e),  R(u, v) = (−v, u)
    x = x̂/‖x̂‖ · max(2‖e_r − e_l‖, 1.8‖m − e‖),  y = R(x),  c = e + 0.1·(m − e)
    quad = (c − x − y, c − x + y, c + x + y, c + x − y)   (top-left, bottom-left, bottom-right, top-right)

and maps that quad onto the output square. FFHQ takes the eye centres and the outer mouth corners from dlib's 68
landmarks; here they are the five points of insightface's detectors (SCRFD/RetinaFace: left eye, right eye, nose,
left and right mouth corner, "left" as seen in the image), the eye points being the pupils rather than the mean of
six eyelid points. Like FFHQ, the image is shrunk when the quad is much larger than the output, cropped around the
quad, and padded by reflection with a blurred, median-faded border where the quad leaves the image
(:func:`align_face`), then resampled through the quad at 4× the output size and downsampled with antialiasing.

Without detector weights, :func:`centre_crop` keeps the largest centred square.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

OUTPUT_SIZE = 256  # pSp's encoder input side (latentedit.faces.psp.INPUT_SIZE); the crops are made at this size
SUPERSAMPLE = 4  # FFHQ resamples the quad at 4096 px for 1024 px outputs, then downsamples with antialiasing


class NoFaceFound(ValueError):
    """The detector found no face in an image."""


def ffhq_quad(landmarks: np.ndarray) -> np.ndarray:
    """FFHQ's crop quad from five landmarks.

    Parameters
    ----------
    landmarks : array, shape (5, 2)
        (x, y) pixel coordinates of the left eye, right eye, nose, left and right mouth corner (insightface's order;
        left/right as seen in the image). The nose is not used, as in FFHQ.

    Returns
    -------
    ndarray, shape (4, 2), float64
        Corners top-left, bottom-left, bottom-right, top-right of the oriented square that becomes the aligned crop.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (5, 2) or not np.isfinite(lm).all():
        raise ValueError(f"expected five finite (x, y) landmarks, shape (5, 2); got {lm.shape}")
    eye_left, eye_right, _, mouth_left, mouth_right = lm
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    eye_to_mouth = (mouth_left + mouth_right) * 0.5 - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    norm = np.hypot(*x)
    if norm == 0:
        raise ValueError("degenerate landmarks: the eyes and the mouth give no orientation")
    x = x / norm * max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def align_face(image: Image.Image, landmarks: np.ndarray, size: int = OUTPUT_SIZE) -> np.ndarray:
    """The FFHQ-aligned crop of ``image`` for its five ``landmarks`` (:func:`ffhq_quad`), as uint8 (3, size, size).

    The steps of FFHQ's script: shrink by an integer factor when the quad is over twice the output size, crop to the
    quad plus a 10 % border, pad by reflection where the quad leaves the image (the padding blurred and faded to the
    image's median colour towards its outer edge), then map the quad onto a square of ``SUPERSAMPLE × size`` pixels
    (bilinear) and downsample it to ``size`` (Lanczos).
    """
    from scipy.ndimage import gaussian_filter

    img = image.convert("RGB")
    quad = ffhq_quad(landmarks)
    qsize = np.hypot(*(quad[3] - quad[0]))
    transform_size = SUPERSAMPLE * size

    shrink = int(np.floor(qsize / size * 0.5))
    if shrink > 1:
        img = img.resize((int(np.rint(img.size[0] / shrink)), int(np.rint(img.size[1] / shrink))),
                         Image.Resampling.LANCZOS)
        quad, qsize = quad / shrink, qsize / shrink

    border = max(int(np.rint(qsize * 0.1)), 3)
    lo, hi = np.floor(quad.min(0)).astype(int), np.ceil(quad.max(0)).astype(int)
    crop = (max(lo[0] - border, 0), max(lo[1] - border, 0), min(hi[0] + border, img.size[0]),
            min(hi[1] + border, img.size[1]))
    if crop[2] - crop[0] < img.size[0] or crop[3] - crop[1] < img.size[1]:
        img = img.crop(crop)
        quad = quad - crop[:2]

    lo, hi = np.floor(quad.min(0)).astype(int), np.ceil(quad.max(0)).astype(int)
    pad = (max(-lo[0] + border, 0), max(-lo[1] + border, 0), max(hi[0] - img.size[0] + border, 0),
           max(hi[1] - img.size[1] + border, 0))
    if max(pad) > border - 4:
        pad = np.maximum(pad, int(np.rint(qsize * 0.3)))
        arr = np.pad(np.float32(img), ((pad[1], pad[3]), (pad[0], pad[2]), (0, 0)), "reflect")  # (H, W, 3)
        h, w, _ = arr.shape
        yy, xx, _ = np.ogrid[:h, :w, :1]
        mask = np.maximum(1.0 - np.minimum(np.float32(xx) / pad[0], np.float32(w - 1 - xx) / pad[2]),
                          1.0 - np.minimum(np.float32(yy) / pad[1], np.float32(h - 1 - yy) / pad[3]))
        blur = qsize * 0.02
        arr += (gaussian_filter(arr, [blur, blur, 0]) - arr) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
        arr += (np.median(arr, axis=(0, 1)) - arr) * np.clip(mask, 0.0, 1.0)
        img = Image.fromarray(np.uint8(np.clip(np.rint(arr), 0, 255)), "RGB")
        quad = quad + pad[:2]

    img = img.transform((transform_size, transform_size), Image.Transform.QUAD, tuple((quad + 0.5).flatten()),
                        Image.Resampling.BILINEAR)
    img = img.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).copy()


def centre_crop(image: Image.Image, size: int = OUTPUT_SIZE) -> np.ndarray:
    """The largest centred square of ``image``, resized to ``size`` (Lanczos), as uint8 (3, size, size)."""
    img = image.convert("RGB")
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    img = img.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).copy()


class FaceDetector:
    """Five face landmarks from an insightface detection ONNX model (SCRFD, e.g. buffalo_l's ``det_10g.onnx``).

    The file is routed by insightface's ``model_zoo.get_model`` (a model with five or more outputs is a detector) and
    run by its ``SCRFD.detect``; nothing is downloaded. When several faces are found, insightface's ``max_num=1``
    choice keeps the largest, most central one.

    Parameters
    ----------
    onnx_path : path-like
    det_size : (int, int)
        Detector input (width, height) for models with a dynamic input; a model with a fixed input uses its own.
    threshold : float
        Detection score threshold.
    providers : list, optional
        onnxruntime execution providers (default: the CPU).
    """

    def __init__(self, onnx_path: str | os.PathLike, det_size: tuple[int, int] = (640, 640), threshold: float = 0.5,
                 providers=None):
        self.path = Path(onnx_path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: face detector ONNX file does not exist")
        if self.path.suffix.lower() != ".onnx":  # insightface would take another name for a model pack to download
            raise ValueError(f"{self.path}: the face detector must be an .onnx file")
        from insightface.model_zoo import get_model

        try:
            model = get_model(str(self.path), providers=list(providers or ["CPUExecutionProvider"]))
        except Exception as e:  # protobuf decode errors, onnxruntime load failures
            raise ValueError(f"{self.path}: cannot load as an insightface ONNX model: {type(e).__name__}: {e}") from e
        if getattr(model, "taskname", None) != "detection" or not getattr(model, "use_kps", False):
            found = "nothing" if model is None else type(model).__name__
            raise ValueError(f"{self.path}: not a face detector with landmarks (insightface routed it to {found}; "
                             "expected an SCRFD/RetinaFace model with 6, 9, 10 or 15 outputs, keypoints included)")
        model.prepare(ctx_id=-1 if not providers or "CUDAExecutionProvider" not in providers else 0,
                      input_size=tuple(det_size), det_thresh=float(threshold))
        self.model = model

    def landmarks(self, image: Image.Image) -> np.ndarray:
        """The five landmarks (5, 2) of the face found in ``image``; :class:`NoFaceFound` when there is none."""
        rgb = np.asarray(image.convert("RGB"))
        _, kps = self.model.detect(np.ascontiguousarray(rgb[..., ::-1]), max_num=1)  # insightface reads BGR
        if kps is None or len(kps) == 0:
            raise NoFaceFound(f"the detector {self.path.name} found no face")
        return np.asarray(kps[0], dtype=np.float64)

    def align(self, image: Image.Image, size: int = OUTPUT_SIZE) -> np.ndarray:
        """The FFHQ-aligned crop (uint8 (3, size, size)) of the face found in ``image``."""
        return align_face(image, self.landmarks(image), size)
