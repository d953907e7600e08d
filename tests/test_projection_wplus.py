"""Inversion into W / W+ (latentedit.projection.wplus, .project): the zero-initialised offsets start at the GAN
encoder's broadcast W, codes of z, w and wplus render the same image, the per-image optimisation lowers every
image's error and does not depend on its batch, the W+ head trains through ``fit``, the encoder file round-trips,
and the projection stage reports every stage — on a tiny DLSGAN StyleGAN2 and the DLSGAN discriminator."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch

from latentedit.dlsgan.models import Discriminator, Generator
from latentedit.dlsgan.stylegan import DLSStyleGenerator
from latentedit.imaging import to_model_range, to_uint8
from latentedit.io.checkpoints import CheckpointError
from latentedit.oracles.digits_oracle import SlotOracle
from latentedit.projection.options import PROJECTION_ONLY_KEYS, RefineConfig
from latentedit.projection.project import (encode_images, inversion_quality, layer_spread, optimize_codes,
                                           project_images, projected_rows, projection_stages)
from latentedit.projection.refine import refine_projection_encoder
from latentedit.projection.wplus import (WPlusEncoder, encode_codes, load_code_encoder, refine_wplus,
                                         save_code_encoder)
from latentedit.projection.codes import DigitsRenderer, digits_renderer, style_codes

torch.set_num_threads(1)

Z_DIM, CANVAS = 8, 16


def tiny_generator(seed: int = 0) -> DLSStyleGenerator:
    """A 16-pixel DLSGAN StyleGAN2: d = D = 8, L = 6 W+ layers, one image channel."""
    torch.manual_seed(seed)
    return DLSStyleGenerator(Z_DIM, CANVAS, 1, (8, 8, 4), n_mlp=2).eval()


def tiny_discriminator(seed: int = 1) -> Discriminator:
    torch.manual_seed(seed)
    return Discriminator(Z_DIM, CANVAS, 1, width=4, max_channels=8, hidden=16).eval()


def scale() -> torch.Tensor:
    return torch.linspace(0.5, 1.5, Z_DIM)


def real_images(n: int, seed: int = 2) -> np.ndarray:
    """uint8 (n, 1, 16, 16): the generator's own images of random codes (so the inversion has an exact answer)."""
    g = tiny_generator()
    z = torch.randn(n, Z_DIM, generator=torch.Generator().manual_seed(seed)) * scale()
    with torch.no_grad():
        return to_uint8(g(z).clamp(-1, 1))


@pytest.mark.parametrize("space", ["w", "wplus"])
def test_zero_initialised_offsets_give_the_gan_encoders_codes_exactly(space):
    g, d, s = tiny_generator(), tiny_discriminator(), scale()
    e = WPlusEncoder(d, space, g.n_latent, g.style_dim)
    x = to_model_range(real_images(5))
    with torch.no_grad():
        codes = e(x, g, s)
        base = style_codes(g, d.encode(x) * s, space)
    assert codes.shape == ((5, g.n_latent, Z_DIM) if space == "wplus" else (5, Z_DIM))
    torch.testing.assert_close(codes, base, rtol=0, atol=0)
    torch.testing.assert_close(encode_codes(d, x, s, space, g), base, rtol=0, atol=0)
    if space == "wplus":  # every layer holds the same w
        torch.testing.assert_close(codes, codes[:, :1].expand_as(codes), rtol=0, atol=0)
    with torch.no_grad():
        e.offsets.bias.fill_(0.5)
        assert not torch.equal(e(x, g, s), base)


def test_codes_of_every_space_render_the_same_image():
    g, d, s = tiny_generator(), tiny_discriminator(), scale()
    x = to_model_range(real_images(4))
    with torch.no_grad():
        images = {space: g.render(encode_codes(d, x, s, space, g), space) for space in ("z", "w", "wplus")}
        renderers = {space: digits_renderer(g, space)(encode_codes(d, x, s, space, g)) for space in images}
    torch.testing.assert_close(images["w"], images["z"])
    torch.testing.assert_close(images["wplus"], images["z"])
    for space in images:
        torch.testing.assert_close(renderers[space], images[space])
    assert isinstance(digits_renderer(g, "w"), DigitsRenderer)


