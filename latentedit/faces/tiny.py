"""A made-up faces world, small enough for a CPU smoke run of the real faces rules (tests, CI, ``configs/faces_tiny``).

It writes, under one folder, everything the user would otherwise supply:

* ``celebahq/img/<i>.jpg`` and ``celebahq/CelebAMask-HQ-attribute-anno.txt``: drawn cartoon faces whose pixels show
  a few attributes (Eyeglasses, Smiling, Blond_Hair, Wearing_Hat, Male: a beard), the other 35 labels random, in the
  exact format of CelebAMask-HQ's file;
* ``ffhq/<i>.png``: more cartoon faces, unlabelled (the evaluation set);
* ``psp_tiny.pt``: a pSp checkpoint of the real layout (GradualStyleEncoder IR-SE50) whose decoder is a
  ``output_size``-pixel StyleGAN2, every weight filled by ``../shared/compat/RECIPE.md``'s seeded recipe;
* ``arcface_tiny.onnx``: an ArcFace-shaped ONNX model (input ``(N, 3, 112, 112)``, one embedding output) with seeded
  weights, which insightface routes to ``ArcFaceONNX`` like the real one;
* ``inception_tiny.pth``: torch-fidelity's Inception-v3 state_dict (the exact keys and shapes of
  ``pt_inception-2015-12-05-6726825d.pth``, 95 MB of float32: written, never shipped) filled by
  :func:`write_inception_weights`'s seeded rules, batch norms calibrated on seeded faces, for realism features;
* ``vgg16_tiny.pth``: torchvision VGG16's ``features.*`` keys and shapes (59 MB of float32; the classifier, which W*
  never reads, is left out), seeded by :func:`latentedit.faces.vgg.write_vgg16_weights`, for W*'s perceptual distance.

:func:`write_detector_onnx` writes an SCRFD-shaped face detector (nine outputs, which insightface routes to ``SCRFD``)
that "finds" one face at the cartoon's unjittered landmarks (:data:`LANDMARKS`), for ``latentedit edit --detector``.

Run ``python -m latentedit.faces.tiny DIR`` to build it (``configs/faces_tiny.yaml`` expects ``DIR = tiny_faces``).
"""

from __future__ import annotations

import argparse
import functools
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from latentedit.data.celebahq import CELEBA_ATTRIBUTES

DRAWN = ("Eyeglasses", "Smiling", "Blond_Hair", "Wearing_Hat", "Male")  # attributes the pixels show


