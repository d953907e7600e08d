"""VGG16 perceptual features of W* on faces (latentedit.faces.vgg, latentedit.wstar.perceptual): the weights file's
checks name the file, the taken layers are the ends of blocks 2-4, φ's squared distance is LPIPS's unweighted
per-layer spatial mean (exactly at full resolution, on patch means when pooled), φ is differentiable, and the
``wstar.perceptual`` config checks name the key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from latentedit.config import ConfigError, check_config
from latentedit.faces import vgg

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def vgg_weights(tmp_path_factory) -> Path:
    """The tiny world's seeded VGG16 file (features.* keys, 59 MB), written once per session."""
    return vgg.write_vgg16_weights(tmp_path_factory.mktemp("vgg") / "vgg16_tiny.pth")


@pytest.fixture(scope="module")
def net(vgg_weights) -> vgg.VGGPerceptual:
    return vgg.load_vgg16(vgg_weights, size=32, grid=None)  # 32 px: layers of 16², 8², 4² cells


def _images(n: int, seed: int = 0, side: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, side, side, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_written_file_has_torchvisions_feature_keys_and_loads(vgg_weights):
    layout = vgg.vgg16_layout()
    state = torch.load(vgg_weights, weights_only=True)
    assert set(state) == {k for k in layout if k.startswith("features.")} and len(state) == 26
    assert all(state[k].shape == layout[k] for k in state)
    assert 58e6 < vgg_weights.stat().st_size < 60e6  # 14.7 M float32; the 124 M classifier weights are left out
    assert len(vgg.check_weights(vgg_weights)) == 26


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.pop("features.28.bias"), "missing keys (1): features.28.bias"),
    (lambda s: s.update({"features.0.weight": torch.zeros(64, 3, 5, 5)}), "wrong shapes (1): features.0.weight"),
    (lambda s: s.update({"fc.weight": torch.zeros(2)}), "unexpected keys (1): fc.weight"),
    (lambda s: s.update({"classifier.6.bias": torch.zeros(10)}), "wrong shapes (1): classifier.6.bias (10,)"),
])
def test_a_wrong_weights_file_fails_naming_the_file_and_the_key(vgg_weights, tmp_path, edit, message):
    state = torch.load(vgg_weights, weights_only=True)
    edit(state)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match="not torchvision's VGG16 weights") as e:
        vgg.load_vgg16(path)
    assert str(path) in str(e.value) and message in str(e.value)


def test_classifier_keys_are_optional_and_checked_when_present(vgg_weights, tmp_path):
    state = torch.load(vgg_weights, weights_only=True)
    state["classifier.6.bias"] = torch.zeros(1000)  # torchvision's own shape: accepted, not loaded
    path = tmp_path / "with_classifier.pth"
    torch.save(state, path)
    assert set(vgg.check_weights(path)) == {k[len("features."):] for k in state if k.startswith("features.")}