def test_a_dcgan_renders_z_codes_only_and_says_which_key_to_change():
    g = Generator(z_dim=Z_DIM, canvas=CANVAS, width=4, max_channels=8)
    assert digits_renderer(g, "z") is g  # the DCGAN itself, as before
    for space in ("w", "wplus"):
        with pytest.raises(ValueError, match="projection.space is .*reads z codes only"):
            digits_renderer(g, space)
    with pytest.raises(ValueError, match="unknown latent space 'w_plus'"):
        digits_renderer(tiny_generator(), "w_plus")
    cfg = RefineConfig(space="wplus", epochs=0)
    with pytest.raises(ValueError, match="projection.space is wplus"):
        refine_projection_encoder(g, tiny_discriminator(), scale(), "normal", real_images(4), real_images(4, 3), cfg,
                                  torch.device("cpu"))


def _pixel_errors(g, codes, space, images) -> np.ndarray:
    with torch.no_grad():
        rec = g.render(torch.as_tensor(codes), space)
    return (rec - to_model_range(images)).pow(2).flatten(1).mean(1).numpy()


@pytest.mark.parametrize("space", ["z", "wplus"])
def test_optimisation_lowers_every_images_error_and_does_not_depend_on_its_batch(space):
    g, d, s = tiny_generator(), tiny_discriminator(), scale()
    images = real_images(7)
    start = encode_images(d, s, images, "cpu", space=space, generator=g)
    renderer = digits_renderer(g, space)
    one = optimize_codes(renderer, start, images, "cpu", steps=10, lr=0.05, batch_size=1)
    seven = optimize_codes(renderer, start, images, "cpu", steps=10, lr=0.05, batch_size=7)
    three = optimize_codes(renderer, start, images, "cpu", steps=10, lr=0.05, batch_size=3)
    np.testing.assert_allclose(seven, one, atol=1e-5, rtol=0)
    np.testing.assert_allclose(three, one, atol=1e-5, rtol=0)
    before, after = _pixel_errors(g, start, space, images), _pixel_errors(g, seven, space, images)
    assert np.all(after <= before + 1e-7) and after.mean() < 0.7 * before.mean()
    assert seven.shape == start.shape and seven.dtype == np.float32
    np.testing.assert_array_equal(optimize_codes(renderer, start, images, "cpu", 0, 0.05, 3), start)
    wild = optimize_codes(renderer, start, images, "cpu", steps=4, lr=5.0, batch_size=7)  # Adam overshoots
    assert np.all(_pixel_errors(g, wild, space, images) <= before + 1e-7)  # the best iterate of each image is kept
    flags = [p.requires_grad for p in g.parameters()]
    optimize_codes(renderer, start[:2], images[:2], "cpu", 1, 0.05, 2)
    assert [p.requires_grad for p in g.parameters()] == flags  # the generator's own flags are restored


def test_layer_spread_pulls_the_layers_of_wplus_codes_together():
    g, d, s = tiny_generator(), tiny_discriminator(), scale()
    images = real_images(5)
    start = encode_images(d, s, images, "cpu", space="wplus", generator=g)
    renderer = digits_renderer(g, "wplus")
    free = optimize_codes(renderer, start, images, "cpu", steps=15, lr=0.05, batch_size=5)
    assert np.array_equal(free, optimize_codes(renderer, start, images, "cpu", steps=15, lr=0.05, batch_size=5,
                                               layer_spread_weight=0.0))
    tied = optimize_codes(renderer, start, images, "cpu", steps=15, lr=0.05, batch_size=5, layer_spread_weight=10.0)
    spread = {name: layer_spread(torch.as_tensor(c)).numpy() for name, c in (("free", free), ("tied", tied))}
    assert np.all(layer_spread(torch.as_tensor(start)).numpy() < 1e-10)  # the encoder's broadcast W: no spread
    assert spread["free"].min() > 0 and np.all(spread["tied"] < 0.5 * spread["free"])
    assert np.all(_pixel_errors(g, tied, "wplus", images) <= _pixel_errors(g, start, "wplus", images) + 1e-7)
    np.testing.assert_array_equal(layer_spread(torch.ones(3, 4)).numpy(), np.zeros(3))  # flat codes: no layers
    cfg = RefineConfig(optimize_layer_spread=0.5)
    assert cfg.optimization()["optimize_layer_spread"] == 0.5 and "optimize_layer_spread" not in cfg.encoder_options()
    with pytest.raises(ValueError, match="optimize_layer_spread"):
        RefineConfig(optimize_layer_spread=-1.0)