def draw_face(labels: dict[str, int], size: int, rng: np.random.Generator) -> Image.Image:
    """A cartoon face on a random background, drawn at 4× and downsampled; ``labels`` (0/1) of :data:`DRAWN`."""
    s = 4 * size
    bg = tuple(int(v) for v in rng.integers(40, 200, 3))
    im = Image.new("RGB", (s, s), bg)
    d = ImageDraw.Draw(im)
    skin = tuple(int(v) for v in np.clip(np.array([225, 180, 150]) + rng.integers(-30, 30, 3), 0, 255))
    j = lambda: int(rng.integers(-s // 32, s // 32 + 1))  # noqa: E731  small jitter of every landmark
    face = (s * 0.2 + j(), s * 0.18 + j(), s * 0.8 + j(), s * 0.92 + j())
    hair = (235, 200, 60) if labels["Blond_Hair"] else (60, 40, 25)
    d.ellipse((face[0] - s * 0.04, face[1] - s * 0.06, face[2] + s * 0.04, s * 0.6), fill=hair)
    d.ellipse(face, fill=skin)
    if labels["Male"]:  # a beard
        d.chord((face[0], s * 0.45, face[2], face[3]), 20, 160, fill=(70, 50, 35))
    ey = s * 0.45 + j()
    for ex in (s * 0.38 + j(), s * 0.62 + j()):
        d.ellipse((ex - s * 0.04, ey - s * 0.03, ex + s * 0.04, ey + s * 0.03), fill=(30, 30, 30))
        if labels["Eyeglasses"]:
            d.ellipse((ex - s * 0.09, ey - s * 0.07, ex + s * 0.09, ey + s * 0.07), outline=(10, 10, 10),
                      width=max(2, s // 40))
    if labels["Eyeglasses"]:
        d.line((s * 0.47, ey, s * 0.53, ey), fill=(10, 10, 10), width=max(2, s // 40))
    my = s * 0.72 + j()
    mouth = (s * 0.38, my - s * 0.06, s * 0.62, my + s * 0.06)
    if labels["Smiling"]:
        d.chord(mouth, 0, 180, fill=(150, 20, 30))
    else:
        d.line((mouth[0], my, mouth[2], my), fill=(120, 30, 30), width=max(2, s // 50))
    if labels["Wearing_Hat"]:
        hat = tuple(int(v) for v in rng.integers(0, 255, 3))
        d.rectangle((face[0] - s * 0.05, face[1] - s * 0.1, face[2] + s * 0.05, face[1] + s * 0.12), fill=hat)
    return im.resize((size, size), Image.Resampling.LANCZOS)


# Where draw_face puts the five landmarks insightface's detectors report (left eye, right eye, nose, left and right
# mouth corner), as fractions of the side, before its jitter of up to 1/32 of the side.
LANDMARKS = np.array([[0.38, 0.45], [0.62, 0.45], [0.50, 0.58], [0.38, 0.72], [0.62, 0.72]])


def random_labels(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 40) 0/1 labels: the drawn attributes at rate 0.5, the others (noise to the pixels) at 0.1."""
    rates = np.array([0.5 if a in DRAWN else 0.1 for a in CELEBA_ATTRIBUTES])
    return (rng.random((n, len(CELEBA_ATTRIBUTES))) < rates).astype(np.uint8)


def write_celebahq(root: Path, n: int, size: int, rng: np.random.Generator) -> None:
    (root / "img").mkdir(parents=True, exist_ok=True)
    labels = random_labels(n, rng)
    rows = []
    for i in range(n):
        row = dict(zip(CELEBA_ATTRIBUTES, labels[i].tolist()))
        draw_face(row, size, rng).save(root / "img" / f"{i}.jpg", quality=95)
        rows.append(f"{i}.jpg " + " ".join("1" if v else "-1" for v in labels[i]))
    text = f"{n}\n{' '.join(CELEBA_ATTRIBUTES)}\n" + "\n".join(rows) + "\n"
    (root / "CelebAMask-HQ-attribute-anno.txt").write_text(text)


def write_ffhq(root: Path, n: int, size: int, rng: np.random.Generator) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i, row in enumerate(random_labels(n, rng)):
        draw_face(dict(zip(CELEBA_ATTRIBUTES, row.tolist())), size, rng).save(root / f"{i:05d}.png")


def write_psp_checkpoint(path: Path, output_size: int) -> None:
    """A recipe-filled pSp checkpoint ``{'state_dict', 'opts', 'latent_avg'}`` with a ``output_size`` decoder,
    saved the way pSp's coach saves it (opts a plain dict, device ``cuda:0``)."""
    from latentedit.faces.psp import PSP
    from latentedit.faces.recipe import fill_state_dict, fill_value

    opts = {"encoder_type": "GradualStyleEncoder", "output_size": output_size, "input_nc": 3, "label_nc": 0,
            "learn_in_w": False, "start_from_latent_avg": True, "device": "cuda:0"}
    with torch.device("meta"):
        model = PSP(opts)
    n_styles = model.n_styles
    shapes = model.state_dict()
    state = {}
    for key, t in shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros((), dtype=torch.long)
        elif key.endswith(".kernel"):  # FIR buffers, kept as constructed (RECIPE G12)
            k = torch.tensor([1.0, 3.0, 3.0, 1.0])
            state[key] = torch.outer(k, k) / torch.outer(k, k).sum() * 4
        else:
            state[key] = fill_state_dict({key: torch.empty(t.shape)})[key]
    latent_avg = fill_value("latent_avg", torch.empty(n_styles, 512))
    torch.save({"state_dict": state, "opts": opts, "latent_avg": latent_avg}, path)


def write_arcface_onnx(path: Path, dim: int = 64, seed: int = 0, size: int = 112) -> None:
    """input.1 (N, 3, size, size) → Conv 8×8 stride 8 → ReLU → Flatten → Gemm → (N, dim), seeded weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    flat = 8 * (size // 8) ** 2
    weights = {"conv_w": rng.standard_normal((8, 3, 8, 8)) / np.sqrt(3 * 64), "conv_b": 0.1 * rng.standard_normal(8),
               "fc_w": rng.standard_normal((dim, flat)) / np.sqrt(flat), "fc_b": 0.1 * rng.standard_normal(dim)}
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()]
    nodes = [helper.make_node("Conv", ["input.1", "conv_w", "conv_b"], ["c"], kernel_shape=[8, 8], strides=[8, 8]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Flatten", ["r"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["fc1"], transB=1)]
    graph = helper.make_graph(
        nodes, "tiny_arcface", [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [None, 3, size, size])],
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [None, dim])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


# Seeded fill of torch-fidelity's Inception-v3 (RECIPE.md covers StyleGAN2 and pSp only): each key's own stream
# latentedit.faces.recipe.draw(K) (SEED, crc32 of the key), then a rule by key suffix, as in recipe.RULES.
# (suffix, form, arguments); "zero": num_batches_tracked. Batch-norm bias ≈ 2 on calibrated (unit-variance)
# activations keeps 98 % of the ReLUs in their linear part (see write_inception_weights).
INCEPTION_RULES = [
    (".conv.weight", "fan", (2.0 ** 0.5,)),
    (".bn.weight", "affine", (0.1, 1.0)),
    (".bn.bias", "affine", (0.1, 2.0)),
    (".bn.running_mean", "affine", (0.1, 0.0)),  # replaced by the calibration
    (".bn.running_var", "absaffine", (0.2, 1.0)),  # replaced by the calibration
    (".bn.num_batches_tracked", "zero", ()),
    ("fc.weight", "fan", (1.0,)),
    ("fc.bias", "affine", (0.1, 0.0)),
]


def inception_fill(key: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """The seeded value of one Inception-v3 key (:data:`INCEPTION_RULES`; exactly one suffix must match)."""
    from latentedit.faces.recipe import draw

    hits = [(form, args) for suffix, form, args in INCEPTION_RULES if key.endswith(suffix)]
    if len(hits) != 1:
        raise KeyError(f"{key!r}: {len(hits)} Inception fill rules match (expected exactly one)")
    form, args = hits[0]
    if form == "zero":
        return torch.zeros(shape, dtype=dtype)
    z = draw(key, shape)
    if form == "fan":
        value = z * np.float32(args[0] / np.sqrt(np.prod(shape[1:])))
    elif form == "affine":
        value = z * np.float32(args[0]) + np.float32(args[1])
    else:  # absaffine
        value = np.abs(z) * np.float32(args[0]) + np.float32(args[1])
    return torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))


@torch.no_grad()
def write_inception_weights(path: str | Path, n_calibration: int = 8, seed: int = 0) -> Path:
    """A seeded Inception-v3 state_dict with the exact keys and shapes torch-fidelity's ``FeatureExtractorInceptionV3``
    loads (read off the library: :func:`latentedit.faces.inception.inception_layout`); 95 MB of float32.

    The weights are :data:`INCEPTION_RULES`' fill; then every batch norm's running mean and variance are set, layer
    by layer in one forward pass, to its convolution's output statistics over ``n_calibration`` seeded cartoon faces
    (data-dependent initialisation), so each BN outputs ≈ N(2, 1) per channel and the ReLUs act almost linearly.
    Measured on 16 tiny-world faces: the uncalibrated random 94-layer ReLU network maps every image to nearly the same
    pool features (spread across images 2.5 % of their scale); calibrated with bias 0 it is chaotic (a face with a
    green hat, unlike the calibration faces, got features 50× the others); calibrated with bias 2 the features are
    in [0, 3.6] and their spread across images is 80 % of their scale.
    """
    from latentedit.faces.inception import FEATURE, NAME, _extractor_class, inception_layout

    extractor_class = _extractor_class()  # imports torch_fidelity (after the torchvision workaround)
    from torch_fidelity.feature_extractor_inceptionv3 import BasicConv2d

    state = {key: inception_fill(key, tuple(shape), dtype) for key, (shape, dtype) in inception_layout().items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    model = extractor_class(NAME, [FEATURE], feature_extractor_weights_path=buffer).eval()

    def calibrate(conv, inputs, output, bn):  # runs before bn, which then normalises with these statistics
        bn.running_mean.copy_(output.mean((0, 2, 3)))
        bn.running_var.copy_(output.var((0, 2, 3)))

    hooks = [m.conv.register_forward_hook(functools.partial(calibrate, bn=m.bn))
             for m in model.modules() if isinstance(m, BasicConv2d)]
    rng = np.random.default_rng(seed)
    faces = [np.asarray(draw_face(dict(zip(CELEBA_ATTRIBUTES, row.tolist())), 64, rng)).transpose(2, 0, 1)
             for row in random_labels(n_calibration, rng)]
    model(torch.from_numpy(np.stack(faces)))  # (n, 3, 64, 64) uint8
    for h in hooks:
        h.remove()
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, tmp)
    tmp.replace(path)
    return path


def write_detector_onnx(path: Path, size: int = 64, score: float = 0.9) -> np.ndarray:
    """An SCRFD-shaped detector ONNX with a fixed ``size``×``size`` input that reports one face, with score ``score``,
    whose landmarks are :data:`LANDMARKS` of its input (whatever the pixels; ``score`` below insightface's 0.5
    threshold: a detector that finds nothing).

    The nine outputs are SCRFD's (scores, box distances, keypoint offsets for strides 8, 16, 32, two anchors per
    cell), constants added to 0·mean(input). Returns the landmarks (5, 2) in input pixels.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    strides, anchors = (8, 16, 32), 2
    landmarks = LANDMARKS * size
    centre = np.array([size // 2, size // 2], dtype=np.float64)  # an anchor centre of stride 8 (size % 16 == 0)
    box = np.array([landmarks[:, 0].min() - 0.1 * size, landmarks[:, 1].min() - 0.2 * size,
                    landmarks[:, 0].max() + 0.1 * size, landmarks[:, 1].max() + 0.1 * size])
    outputs = {}
    for stride in strides:
        cells = (size // stride) ** 2 * anchors
        scores, boxes, kps = np.zeros((cells, 1)), np.zeros((cells, 4)), np.zeros((cells, 10))
        if stride == 8:
            k = (int(centre[1]) // 8 * (size // 8) + int(centre[0]) // 8) * anchors  # (row, column, anchor 0)
            scores[k] = score
            boxes[k] = np.concatenate([centre - box[:2], box[2:] - centre]) / stride
            kps[k] = ((landmarks - centre) / stride).reshape(-1)
        for name, value in (("score", scores), ("bbox", boxes), ("kps", kps)):
            outputs[f"{name}_{stride}"] = value.astype(np.float32)
    order = [f"{name}_{stride}" for name in ("score", "bbox", "kps") for stride in strides]
    inits = [numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    inits += [numpy_helper.from_array(outputs[name], f"{name}_value") for name in order]
    nodes = [helper.make_node("ReduceMean", ["input.1"], ["mean"], keepdims=0),
             helper.make_node("Mul", ["mean", "zero"], ["nothing"])]
    nodes += [helper.make_node("Add", [f"{name}_value", "nothing"], [name]) for name in order]
    graph = helper.make_graph(
        nodes, "tiny_scrfd", [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, list(outputs[name].shape)) for name in order],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return landmarks


def make_tiny_faces_world(root: str | Path, n_celebahq: int = 80, n_ffhq: int = 24, image_size: int = 64,
                          output_size: int = 16, seed: int = 0) -> dict[str, str]:
    """Write the made-up faces world under ``root``; returns the config paths (``faces.*`` keys)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    write_celebahq(root / "celebahq", n_celebahq, image_size, rng)
    write_ffhq(root / "ffhq", n_ffhq, image_size, rng)
    write_psp_checkpoint(root / "psp_tiny.pt", output_size)
    write_arcface_onnx(root / "arcface_tiny.onnx")
    write_inception_weights(root / "inception_tiny.pth")
    from latentedit.faces.vgg import write_vgg16_weights

    write_vgg16_weights(root / "vgg16_tiny.pth")
    return {"celebahq_images": str(root / "celebahq" / "img"),
            "celebahq_attributes": str(root / "celebahq" / "CelebAMask-HQ-attribute-anno.txt"),
            "ffhq_images": str(root / "ffhq"), "psp_checkpoint": str(root / "psp_tiny.pt"),
            "arcface": str(root / "arcface_tiny.onnx"), "inception_weights": str(root / "inception_tiny.pth"),
            "vgg16_weights": str(root / "vgg16_tiny.pth")}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("root", help="folder to write (configs/faces_tiny.yaml expects tiny_faces)")
    p.add_argument("--n-celebahq", type=int, default=80)
    p.add_argument("--n-ffhq", type=int, default=24)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--output-size", type=int, default=16, help="side of the pSp decoder's images")
    a = p.parse_args(argv)
    for key, path in make_tiny_faces_world(a.root, a.n_celebahq, a.n_ffhq, a.image_size, a.output_size).items():
        print(f"{key}: {path}")


if __name__ == "__main__":
    main()
