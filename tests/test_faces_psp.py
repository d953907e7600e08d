"""pSp FFHQ encoder (latentedit.faces.psp): checkpoint layout, golden vectors of ../shared/compat, safe loading."""

import copy
import gc
import json
import os
import pathlib

import numpy as np
import pytest
import torch
from PIL import Image

from latentedit.faces.psp import PSP, GradualStyleEncoder, load_psp, normalize_opts
from latentedit.faces.recipe import fill_state_dict, fill_value
from latentedit.io.checkpoints import CheckpointError
from tests.compat import COMPAT, require_compat

# The FFHQ-encode opts of the golden run (manifest.json "psp"/"opts_used"), saved as released checkpoints do:
# a plain dict whose device is the training GPU.
OPTS = {
    "exp_dir": None, "dataset_type": "ffhq_encode", "encoder_type": "GradualStyleEncoder", "input_nc": 3,
    "label_nc": 0, "output_size": 1024, "batch_size": 4, "test_batch_size": 2, "workers": 4, "test_workers": 2,
    "learning_rate": 0.0001, "optim_name": "ranger", "train_decoder": False, "start_from_latent_avg": True,
    "learn_in_w": False, "lpips_lambda": 0.8, "id_lambda": 0.1, "l2_lambda": 1.0, "w_norm_lambda": 0,
    "lpips_lambda_crop": 0, "l2_lambda_crop": 0, "moco_lambda": 0,
    "stylegan_weights": "pretrained_models/stylegan2-ffhq-config-f.pt", "checkpoint_path": None,
    "max_steps": 500000, "image_interval": 100, "board_interval": 50, "val_interval": 1000, "save_interval": None,
    "use_wandb": False, "resize_factors": None, "device": "cuda:0", "n_styles": 18,
}


def _keys_json() -> dict:
    return json.loads((COMPAT / "psp_ffhq_encode_keys.json").read_text())


def _golden() -> dict:
    with np.load(COMPAT / "psp_golden.npz") as g:
        return {k: torch.from_numpy(g[k]) for k in g.files}