def test_project_images_encodes_then_optimises():
    g, d, s = tiny_generator(), tiny_discriminator(), scale()
    images = real_images(6)
    plain = project_images(d, s, images, "cpu", space="wplus", generator=g)
    np.testing.assert_array_equal(plain, encode_images(d, s, images, "cpu", space="wplus", generator=g))
    optimised = project_images(d, s, images, "cpu", batch_size=4, space="wplus", generator=g, optimize_steps=3,
                               optimize_lr=0.05, optimize_batch_size=5)
    np.testing.assert_allclose(optimised, optimize_codes(digits_renderer(g, "wplus"), plain, images, "cpu", 3, 0.05, 2),
                               atol=1e-5, rtol=0)
    # Adam's β1 reaches the steps: a first step is the same for every β1 (bias-corrected m = g), later ones are not
    renderer, plain4 = digits_renderer(g, "wplus"), plain[:4]
    np.testing.assert_allclose(optimize_codes(renderer, plain4, images[:4], "cpu", 1, 0.05, 4, beta1=0.5),
                               optimize_codes(renderer, plain4, images[:4], "cpu", 1, 0.05, 4), atol=1e-6, rtol=0)
    low = project_images(d, s, images, "cpu", space="wplus", generator=g, optimize_steps=3, optimize_lr=0.05,
                         optimize_beta1=0.0, optimize_batch_size=5)
    np.testing.assert_allclose(low, optimize_codes(renderer, plain, images, "cpu", 3, 0.05, 2, beta1=0.0), atol=1e-5,
                               rtol=0)
    assert np.abs(low - optimised).max() > 1e-3
    with pytest.raises(ValueError, match="needs the generator"):
        project_images(d, s, images, "cpu", space="z", optimize_steps=1)
    dcgan = Generator(z_dim=Z_DIM, canvas=CANVAS, width=4, max_channels=8)
    z = project_images(d, s, images, "cpu")  # the DCGAN world's codes: E(x)∘s, as before
    with torch.no_grad():
        np.testing.assert_array_equal(z, (d.encode(to_model_range(images)) * s).numpy())
    assert project_images(d, s, images, "cpu", generator=dcgan, optimize_steps=2).shape == z.shape


@pytest.mark.parametrize("space", ["w", "wplus"])
def test_the_wplus_head_trains_through_fit_and_keeps_its_best_epoch(space):
    g, d, s = tiny_generator(), tiny_discriminator(), scale()
    cfg = RefineConfig(space=space, epochs=2, batch_size=16, lr=1.0e-3, lambda_latent=1.0, lambda_w_latent=1.0)
    e, history = refine_wplus(g, d, s, "uniform", real_images(48), real_images(16, 5), cfg, torch.device("cpu"))
    assert isinstance(e, WPlusEncoder) and e.space == space and not e.training
    assert [row["epoch"] for row in history] == [-1, 0, 1]
    assert {"train_pixel", "train_latent", "train_w_latent", "val_psnr", "val_ssim", "best"} <= set(history[0])
    assert np.isnan(history[0]["train_pixel"]) and all(np.isfinite(r["train_w_latent"]) for r in history[1:])
    best = [r for r in history if r["best"]][-1]
    assert best["val_psnr"] == max(r["val_psnr"] for r in history)
    assert not any(p.requires_grad for p in g.parameters())  # the generator stayed frozen
    for a, b in zip(d.parameters(), tiny_discriminator().parameters(), strict=True):  # d itself is not trained (a copy is)
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="projection.space is 'z'"):
        refine_wplus(g, d, s, "normal", real_images(4), real_images(4), RefineConfig(space="z"), torch.device("cpu"))


