"""DLSGAN on the narrow StyleGAN2 (latentedit.dlsgan.stylegan, issue 13): the generator's spaces and its zero
noise, training with arch stylegan2, and the checkpoint that the faces loaders read unchanged."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch

from latentedit.dlsgan.checkpoint import load_dlsgan, save_dlsgan
from latentedit.dlsgan.ship import ship
from latentedit.dlsgan.stylegan import DLSStyleGenerator
from latentedit.dlsgan.train import DLSGANConfig, build_models, train_dlsgan
from latentedit.faces.stylegan2 import Generator as StyleGAN2Generator
from latentedit.faces.stylegan2 import infer_generator_config, load_generator
from latentedit.io.checkpoints import CheckpointError, save_checkpoint
from latentedit.worlds import load_renderer

CANVAS = 16
TINY_G = {"z_dim": 8, "canvas": CANVAS, "channels": 1, "g_channels": (8, 8, 4), "n_mlp": 2}
# 2 epochs × 3 steps of batch 4 on 16×16 images; G at StyleGAN2's lr and β1, D at the shared ones.
TINY = DLSGANConfig(arch="stylegan2", z_dim=8, g_channels=(8, 8, 4), n_mlp=2, width=4, max_channels=8, batch_size=4,
                    epochs=2, steps_per_epoch=3, eval_samples=8, variance_mode="moving_average", variance_window=10,
                    r1_every=2, g_lr=2e-3, g_beta1=0.0, seed=0)


def _images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 1, CANVAS, CANVAS), dtype=np.uint8)


def _noise(gen: DLSStyleGenerator) -> dict[str, torch.Tensor]:
    """Every noise strength and stored noise map, by state_dict key."""
    return {k: v for k, v in gen.g.state_dict().items() if ".noise." in k or k.startswith("noises.")}


@pytest.fixture(scope="module")
def gen():
    torch.manual_seed(0)
    return DLSStyleGenerator(**TINY_G).eval()


@pytest.fixture(scope="module")
def trained():
    return train_dlsgan(_images(20, 0), _images(10, 1), TINY, torch.device("cpu"))


# ------------------------------------------------------------------------------------------------- generator
def test_generator_keeps_the_rosinality_layout_without_noise(gen):
    plain = StyleGAN2Generator(CANVAS, 8, 2, channels={4: 8, 8: 8, 16: 4}, out_channels=1)
    sd = gen.g.state_dict()
    assert [(k, v.shape) for k, v in sd.items()] == [(k, v.shape) for k, v in plain.state_dict().items()]
    assert infer_generator_config(sd) == {"size": CANVAS, "style_dim": 8, "n_mlp": 2, "channel_multiplier": 2,
                                          "channels": {4: 8, 8: 8, 16: 4}, "out_channels": 1}
    noise = _noise(gen)
    assert len(noise) == 2 * gen.g.num_layers  # a strength and a stored map per noise input
    assert all(not v.any() for v in noise.values())
    frozen = {k for k, p in gen.g.named_parameters() if not p.requires_grad}
    assert frozen == {k for k in noise if k.endswith("noise.weight")}
    assert (gen.n_latent, gen.style_dim, gen.z_dim) == (6, 8, 8)
    assert gen.spec == {"arch": "stylegan2", **TINY_G, "g_channels": [8, 8, 4]}


def test_render_agrees_across_spaces(gen):
    torch.manual_seed(1)
    z = torch.randn(3, 8)
    with torch.no_grad():
        w = gen.mapping(z)
        wplus = gen.broadcast(w)
        image = gen(z)
        assert w.shape == (3, 8) and wplus.shape == (3, 6, 8) and image.shape == (3, 1, CANVAS, CANVAS)
        assert torch.equal(gen.render(z, "z"), image)
        assert torch.equal(gen.render(w, "w"), image)
        assert torch.equal(gen.render(wplus, "wplus"), image)
        assert torch.equal(gen.synthesis(wplus), image)
        per_layer = wplus.clone()
        per_layer[:, 3:] = gen.mapping(torch.randn(3, 8))
        assert not torch.equal(gen.render(per_layer, "wplus"), image)  # each layer reads its own code
        # zero strengths: fresh random noise changes nothing
        assert torch.equal(gen.g.synthesis(wplus, noise="random"), image)
    with pytest.raises(ValueError, match="space must be"):
        gen.render(z, "s")
    with pytest.raises(ValueError, match=r"w codes must be \(B, 8\)"):
        gen.render(wplus, "w")
    with pytest.raises(ValueError, match="wplus must be"):
        gen.render(w, "wplus")


def test_mean_w_is_the_seeded_mean_of_the_mapped_prior(gen):
    s = torch.linspace(0.5, 1.5, 8)
    avg = gen.mean_w(s, "uniform", n=64, seed=3)
    z = ((torch.rand(64, 8, generator=torch.Generator().manual_seed(3)) * 2 - 1) * math.sqrt(3))
    with torch.no_grad():
        torch.testing.assert_close(avg, gen.mapping(z * s).mean(0))
    assert avg.shape == (8,) and torch.equal(avg, gen.mean_w(s, "uniform", n=64, seed=3))


def test_constructor_checks():
    with pytest.raises(ValueError, match="one width per resolution"):
        DLSStyleGenerator(**{**TINY_G, "g_channels": (8, 8)})
    with pytest.raises(ValueError, match="power of two"):
        DLSStyleGenerator(**{**TINY_G, "canvas": 24})
    other = StyleGAN2Generator(CANVAS, 8, 2, channels={4: 8, 8: 8, 16: 8}, out_channels=1)
    DLSStyleGenerator._zero_noise(other)
    with pytest.raises(ValueError, match="g_channels"):
        DLSStyleGenerator(**TINY_G, generator=other)
    noisy = StyleGAN2Generator(CANVAS, 8, 2, channels={4: 8, 8: 8, 16: 4}, out_channels=1)
    with pytest.raises(ValueError, match="noise"):
        DLSStyleGenerator(**TINY_G, generator=noisy)  # random noise maps, as a plain StyleGAN2 has them


# -------------------------------------------------------------------------------------------------- training
def test_config_arch_and_channels():
    assert DLSGANConfig().arch == "stylegan2"  # the default world's generator (checkpoints/digits_stylegan2)
    # a checkpoint written before arch, g_lr and g_beta1 existed (the shipped DCGAN's) trained a DCGAN on D's Adam
    old = DLSGANConfig.from_options({"z_dim": 64, "variance_mode": "ema"})
    assert (old.arch, old.g_lr, old.g_beta1, old.z_dim) == ("dcgan", None, None, 64)
    assert DLSGANConfig.from_options({"arch": "stylegan2", "g_lr": 2.0e-3}).g_lr == 2.0e-3
    assert DLSGANConfig(g_channels=[4, 4]).g_channels == (4, 4)  # YAML lists become the dataclass's tuple
    with pytest.raises(ValueError, match="arch"):
        DLSGANConfig(arch="stylegan3")
    g, d = build_models(TINY, CANVAS, 1)
    assert isinstance(g, DLSStyleGenerator) and g.spec["g_channels"] == [8, 8, 4]
    assert d.spec["width"] == TINY.width and d.spec["z_dim"] == TINY.z_dim
    with pytest.raises(ValueError, match="one width per resolution"):
        build_models(TINY, 32, 1)  # 3 widths do not cover 4 ... 32 px


def test_optimisers_skip_frozen_noise_and_use_gs_own_lr(monkeypatch):
    made = []

    class RecordingAdam(torch.optim.Adam):
        def __init__(self, params, **kwargs):
            params = list(params)
            made.append((params, kwargs))
            super().__init__(params, **kwargs)

    monkeypatch.setattr(torch.optim, "Adam", RecordingAdam)
    cfg = dataclasses.replace(TINY, epochs=1, steps_per_epoch=1)
    train_dlsgan(_images(20, 0), _images(10, 1), cfg, torch.device("cpu"))
    (g_params, g_kwargs), (d_params, d_kwargs) = made
    torch.manual_seed(cfg.seed)
    g, d = build_models(cfg, CANVAS, 1)
    trainable = [p for p in g.parameters() if p.requires_grad]
    assert len(g_params) == len(trainable) == len(list(g.parameters())) - g.g.num_layers
    assert all(p.requires_grad for p in g_params)
    assert g_kwargs == {"lr": 2e-3, "betas": (0.0, cfg.beta2)}
    assert len(d_params) == len(list(d.parameters())) and d_kwargs == {"lr": cfg.lr, "betas": (cfg.beta1, cfg.beta2)}


def test_training_moves_g_keeps_noise_zero_and_is_deterministic(trained):
    g = trained["generator"]
    assert isinstance(g, DLSStyleGenerator)
    assert all(not v.any() for v in _noise(g).values())  # the EMA of zero strengths is zero
    torch.manual_seed(TINY.seed)
    init, _ = build_models(TINY, CANVAS, 1)
    for key in ("style.1.weight", "convs.0.conv.weight", "to_rgbs.1.bias"):  # mapping (lr ×0.01) too
        assert not torch.equal(g.g.state_dict()[key], init.g.state_dict()[key]), key
    for row in trained["history"]:
        for key in ("loss_d", "loss_g", "l_enc", "eval_l_enc", "psnr_real"):
            assert math.isfinite(row[key]), key
    assert trained["options"] == TINY.__dict__
    again = train_dlsgan(_images(20, 0), _images(10, 1), TINY, torch.device("cpu"))
    torch.testing.assert_close(again["v"], trained["v"])
    for k, w in g.state_dict().items():
        torch.testing.assert_close(again["generator"].state_dict()[k], w, rtol=0, atol=0)


# ------------------------------------------------------------------------------------------------ checkpoint
def test_checkpoint_round_trip_and_faces_loaders(trained, tmp_path):
    path = tmp_path / "dlsgan.pt"
    save_dlsgan(path, trained)
    ck = torch.load(path, weights_only=True)
    assert "generator" not in ck and set(ck["g_ema"]) == set(trained["generator"].g.state_dict())
    s = trained["scale"]
    torch.testing.assert_close(ck["latent_avg"], trained["generator"].mean_w(s, TINY.distribution))

    g, d, s_loaded, ck = load_dlsgan(path)
    assert isinstance(g, DLSStyleGenerator) and not g.training and not d.training
    assert g.spec == trained["generator"].spec
    torch.testing.assert_close(s_loaded, s)
    for k, w in trained["generator"].state_dict().items():
        assert torch.equal(g.state_dict()[k], w), k
    z = torch.randn(3, TINY.z_dim)
    with torch.no_grad():
        wplus = g.broadcast(g.mapping(z * s))
        image = g.synthesis(wplus)
        assert torch.equal(g(z * s), trained["generator"].eval()(z * s))

        faces_g = load_generator(path)  # the rosinality loader reads the file as a {g_ema, latent_avg} checkpoint
        assert torch.equal(faces_g.synthesis(wplus), image)
        assert torch.equal(faces_g.latent_avg, ck["latent_avg"])
        renderer = load_renderer("faces", path, "cpu", {"render_size": CANVAS, "precision": "fp32"})
        assert torch.equal(renderer(wplus), image)


def test_checkpoint_refusals_name_the_file(trained, tmp_path):
    path = tmp_path / "dlsgan.pt"
    save_dlsgan(path, trained)
    good = torch.load(path, weights_only=True)

    def broken(name, change):
        ck = {k: (dict(v) if isinstance(v, dict) else v) for k, v in good.items()}
        ck["spec"] = {"generator": dict(good["spec"]["generator"]), "discriminator": good["spec"]["discriminator"]}
        change(ck)
        save_checkpoint(tmp_path / name, ck)
        return tmp_path / name

    cases = [
        ("nog.pt", lambda ck: ck.pop("g_ema"), r"lacks the key\(s\) \['g_ema'\]"),
        ("spec.pt", lambda ck: ck["spec"]["generator"].update(g_channels=[8, 8, 8]), "does not fit DLSStyleGenerator"),
        ("arch.pt", lambda ck: ck["spec"]["generator"].update(arch="stylegan3"), "unknown generator arch"),
        ("noise.pt", lambda ck: ck["g_ema"].update({"convs.1.noise.weight": torch.ones(1)}), "noise"),
        ("shape.pt", lambda ck: ck["g_ema"].update({"to_rgbs.1.bias": torch.zeros(1, 3, 1, 1)}), "to_rgbs.1.bias"),
    ]
    for name, change, message in cases:
        bad = broken(name, change)
        with pytest.raises(CheckpointError, match=message) as e:
            load_dlsgan(bad)
        assert str(bad) in str(e.value), name


def test_ship_records_the_arch(trained, tmp_path, repo_root):
    results = tmp_path / "results"
    (results / "dls").mkdir(parents=True)
    save_dlsgan(results / "dls" / "checkpoint.pt", trained)
    pd.DataFrame(trained["history"]).to_csv(results / "dls" / "history.csv", index=False)
    (results / "dls" / "curves.png").write_bytes(b"png")
    recipe = ship(results, tmp_path / "shipped", "snakemake …", repo_root / "config.yaml")
    assert recipe["arch"] == "stylegan2" and (tmp_path / "shipped" / "dlsgan.pt").exists()


# ------------------------------------------------------------------------------ a style narrower than d_z
def test_style_dim_narrower_than_z_dim_trains_saves_and_loads(tmp_path):
    """d_z 12 into an 8-wide style: only ``style.1`` changes shape, the DLS scale acts on the 12 inputs, and the
    checkpoint goes through load_dlsgan and the faces loader like a square one."""
    g = DLSStyleGenerator(**{**TINY_G, "z_dim": 12}, style_dim=8)
    assert (g.z_dim, g.style_dim, g.g.z_dim) == (12, 8, 12)
    assert g.spec["style_dim"] == 8 and g.spec["z_dim"] == 12
    shapes = {k: tuple(v.shape) for k, v in g.g.state_dict().items()}
    square = {k: tuple(v.shape) for k, v in DLSStyleGenerator(**TINY_G).g.state_dict().items()}
    assert shapes.keys() == square.keys()
    assert {k for k in shapes if shapes[k] != square[k]} == {"style.1.weight"} and shapes["style.1.weight"] == (8, 12)
    assert infer_generator_config(g.g.state_dict())["z_dim"] == 12
    with torch.no_grad():
        z = torch.randn(3, 12)
        w = g.mapping(z)
        assert w.shape == (3, 8) and torch.equal(g.render(z, "z"), g.render(w, "w"))
    with pytest.raises(ValueError, match=r"z codes must be \(B, 12\)"):
        g.render(w, "z")
    with pytest.raises(ValueError, match=r"w codes must be \(B, 8\)"):
        g.render(z, "w")

    cfg = dataclasses.replace(TINY, z_dim=12, style_dim=8, epochs=1, steps_per_epoch=2)
    result = train_dlsgan(_images(20, 0), _images(10, 1), cfg, torch.device("cpu"))
    assert result["scale"].shape == (12,) and result["options"]["style_dim"] == 8
    path = tmp_path / "dlsgan.pt"
    save_dlsgan(path, result)
    loaded, _, s, _ = load_dlsgan(path)
    assert loaded.spec == result["generator"].spec and s.shape == (12,)
    with torch.no_grad():
        wplus = loaded.broadcast(loaded.mapping(torch.randn(2, 12) * s))
        assert wplus.shape == (2, 6, 8)
        assert torch.equal(load_generator(path).synthesis(wplus), loaded.synthesis(wplus))
    assert DLSGANConfig.from_options(result["options"]).style_dim == 8


def test_style_dim_is_refused_for_the_dcgan():
    with pytest.raises(ValueError, match="style_dim"):
        DLSGANConfig(arch="dcgan", style_dim=8)