def _maxabs(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return float((a - b).abs().max())


def _meta_psp(opts=OPTS) -> PSP:
    """A PSP on the meta device: its state_dict's keys, shapes and dtypes without allocating 1.2 GB."""
    pytest.importorskip("latentedit.faces.stylegan2", reason="the StyleGAN2 decoder module is not there yet")
    with torch.device("meta"):
        return PSP(opts)


def _cheap_state_dict(model: PSP) -> dict:
    """A full-shaped state_dict of zeros whose tensors are stride-0 views of one element (a few kB on disk)."""
    return {k: torch.zeros((), dtype=v.dtype).expand(v.shape) for k, v in model.state_dict().items()}


def test_encoder_state_dict_matches_checkpoint_layout():
    require_compat()
    ref = _keys_json()
    expected = [(k.removeprefix("encoder."), shape) for k, shape in ref["state_dict"].items()
                if k.startswith("encoder.")]
    with torch.device("meta"):
        encoder = GradualStyleEncoder(50, "ir_se", n_styles=18, input_nc=3)
    sd = encoder.state_dict()
    assert [(k, list(v.shape)) for k, v in sd.items()] == expected  # keys, shapes and order
    int64 = {k.removeprefix("encoder.") for k, d in ref["dtypes_non_float32"].items() if d == "int64"}
    assert {k for k, v in sd.items() if v.dtype == torch.int64} == int64
    assert all(v.dtype == torch.float32 for k, v in sd.items() if k not in int64)
    buffers = {k.removeprefix("encoder.") for k in ref["buffers"] if k.startswith("encoder.")}
    assert {k for k, _ in encoder.named_buffers()} == buffers
    assert sum(p.numel() for p in encoder.parameters()) == ref["counts"]["encoder_parameter_elements"]


def test_psp_state_dict_matches_whole_checkpoint_layout():
    require_compat()
    ref = _keys_json()
    model = _meta_psp()
    assert [(k, list(v.shape)) for k, v in model.state_dict().items()] == list(ref["state_dict"].items())
    assert "latent_avg" not in model.state_dict()  # a top-level checkpoint entry, not state_dict
    assert model.n_styles == 18 and model.opts["n_styles"] == 18


def test_encoder_matches_golden():
    require_compat()
    g = _golden()
    encoder = GradualStyleEncoder(50, "ir_se", n_styles=18, input_nc=3)
    encoder.load_state_dict(fill_state_dict(encoder.state_dict(), prefix="encoder."), strict=True)
    encoder.eval()
    with torch.no_grad():
        codes, feats = encoder(g["encoder_input"], return_features=True)
    assert codes.shape == (2, 18, 512)
    assert _maxabs(codes, g["encoder_codes"]) < 1e-4
    assert _maxabs(feats["c3"], g["encoder_c3"]) < 1e-4
    assert _maxabs(feats["c1"].mean(dim=(2, 3)), g["encoder_c1_chanmean"]) < 1e-4
    assert _maxabs(feats["c2"].mean(dim=(2, 3)), g["encoder_c2_chanmean"]) < 1e-4
    del encoder
    gc.collect()


@pytest.fixture(scope="module")
def golden_psp(tmp_path_factory):
    """The recipe-filled pSp checkpoint (1.2 GB, like the released one), saved and loaded through load_psp."""
    require_compat()
    pytest.importorskip("latentedit.faces.stylegan2", reason="the StyleGAN2 decoder module is not there yet")
    model = PSP(OPTS)
    state_dict = {}
    for prefix, part in (("encoder.", model.encoder), ("decoder.", model.decoder)):
        state_dict.update({prefix + k: v for k, v in fill_state_dict(part.state_dict(), prefix=prefix).items()})
    del model
    path = tmp_path_factory.mktemp("psp") / "psp_ffhq_encode.pt"
    torch.save({"state_dict": state_dict, "opts": dict(OPTS),
                "latent_avg": fill_value("latent_avg", torch.empty(18, 512))}, path)
    del state_dict
    gc.collect()
    try:
        net = load_psp(path, device="cpu")
    finally:
        path.unlink()
    yield net
    del net
    gc.collect()


def test_psp_forward_matches_golden(golden_psp):
    g = _golden()
    net = golden_psp
    assert not net.training and net.opts["device"] == "cpu"
    assert net.latent_avg.shape == (18, 512) and _maxabs(net.latent_avg, g["latent_avg"]) == 0
    with torch.no_grad():
        image, latent = net(g["psp_input"], resize=True, randomize_noise=False, return_latents=True)
    assert _maxabs(latent, g["psp_latent"]) < 5e-5
    assert image.shape == (1, 3, 256, 256)
    assert _maxabs(image, g["psp_image256"]) < 1e-4


def test_encode_input_resize(golden_psp):
    """encode() = encoder(prepare(x)) + latent_avg, and the golden forward proves that sum at 256. Here, prepare()
    alone: 256x256 passes through, other square sizes are resized as pSp's transforms (PIL bilinear) would."""
    x = _golden()["psp_input"]
    assert torch.equal(golden_psp.prepare(x), x)
    rng = np.random.default_rng(0)
    for size in (512, 128):  # shrink and enlarge; white noise is the hardest case for the filter's shape
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        pil = np.array(Image.fromarray(pixels).resize((256, 256), Image.BILINEAR))
        ours = golden_psp.prepare(torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 127.5 - 1)
        pil = torch.from_numpy(pil).permute(2, 0, 1)[None].float() / 127.5 - 1
        assert _maxabs(ours, pil) <= 1.001 / 127.5  # PIL rounds to uint8: at most one step apart
    with pytest.raises(ValueError, match="square"):
        golden_psp.encode(torch.zeros(1, 3, 256, 128))


def _save(path: pathlib.Path, state_dict: dict, opts=OPTS, latent_avg=None) -> pathlib.Path:
    ck = {"state_dict": state_dict, "opts": dict(opts)}
    if latent_avg is not None:
        ck["latent_avg"] = latent_avg
    torch.save(ck, path)
    return path


def test_load_psp_old_opts_and_w_latent_avg(tmp_path):
    model = _meta_psp()
    opts = {k: v for k, v in OPTS.items() if k not in ("output_size", "learn_in_w", "n_styles")}  # pre-2021-04-23
    avg = torch.arange(512, dtype=torch.float32)  # a [512] mean_latent-style latent_avg
    net = load_psp(_save(tmp_path / "old.pt", _cheap_state_dict(model), opts, avg), device="cpu")
    assert not net.training
    assert net.opts["output_size"] == 1024 and net.opts["learn_in_w"] is False and net.opts["device"] == "cpu"
    assert net.latent_avg.shape == (18, 512) and torch.equal(net.latent_avg, avg.expand(18, 512))
    net.set_latent_avg(avg[None])  # [1, 512], as learn_in_w would save it
    assert torch.equal(net.latent_avg, avg.expand(18, 512))
    with pytest.raises(ValueError, match=r"\[17, 512\]"):
        net.set_latent_avg(torch.zeros(17, 512))


def test_mismatched_checkpoint_names_the_key(tmp_path):
    model = _meta_psp()
    avg = torch.zeros(18, 512)
    missing = _cheap_state_dict(model)
    del missing["encoder.body.5.res_layer.3.weight"]
    path = _save(tmp_path / "missing.pt", missing, latent_avg=avg)
    with pytest.raises(CheckpointError, match=r"missing keys \['encoder\.body\.5\.res_layer\.3\.weight'\]") as e:
        load_psp(path)
    assert str(path) in str(e.value)

    wrong = _cheap_state_dict(model)
    wrong["encoder.styles.4.linear.weight"] = torch.zeros(()).expand(512, 256)
    with pytest.raises(CheckpointError, match=r"encoder\.styles\.4\.linear\.weight: checkpoint \(512, 256\)"):
        load_psp(_save(tmp_path / "shape.pt", wrong, latent_avg=avg))

    with pytest.raises(CheckpointError, match=r"latent_avg has shape \[18, 256\]"):
        load_psp(_save(tmp_path / "avg.pt", _cheap_state_dict(model), latent_avg=torch.zeros(18, 256)))
    with pytest.raises(CheckpointError, match="no 'latent_avg'"):
        load_psp(_save(tmp_path / "noavg.pt", {}))


class _Mkdir:
    """Unpickling this runs ``os.mkdir(marker)``: arbitrary code a safe loader must refuse."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_code_executing_pickle_is_refused(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "opts": dict(OPTS), "latent_avg": _Mkdir(marker)}, path)
    with pytest.raises(CheckpointError, match="weights_only") as e:
        load_psp(path)
    assert str(path) in str(e.value)
    assert not marker.exists()


def test_unsupported_encoder_type_is_named(tmp_path):
    opts = copy.deepcopy(OPTS)
    opts["encoder_type"] = "BackboneEncoderUsingLastLayerIntoWPlus"
    with pytest.raises(CheckpointError, match="BackboneEncoderUsingLastLayerIntoWPlus"):
        load_psp(_save(tmp_path / "w.pt", {}, opts))
    with pytest.raises(ValueError, match="'ResNetGradualStyleEncoder'"):
        normalize_opts({**OPTS, "encoder_type": "ResNetGradualStyleEncoder"})
    torch.save({"weights": torch.zeros(2)}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a pSp checkpoint"):
        load_psp(tmp_path / "plain.pt")


def test_encoder_rejects_wrong_input_size():
    with torch.device("meta"):
        encoder = GradualStyleEncoder()
    with pytest.raises(ValueError, match=r"\(B, 3, 256, 256\)"):
        encoder(torch.zeros(1, 3, 128, 128, device="meta"))
