"""ArcFace identity through insightface, on small seeded ONNX models built here (no real ArcFace weights)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from latentedit.faces.identity import FFHQ_PSP_CROP, ArcFace, preprocess

D = 64  # embedding size of the test models


def _weights(seed: int = 0, size: int = 112) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    flat = 8 * (size // 8) ** 2
    return {"conv_w": (rng.standard_normal((8, 3, 8, 8)) / np.sqrt(3 * 64)).astype(np.float32),
            "conv_b": (0.1 * rng.standard_normal(8)).astype(np.float32),
            "fc_w": (rng.standard_normal((D, flat)) / np.sqrt(flat)).astype(np.float32),
            "fc_b": (0.1 * rng.standard_normal(D)).astype(np.float32)}


def _build(path, *, embedded_norm: bool = False, seed: int = 0, size: int = 112, outputs: int = 1) -> str:
    """A tiny "ArcFace": input.1 (N, 3, S, S) → Conv 8×8/8 → ReLU → Flatten → Gemm → (N, 64).

    ``embedded_norm`` prepends the mxnet-style in-graph normalisation (nodes named ``_minus0``/``_mul0`` computing
    (x − 127.5) / 127.5): insightface then feeds raw 0..255 pixels instead of normalising itself.
    """
    w = _weights(seed, size)
    inits = [numpy_helper.from_array(v, k) for k, v in w.items()]
    nodes, x = [], "input.1"
    if embedded_norm:
        inits += [numpy_helper.from_array(np.array(127.5, np.float32), "mean"),
                  numpy_helper.from_array(np.array(1 / 127.5, np.float32), "inv_std")]
        nodes += [helper.make_node("Sub", [x, "mean"], ["centred"], name="_minus0"),
                  helper.make_node("Mul", ["centred", "inv_std"], ["normed"], name="_mul0")]
        x = "normed"
    nodes += [helper.make_node("Conv", [x, "conv_w", "conv_b"], ["c"], name="conv0", kernel_shape=[8, 8],
                               strides=[8, 8]),
              helper.make_node("Relu", ["c"], ["r"], name="relu0"),
              helper.make_node("Flatten", ["r"], ["f"], name="flatten0", axis=1),
              helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["fc1"], name="fc0", transB=1)]
    outs = [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [None, D])]
    for k in range(1, outputs):  # extra outputs make it "not ArcFace" for insightface
        nodes.append(helper.make_node("Identity", ["fc1"], [f"extra{k}"], name=f"extra{k}"))
        outs.append(helper.make_tensor_value_info(f"extra{k}", TensorProto.FLOAT, [None, D]))
    graph = helper.make_graph(nodes, "tiny_arcface",
                              [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [None, 3, size, size])],
                              outs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("arcface") / "tiny_arcface.onnx")


@pytest.fixture(scope="module")
def arcface(model_path):
    return ArcFace(model_path, providers=["CPUExecutionProvider"], batch_size=4, threads=1)


def _images(n: int, size: int = 112, seed: int = 0) -> torch.Tensor:
    """Smooth-ish random RGB images in [−1, 1] with different channel statistics (so a channel swap shows)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 8, 8, generator=g) * 2 - 1
    x = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    return (x + torch.tensor([0.4, -0.2, -0.5]).view(1, 3, 1, 1)).clamp(-1, 1)


def test_routes_to_arcface_with_insightface_normalisation(arcface):
    assert arcface.model.input_mean == 127.5 and arcface.model.input_std == 127.5
    assert arcface.input_size == 112 and arcface.embedding_dim == D
    assert "CPUExecutionProvider" in arcface.model.session.get_providers()


def test_embeddings_unit_norm_and_batch_invariant(arcface):
    x = _images(7)
    e = arcface.embed(x)  # batches of 4: 4 + 3
    assert e.shape == (7, D) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    single = np.concatenate([arcface.embed(x[i:i + 1]) for i in range(7)])
    np.testing.assert_allclose(e, single, atol=1e-5)
    assert arcface.embed(x[:0]).shape == (0, D)