def test_no_refinement_keeps_the_gan_encoders_codes():
    g, d, s = tiny_generator(), tiny_discriminator(), scale()
    e, history = refine_wplus(g, d, s, "normal", real_images(8), real_images(8, 4),
                              RefineConfig(space="wplus", refine=False), torch.device("cpu"))
    assert [row["epoch"] for row in history] == [-1]
    x = to_model_range(real_images(3))
    with torch.no_grad():
        torch.testing.assert_close(e(x, g, s), style_codes(g, d.encode(x) * s, "wplus"), rtol=0, atol=0)


def test_the_encoder_file_round_trips_both_kinds_and_names_a_bad_file(tmp_path):
    g, d, s = tiny_generator(), tiny_discriminator(), scale()
    e = WPlusEncoder(tiny_discriminator(), "wplus", g.n_latent, g.style_dim)
    with torch.no_grad():
        e.offsets.weight.normal_()
    save_code_encoder(tmp_path / "wplus.pt", e, "0123", [{"epoch": 0, "val_psnr": 20.0, "seconds": 1.0}])
    back, space = load_code_encoder(tmp_path / "wplus.pt")
    assert space == "wplus" and isinstance(back, WPlusEncoder) and back.spec == e.spec
    x = to_model_range(real_images(3))
    with torch.no_grad():
        torch.testing.assert_close(back(x, g, s), e(x, g, s), rtol=0, atol=0)
    save_code_encoder(tmp_path / "z.pt", d, "0123", [])
    back, space = load_code_encoder(tmp_path / "z.pt")
    assert space == "z" and isinstance(back, Discriminator)

    ck = torch.load(tmp_path / "wplus.pt", weights_only=True)
    assert "seconds" not in ck["history"][0]  # the file's bytes do not depend on the wall clock
    for name, edit, message in [
        ("kind", lambda c: c.update(kind="edit"), "expected a 'dlsgan_encoder' or 'dlsgan_wplus_encoder'"),
        ("offsets", lambda c: c.pop("offsets"), "lacks the key(s) ['offsets']"),
        ("shape", lambda c: c["offsets"].update(weight=torch.zeros(3, 3)), "shape mismatches"),
        ("space", lambda c: c["spec"].update(space="z"), "does not fit WPlusEncoder"),
    ]:
        bad = {**ck, "spec": dict(ck["spec"]), "offsets": dict(ck["offsets"])}
        edit(bad)
        path = tmp_path / f"bad_{name}.pt"
        torch.save(bad, path)
        with pytest.raises(CheckpointError, match=re.escape(message)) as err:
            load_code_encoder(path)
        assert str(path) in str(err.value)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_the_encoder_loader_refuses_a_pickle_that_executes_code(tmp_path):
    path, marker = tmp_path / "evil.pt", tmp_path / "pwned"
    torch.save({"kind": "dlsgan_wplus_encoder", "payload": _Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="cannot load checkpoint safely") as e:
        load_code_encoder(path)
    assert str(path) in str(e.value) and not marker.exists()


@pytest.mark.parametrize("optimize_steps", [0, 3])
def test_the_projection_stage_reports_every_stage(optimize_steps):
    g, d, s = tiny_generator(), tiny_discriminator(), scale()
    e = WPlusEncoder(tiny_discriminator(), "wplus", g.n_latent, g.style_dim)
    with torch.no_grad():
        e.offsets.weight.normal_(std=0.01)
    images = real_images(10)
    test = np.array([False] * 6 + [True] * 4)
    oracle = SlotOracle(1, CANVAS, 2, 3, width=4, feature_dim=8).eval()
    codes, quality, recs = projection_stages(g, d, e, s, images, test, oracle, "cpu", "wplus",
                                             optimize_steps=optimize_steps, optimize_lr=0.05, optimize_batch_size=4)
    stages = ["before_refinement", "after_refinement"] + (["optimized"] if optimize_steps else [])
    assert list(recs) == stages and codes.shape == (10, g.n_latent, Z_DIM)
    assert quality["space"] == "wplus" and quality["stored_stage"] == stages[-1] and quality["n_test_images"] == 4
    for stage in stages:
        assert set(quality[stage]) == {"psnr", "ssim", "count_agreement", "presence_agreement", "presence_all_agree"}
        assert recs[stage].shape == (4, 1, CANVAS, CANVAS)
    renderer = digits_renderer(g, "wplus")
    np.testing.assert_allclose(quality[stages[-1]]["psnr"],
                               inversion_quality(renderer, codes[test], images[test], oracle, "cpu")[0]["psnr"])
    gan = encode_images(d, s, images[test], "cpu", space="wplus", generator=g)
    assert quality["before_refinement"] == inversion_quality(renderer, gan, images[test], oracle, "cpu")[0]
    # what the command line does to a new image: the same codes as the store
    again = project_images(e, s, images, "cpu", batch_size=3, space="wplus", generator=g,
                           optimize_steps=optimize_steps, optimize_lr=0.05, optimize_batch_size=7)
    np.testing.assert_allclose(again, codes, atol=1e-5, rtol=0)
    if optimize_steps:
        assert quality["optimized"]["psnr"] >= quality["after_refinement"]["psnr"]


def test_load_renderer_takes_the_stores_space_and_never_guesses_it(tmp_path):
    from latentedit.dlsgan.checkpoint import save_dlsgan
    from latentedit.worlds import load_renderer

    g, d, s = tiny_generator(), tiny_discriminator(), scale()
    save_dlsgan(tmp_path / "sg2.pt", {"generator": g, "discriminator": d, "scale": s, "v": torch.ones(Z_DIM),
                                      "options": {"distribution": "normal"}, "history": []})
    with pytest.raises(ValueError, match="sg2.pt renders z, w or wplus codes; give the latent store's space"):
        load_renderer("digits", tmp_path / "sg2.pt", "cpu")
    x = to_model_range(real_images(3))
    with torch.no_grad():
        expected = g(d.encode(x) * s)
        for space in ("z", "w", "wplus"):
            renderer = load_renderer("digits", tmp_path / "sg2.pt", "cpu", {"latent_space": space})
            torch.testing.assert_close(renderer(encode_codes(d, x, s, space, g)), expected)
    dcgan = Generator(z_dim=Z_DIM, canvas=CANVAS, width=4, max_channels=8)
    save_dlsgan(tmp_path / "dcgan.pt", {"generator": dcgan, "discriminator": d, "scale": s, "v": torch.ones(Z_DIM),
                                        "options": {}, "history": []})
    assert isinstance(load_renderer("digits", tmp_path / "dcgan.pt", "cpu"), Generator)  # z, its only space
    assert isinstance(load_renderer("digits", tmp_path / "dcgan.pt", "cpu", {"latent_space": "z"}), Generator)
    with pytest.raises(ValueError, match="dcgan.pt \\(Generator\\) has no mapping network"):
        load_renderer("digits", tmp_path / "dcgan.pt", "cpu", {"latent_space": "w"})


def test_projected_rows_keep_val_and_test_and_a_seeded_train_subset():
    split = np.array(["train"] * 50 + ["val"] * 7 + ["test"] * 9 + ["train"] * 10)
    every = projected_rows(split, None, seed=0)
    assert every.all() and projected_rows(split, 60, seed=0).all() and projected_rows(split, 999, seed=0).all()
    rows = projected_rows(split, 12, seed=0)
    assert (rows[split != "train"]).all() and rows[split == "train"].sum() == 12
    assert np.array_equal(rows, projected_rows(split, 12, seed=0))  # seeded
    assert not np.array_equal(rows, projected_rows(split, 12, seed=1))
    assert rows[50:].sum() > 16  # drawn from the whole train split, not its first rows only


def test_max_train_images_is_checked_and_does_not_retrain_the_encoder():
    with pytest.raises(ValueError, match="max_train_images"):
        RefineConfig(max_train_images=0)
    with pytest.raises(ValueError, match="optimize_beta1"):
        RefineConfig(optimize_beta1=1.0)
    assert RefineConfig(optimize_beta1=0.5).optimization()["optimize_beta1"] == 0.5
    assert "optimize_beta1" in PROJECTION_ONLY_KEYS
    assert set(PROJECTION_ONLY_KEYS) <= {f.name for f in dataclasses.fields(RefineConfig)}
    assert "max_train_images" in PROJECTION_ONLY_KEYS and "space" not in PROJECTION_ONLY_KEYS


@pytest.mark.slow  # torch.compile of the tiny generator: ≈ 20 s
def test_compiled_optimisation_gives_the_eager_codes_and_pads_the_last_batch(monkeypatch):
    import latentedit.projection.project as project

    monkeypatch.setattr(project, "COMPILE_MIN_IMAGE_STEPS", 0)  # 7 codes × 5 steps compile too
    g, d, s = tiny_generator(), tiny_discriminator(), scale()
    images = real_images(7)
    start = encode_images(d, s, images, "cpu", space="wplus", generator=g)
    renderer = digits_renderer(g, "wplus")
    eager = optimize_codes(renderer, start, images, "cpu", steps=5, lr=0.05, batch_size=3)
    compiled = optimize_codes(renderer, start, images, "cpu", steps=5, lr=0.05, batch_size=3, compile=True)
    assert compiled.shape == eager.shape  # 7 codes in batches of 3: the last batch of 1 was padded to 3
    np.testing.assert_allclose(compiled, eager, atol=1e-4, rtol=0)
    assert not np.allclose(compiled, start, atol=1e-3)  # the codes did move


def test_a_failed_compile_falls_back_to_the_eager_renderer_and_a_small_run_does_not_compile(monkeypatch, caplog):
    import latentedit.projection.project as project

    def broken(module, **kwargs):
        def call(*args):
            raise RuntimeError("no C++ compiler here")
        return call

    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setattr(project, "COMPILE_MIN_IMAGE_STEPS", 12)  # 4 codes × 3 steps: just enough
    g, d, s = tiny_generator(), tiny_discriminator(), scale()
    images = real_images(4)
    start = encode_images(d, s, images, "cpu", space="wplus", generator=g)
    renderer = digits_renderer(g, "wplus")
    with caplog.at_level("WARNING"):
        codes = optimize_codes(renderer, start, images, "cpu", steps=3, lr=0.05, batch_size=3, compile=True)
    assert "torch.compile of the renderer failed (RuntimeError: no C++ compiler here)" in caplog.text
    np.testing.assert_allclose(codes, optimize_codes(renderer, start, images, "cpu", 3, 0.05, 3), atol=1e-6, rtol=0)
    caplog.clear()
    with caplog.at_level("INFO"):
        optimize_codes(renderer, start, images, "cpu", steps=2, lr=0.05, batch_size=3, compile=True)  # 8 < 12
    assert "too few to repay compiling" in caplog.text and "failed" not in caplog.text


def test_a_style_narrower_than_d_z_inverts_into_its_own_wplus():
    """d_z 12 into an 8-wide style (``dlsgan.train.style_dim``): the encoder predicts 12-d z', the head and the
    per-image steps work in the 8-wide W+."""
    torch.manual_seed(0)
    g = DLSStyleGenerator(12, CANVAS, 1, (8, 8, 4), n_mlp=2, style_dim=8).eval()
    torch.manual_seed(1)
    d = Discriminator(12, CANVAS, 1, width=4, max_channels=8, hidden=16).eval()
    s = torch.linspace(0.5, 1.5, 12)
    cfg = RefineConfig(space="wplus", epochs=1, batch_size=16, lr=1.0e-3, lambda_latent=1.0, lambda_w_latent=1.0)
    e, history = refine_wplus(g, d, s, "normal", real_images(32), real_images(8, 5), cfg, torch.device("cpu"))
    assert all(np.isfinite(r["val_psnr"]) for r in history)
    images = real_images(6, 7)
    codes = project_images(e, s, images, "cpu", batch_size=3, space="wplus", generator=g, optimize_steps=2)
    assert codes.shape == (6, g.n_latent, 8)