def test_missing_or_unreadable_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope.pth: not found \(torchvision's VGG16 weights"):
        vgg.load_vgg16(tmp_path / "nope.pth")
    (tmp_path / "text.pth").write_text("not a torch file")
    with pytest.raises(ValueError, match="text.pth: not a readable PyTorch state_dict"):
        vgg.check_weights(tmp_path / "text.pth")
    torch.save({"features.0.weight": torch.zeros(1), "note": object()}, tmp_path / "pickle.pth")
    with pytest.raises(ValueError, match="pickle.pth: not a readable PyTorch state_dict"):  # weights_only refuses
        vgg.check_weights(tmp_path / "pickle.pth")
    with pytest.raises(FileNotFoundError, match="faces.vgg16_weights is not set"):
        vgg.load_vgg16(None)


def test_layers_are_the_ends_of_blocks_2_3_4(vgg_weights):
    from latentedit.faces.torchvision_compat import import_torchvision

    model = import_torchvision().models.vgg16(weights=None)
    model.features.load_state_dict(vgg.check_weights(vgg_weights))
    kinds = [type(model.features[i + 1]).__name__ for i in vgg.LAYERS]
    assert kinds == ["MaxPool2d"] * 3 and all(type(model.features[i]).__name__ == "ReLU" for i in vgg.LAYERS)
    net = vgg.load_vgg16(vgg_weights)  # 224 px
    x = _images(2, side=64)
    acts = net.layer_activations(x)
    assert [tuple(a.shape[1:]) for a in acts] == [(128, 112, 112), (256, 56, 56), (512, 28, 28)]
    ref = (torch.nn.functional.interpolate((x + 1) / 2, size=224, mode="bilinear", align_corners=False)
           - net.mean) / net.std
    with torch.no_grad():
        assert torch.allclose(acts[1], model.features[:16](ref), atol=1e-5)


def _lpips_unweighted(net, a, b) -> torch.Tensor:
    """Σ_l mean_hw ‖n_l(a) − n_l(b)‖², LPIPS's normalize_tensor + spatial_average without the learned weights."""
    total = 0
    for fa, fb in zip(net.layer_activations(a), net.layer_activations(b)):
        na = fa / (fa.pow(2).sum(1, keepdim=True).sqrt() + vgg.EPS)
        nb = fb / (fb.pow(2).sum(1, keepdim=True).sqrt() + vgg.EPS)
        total = total + (na - nb).pow(2).sum(1).mean((1, 2))
    return total


def test_feature_distance_is_the_lpips_formula_at_full_resolution(net):
    a, b = _images(3, 1), _images(3, 2)
    with torch.no_grad():
        d = (net(a) - net(b)).pow(2).sum(1)
        expected = _lpips_unweighted(net, a, b)
    assert torch.allclose(d, expected, rtol=1e-4)
    assert (d > 0).all() and float((net(a) - net(a)).abs().max()) == 0


def test_pooled_features_bound_the_full_resolution_distance(vgg_weights, net):
    pooled = vgg.load_vgg16(vgg_weights, size=32, grid=2)
    a, b = _images(4, 3), _images(4, 4)
    with torch.no_grad():
        d_pooled = (pooled(a) - pooled(b)).pow(2).sum(1)
        d_full = (net(a) - net(b)).pow(2).sum(1)
    assert pooled(a).shape[1] == sum(vgg.CHANNELS) * 4
    assert (d_pooled <= d_full + 1e-6).all() and (d_pooled > 0).all()


def test_features_are_differentiable_for_the_identity_loss(net):
    x = _images(2).requires_grad_(True)
    net(x).pow(2).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_load_perceptual_vgg16_renders_and_featurises(vgg_weights):
    from latentedit.wstar.perceptual import load_perceptual, render_features

    p = load_perceptual("vgg16", "faces", {"vgg16": str(vgg_weights)}, "cpu")
    assert p.differentiable is not None and p.spec["layers"] == [8, 15, 22]

    class Renderer(torch.nn.Module):  # codes (N, 3·16·16) → images (N, 3, 16, 16)
        def forward(self, z):
            return torch.tanh(z.view(len(z), 3, 16, 16))

    codes = np.random.default_rng(0).standard_normal((3, 768)).astype(np.float32)
    f = render_features(codes, Renderer(), p, "cpu")
    assert f.shape == (3, sum(vgg.CHANNELS) * vgg.GRID ** 2) and f.dtype == np.float32
    with pytest.raises(ValueError, match="wstar.perceptual: oracle is the digits oracle's"):
        load_perceptual("oracle", "faces", {}, "cpu")


def test_identity_loss_trains_t_through_the_generator_and_vgg16(net):
    """L_ID back-propagates through G and VGG16 into T (the reason ArcFace-ONNX cannot serve as L_ID's φ)."""
    from latentedit.wstar.train import WStarConfig, train_wstar

    mix = torch.randn(8, 3 * 16 * 16, generator=torch.Generator().manual_seed(0)) / 8 ** 0.5

    def generator(z):  # codes (N, 8) → images (N, 3, 16, 16) in [−1, 1]
        return torch.tanh(z @ mix).view(len(z), 3, 16, 16)

    rng = np.random.default_rng(0)
    z = rng.standard_normal((24, 8)).astype(np.float32)
    y = (z[:, :1] > 0).astype(np.float32)
    with torch.no_grad():
        f = net(generator(torch.as_tensor(z))).numpy()
    cfg = WStarConfig(hidden=(16,), batch_size=8, max_epochs=1, max_steps=1, lambda_id=1.0)
    model, history = train_wstar(z[:16], y[:16], f[:16], z[16:], y[16:], f[16:], cfg, "cpu", generator, net)
    assert history[1]["train_identity"] > 0 and np.isfinite(history[1]["train_total"])
    from latentedit.wstar.losses import identity_loss
    from latentedit.wstar.realnvp import RealNVP

    T = RealNVP((8,), 2, (16,))
    identity_loss(torch.as_tensor(z[:8]), T, generator, net, 0.5, 1.0).backward()
    assert any(p.grad is not None and float(p.grad.abs().max()) > 0 for p in T.parameters())


# ---------------------------------------------------------------------------------------------------------------
# Config checks of wstar.perceptual


def _faces_config(tmp_path, **wstar) -> dict:
    cfg = yaml.safe_load((REPO / "configs" / "faces.yaml").read_text())
    cfg["edits"]["methods"] = ["lw", "lw_wstar"]
    cfg["wstar"] = {**cfg.get("wstar", {}), **wstar}
    return cfg


@pytest.mark.parametrize("wstar, faces, message", [
    ({"perceptual": "oracle"}, {}, "wstar.perceptual: oracle is the digits oracle's per-slot features"),
    ({"perceptual": "judge", "lambda_id": 0.5}, {}, "wstar.lambda_id > 0 with wstar.perceptual: judge on faces"),
    ({"perceptual": "vgg16"}, {"vgg16_weights": None}, "faces.vgg16_weights: not set, and wstar.perceptual is vgg16"),
    ({}, {"vgg16_weights": None}, "faces.vgg16_weights: not set"),  # vgg16 is the faces default
])
def test_wstar_perceptual_checks_name_the_key_on_faces(tmp_path, wstar, faces, message):
    cfg = _faces_config(tmp_path, **wstar)
    cfg["faces"].update(faces)
    with pytest.raises(ConfigError, match="^config error: ") as e:
        check_config(cfg, dry_run=True)
    assert message in str(e.value)


def test_faces_without_wstar_methods_needs_no_vgg16_file(tmp_path):
    cfg = yaml.safe_load((REPO / "configs" / "faces.yaml").read_text())
    cfg["faces"]["vgg16_weights"] = None
    check_config(cfg, dry_run=True)
    cfg["faces"].pop("vgg16_weights")  # the key is optional
    check_config(cfg, dry_run=True)
    cfg = _faces_config(tmp_path, perceptual="judge")  # judge needs no VGG16
    cfg["faces"]["vgg16_weights"] = None
    check_config(cfg, dry_run=True)


def test_vgg16_on_digits_is_refused_naming_the_key(tiny_config):
    tiny_config["wstar"]["perceptual"] = "vgg16"
    with pytest.raises(ConfigError, match="wstar.perceptual: vgg16 reads an ImageNet VGG16 weights file"):
        check_config(tiny_config)
    tiny_config["wstar"]["perceptual"] = "judge"  # the digits judge is the oracle
    check_config(tiny_config)