def test_float_uint8_numpy_inputs_agree(arcface):
    x = _images(3)
    u8 = ((x + 1) * 127.5 + 0.5).clamp(0, 255).to(torch.uint8)
    e = arcface.embed(x)
    np.testing.assert_allclose(arcface.embed(u8), e, atol=1e-6)
    np.testing.assert_allclose(arcface.embed(x.numpy()), e, atol=1e-6)
    np.testing.assert_allclose(arcface.embed(u8.numpy()), e, atol=1e-6)


def test_identity_similarity(arcface):
    x, y = _images(5, seed=1), _images(5, seed=2)
    np.testing.assert_allclose(arcface.identity_similarity(x, x), 1.0, atol=1e-5)
    s = arcface.identity_similarity(x, y)
    assert s.shape == (5,) and np.all(s < 0.9999) and np.all(np.abs(s) <= 1 + 1e-6)
    with pytest.raises(ValueError, match="differ in number"):
        arcface.identity_similarity(x, y[:4])


def test_network_sees_rgb_normalised_by_127_5(arcface, model_path):
    """insightface's get_feat takes BGR and swaps back (swapRB=True): the graph receives (x_rgb − 127.5) / 127.5."""
    x = _images(3)
    u8 = ((x + 1) * 127.5 + 0.5).clamp(0, 255).to(torch.uint8).numpy()  # (B, 3, H, W) RGB
    sess = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])

    def direct(blob):
        out = sess.run(None, {"input.1": blob.astype(np.float32)})[0]
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    e = arcface.embed(x)
    rgb = (u8.astype(np.float32) - 127.5) / 127.5
    np.testing.assert_allclose(e, direct(rgb), atol=1e-5)
    bgr = rgb[:, ::-1]
    assert np.abs(e - direct(bgr)).max() > 1e-2  # the channel order matters, so the check above is meaningful
    assert np.abs(e - direct(u8.astype(np.float32))).max() > 1e-2  # and so does the normalisation
    # the array handed to get_feat is BGR HWC uint8
    np.testing.assert_array_equal(preprocess(x, 112), u8[:, ::-1].transpose(0, 2, 3, 1))


def test_graph_normalised_model_gets_raw_pixels(tmp_path, arcface):
    """An mxnet-style file (Sub/Mul at the start) normalises itself: insightface feeds 0..255, same embeddings."""
    path = _build(tmp_path / "mx.onnx", embedded_norm=True)
    mx = ArcFace(path, providers=["CPUExecutionProvider"], threads=1)
    assert mx.model.input_mean == 0.0 and mx.model.input_std == 1.0
    x = _images(4)
    np.testing.assert_allclose(mx.embed(x), arcface.embed(x), atol=1e-5)


def test_crop_and_resize(arcface):
    big = torch.nn.functional.interpolate(_images(2), size=(256, 256), mode="bilinear", align_corners=False)
    e = arcface.embed(big)  # 256 → 112 with antialiasing
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert np.all(np.sum(e * arcface.embed(_images(2)), axis=1) > 0.99)  # resizing back and forth ≈ same image
    boxed = preprocess(big, 112, crop=FFHQ_PSP_CROP)
    manual = preprocess(big[:, :, 35:223, 32:220], 112)
    np.testing.assert_array_equal(boxed, manual)
    np.testing.assert_array_equal(preprocess(big, 112, crop=0.5), preprocess(big[:, :, 64:192, 64:192], 112))
    with pytest.raises(ValueError, match="crop"):
        preprocess(big, 112, crop=(0.5, 0.1, 0.4, 0.9))


def test_missing_and_wrong_files_fail_naming_them(tmp_path):
    missing = tmp_path / "w600k_r50.onnx"
    with pytest.raises(FileNotFoundError, match="w600k_r50.onnx"):
        ArcFace(missing)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf at all")
    with pytest.raises(ValueError, match="junk.onnx"):
        ArcFace(junk)
    two = _build(tmp_path / "two_outputs.onnx", outputs=2)
    with pytest.raises(ValueError, match="two_outputs.onnx.*not an ArcFace"):
        ArcFace(two)
    small = _build(tmp_path / "small_input.onnx", size=96)  # 96×96 is insightface's gender/age model
    with pytest.raises(ValueError, match="small_input.onnx.*Attribute"):
        ArcFace(small)
