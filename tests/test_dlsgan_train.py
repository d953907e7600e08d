"""DLSGAN training on a tiny problem (latentedit.dlsgan.train) and its checkpoint (latentedit.dlsgan.checkpoint)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import latentedit.dlsgan.train as train_mod
from latentedit.dlsgan.checkpoint import load_dlsgan, load_encoder, save_dlsgan, save_encoder
from latentedit.dlsgan.models import Discriminator, Generator
from latentedit.dlsgan.scale import VarianceTracker, dynamic_scale
from latentedit.dlsgan.train import DLSGANConfig, train_dlsgan
from latentedit.io.checkpoints import CheckpointError, save_checkpoint

CANVAS = 16
# Tiny: 2 epochs × 3 steps of batch 4 on 16×16 images; window 10 < 24 samples, so the ring buffer wraps.
TINY = DLSGANConfig(arch="dcgan", g_lr=None, g_beta1=None, z_dim=4, width=4, max_channels=8, batch_size=4, epochs=2,
                    steps_per_epoch=3, eval_samples=8, variance_mode="moving_average", variance_window=10, r1_every=2,
                    seed=0)


def _images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 1, CANVAS, CANVAS), dtype=np.uint8)


class RecordingTracker(VarianceTracker):
    """A VarianceTracker that remembers every batch of predictions it was fed."""

    instances: list = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fed: list[torch.Tensor] = []
        RecordingTracker.instances.append(self)

    def update(self, z_pred):
        self.fed.append(z_pred.detach().double().cpu().clone())
        return super().update(z_pred)


@pytest.fixture
def recorded(monkeypatch):
    RecordingTracker.instances = []
    monkeypatch.setattr(train_mod, "VarianceTracker", RecordingTracker)
    return RecordingTracker.instances


@pytest.fixture(scope="module")
def trained():
    return train_dlsgan(_images(20, 0), _images(10, 1), TINY, torch.device("cpu"))


def test_v_is_moving_average_of_last_window_predictions(recorded):
    result = train_dlsgan(_images(20, 0), _images(10, 1), TINY, torch.device("cpu"))
    (tracker,) = recorded
    assert len(tracker.fed) == TINY.epochs * TINY.steps_per_epoch  # one update per D step
    assert all(z.shape == (TINY.batch_size, TINY.z_dim) for z in tracker.fed)
    prior = torch.ones(TINY.variance_window, TINY.z_dim, dtype=torch.float64)  # the buffer starts at v = 1
    expected_v = (torch.cat([prior, *tracker.fed]) ** 2)[-TINY.variance_window:].mean(0)
    torch.testing.assert_close(result["v"], expected_v.float())
    assert not torch.allclose(result["v"], torch.ones(TINY.z_dim))  # v moved away from its initial 1
    torch.testing.assert_close(result["scale"], dynamic_scale(expected_v).float())
    assert float(result["scale"].norm()) == pytest.approx(math.sqrt(TINY.z_dim), rel=1e-5)


def test_scale_used_in_losses_follows_tracker(monkeypatch, recorded):
    """Step t computes s_t = dynamic_scale(v) once, from v after the first t updates (s ≡ 1 at step 0), and uses
    it in both the D step's and the G step's encoder loss (the module docstring's order: s; D; v ← track; G)."""
    used = []
    original = train_mod.encoder_loss

    def spy(z, z_pred, s):
        used.append((len(recorded[0].fed), s.detach().double().clone()))
        return original(z, z_pred, s)

    monkeypatch.setattr(train_mod, "encoder_loss", spy)
    train_dlsgan(_images(20, 0), _images(10, 1), TINY, torch.device("cpu"))
    (tracker,) = recorded
    n_steps = TINY.epochs * TINY.steps_per_epoch
    assert TINY.enc_in_g and len(used) == 2 * n_steps  # one D and one G encoder loss per step
    for t in range(n_steps):
        (n_d, s_d), (n_g, s_g) = used[2 * t], used[2 * t + 1]
        assert (n_d, n_g) == (t, t + 1)  # D loss before this step's v update, G loss after it
        prior = torch.ones(TINY.variance_window, TINY.z_dim, dtype=torch.float64)
        v = (torch.cat([prior, *tracker.fed[:t]]) ** 2)[-TINY.variance_window:].mean(0)
        torch.testing.assert_close(s_d, dynamic_scale(v))
        torch.testing.assert_close(s_g, s_d)


def test_ema_mode_follows_its_formula(recorded):
    cfg = DLSGANConfig(**{**TINY.__dict__, "variance_mode": "ema", "variance_beta": 0.5, "epochs": 1})
    result = train_dlsgan(_images(20, 0), _images(10, 1), cfg, torch.device("cpu"))
    (tracker,) = recorded
    v = torch.ones(cfg.z_dim, dtype=torch.float64)
    for z in tracker.fed:
        v = 0.5 * v + 0.5 * (z ** 2).mean(0)
    torch.testing.assert_close(result["v"], v.float())


def test_no_dls_keeps_unit_scale(recorded):
    cfg = DLSGANConfig(**{**TINY.__dict__, "dls": False, "epochs": 1})
    result = train_dlsgan(_images(20, 0), _images(10, 1), cfg, torch.device("cpu"))
    torch.testing.assert_close(result["scale"], torch.ones(cfg.z_dim))
    torch.testing.assert_close(result["v"], torch.ones(cfg.z_dim))
    assert recorded[0].fed == []  # the tracker is never fed
    assert result["history"][0]["entropy"] == pytest.approx(cfg.z_dim * 0.5 * math.log(2 * math.pi * math.e))


def test_dcgan_g_shares_ds_adam_settings_unless_set(monkeypatch):
    """g_lr / g_beta1 None: G's Adam takes lr and beta1 (the DCGAN world as before); set, G's own."""
    made = []

    class RecordingAdam(torch.optim.Adam):
        def __init__(self, params, **kwargs):
            made.append(kwargs)
            super().__init__(params, **kwargs)

    monkeypatch.setattr(torch.optim, "Adam", RecordingAdam)
    one_step = {**TINY.__dict__, "epochs": 1, "steps_per_epoch": 1}
    train_dlsgan(_images(20, 0), _images(10, 1), DLSGANConfig(**one_step), torch.device("cpu"))
    own = DLSGANConfig(**{**one_step, "g_lr": 1e-3, "g_beta1": 0.0})
    train_dlsgan(_images(20, 0), _images(10, 1), own, torch.device("cpu"))
    shared = {"lr": TINY.lr, "betas": (TINY.beta1, TINY.beta2)}
    assert made == [shared, shared, {"lr": 1e-3, "betas": (0.0, TINY.beta2)}, shared]
    assert TINY.arch == "dcgan" and TINY.g_lr is None and TINY.g_beta1 is None


def test_result_contents_and_determinism(trained):
    assert [row["epoch"] for row in trained["history"]] == [0, 1]
    assert trained["history"][-1]["step"] == TINY.epochs * TINY.steps_per_epoch
    for row in trained["history"]:
        for key in ("loss_d", "loss_g", "l_enc", "r1", "entropy", "eval_l_enc", "psnr_generated", "ssim_real"):
            assert math.isfinite(row[key]), key
    assert trained["options"] == TINY.__dict__
    assert isinstance(trained["generator"], Generator) and isinstance(trained["discriminator"], Discriminator)
    again = train_dlsgan(_images(20, 0), _images(10, 1), TINY, torch.device("cpu"))
    torch.testing.assert_close(again["v"], trained["v"])
    for k, w in trained["generator"].state_dict().items():
        torch.testing.assert_close(again["generator"].state_dict()[k], w)


class Interrupted(Exception):
    pass


@pytest.mark.parametrize("arch", ["dcgan", "stylegan2"])
def test_training_killed_after_an_epoch_resumes_to_the_uninterrupted_result(monkeypatch, tmp_path, arch):
    """Epoch 1 dies; the rerun continues after epoch 0 from the saved state and ends bit-equal to a run that never
    stopped (weights, EMA, the tracker's v, the scale and the history), including the stylegan2 G's frozen noise."""
    cfg = DLSGANConfig(**{**TINY.__dict__, "epochs": 3, "arch": arch, "g_channels": (8, 8, 8)})
    images, held_out = _images(20, 0), _images(10, 1)
    straight = train_dlsgan(images, held_out, cfg, torch.device("cpu"))
    state = tmp_path / "training_state.pt"
    real_evaluate, calls = train_mod.evaluate, []

    def dies_in_epoch_1(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise Interrupted
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(train_mod, "evaluate", dies_in_epoch_1)
    with pytest.raises(Interrupted):
        train_dlsgan(images, held_out, cfg, torch.device("cpu"), resume_path=state)
    assert state.exists()
    monkeypatch.setattr(train_mod, "evaluate", real_evaluate)
    resumed = train_dlsgan(images, held_out, cfg, torch.device("cpu"), resume_path=state)
    assert [row["epoch"] for row in resumed["history"]] == [0, 1, 2]
    for a, b in zip(straight["history"], resumed["history"]):
        assert {k: v for k, v in a.items() if k != "seconds"} == {k: v for k, v in b.items() if k != "seconds"}
    for part in ("generator", "discriminator"):
        for k, w in straight[part].state_dict().items():
            torch.testing.assert_close(resumed[part].state_dict()[k], w, rtol=0, atol=0, msg=f"{part} {k}")
    torch.testing.assert_close(resumed["v"], straight["v"], rtol=0, atol=0)
    torch.testing.assert_close(resumed["scale"], straight["scale"], rtol=0, atol=0)


def test_a_state_of_another_config_or_other_images_is_not_resumed(tmp_path, caplog):
    state = tmp_path / "training_state.pt"
    one_epoch = DLSGANConfig(**{**TINY.__dict__, "epochs": 1})
    train_dlsgan(_images(20, 0), _images(10, 1), one_epoch, torch.device("cpu"), resume_path=state)
    other = DLSGANConfig(**{**TINY.__dict__, "epochs": 1, "lambda_r1": 1.0})
    for cfg, images in ((other, _images(20, 0)), (one_epoch, _images(20, 5))):
        fresh = train_dlsgan(images, _images(10, 1), cfg, torch.device("cpu"))
        caplog.clear()
        with caplog.at_level("INFO", logger="latentedit.dlsgan.train"):
            result = train_dlsgan(images, _images(10, 1), cfg, torch.device("cpu"), resume_path=state)
        assert "ignoring" in caplog.text
        assert len(result["history"]) == 1  # trained its one epoch, not taken over from the stale state
        for k, w in fresh["generator"].state_dict().items():
            torch.testing.assert_close(result["generator"].state_dict()[k], w, rtol=0, atol=0)


def test_an_unreadable_state_fails_naming_the_file(tmp_path):
    state = tmp_path / "training_state.pt"
    state.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="training_state.pt"):
        train_dlsgan(_images(20, 0), _images(10, 1), TINY, torch.device("cpu"), resume_path=state)


def test_checkpoint_round_trip(trained, tmp_path):
    path = tmp_path / "dlsgan.pt"
    save_dlsgan(path, trained)
    g, d, s, ck = load_dlsgan(path)
    assert not g.training and not d.training
    torch.testing.assert_close(s, trained["scale"])
    torch.testing.assert_close(ck["v"], trained["v"])
    assert ck["options"] == trained["options"]
    assert ck["history"] == [{k: v for k, v in row.items() if k != "seconds"} for row in trained["history"]]
    for mine, theirs in ((g, trained["generator"]), (d, trained["discriminator"])):
        for k, w in theirs.state_dict().items():
            torch.testing.assert_close(mine.state_dict()[k], w)
    z = torch.randn(3, TINY.z_dim)
    with torch.no_grad():
        torch.testing.assert_close(g(z * s), trained["generator"].eval()(z * s))


def test_encoder_checkpoint_round_trip_and_kind_checks(trained, tmp_path):
    path = tmp_path / "encoder.pt"
    save_encoder(path, trained["discriminator"], base_hash="0123456789abcdef", history=[{"epoch": 0, "loss": 1.0}])
    d = load_encoder(path)
    x = torch.zeros(2, 1, CANVAS, CANVAS)
    with torch.no_grad():
        torch.testing.assert_close(d.encode(x), trained["discriminator"].eval().encode(x))
    with pytest.raises(CheckpointError, match="'dlsgan'"):
        load_dlsgan(path)  # an encoder is not a full DLSGAN checkpoint
    save_dlsgan(tmp_path / "full.pt", trained)
    with pytest.raises(CheckpointError, match="'dlsgan_encoder'"):
        load_encoder(tmp_path / "full.pt")


def test_checkpoint_with_wrong_weights_is_refused(trained, tmp_path):
    path = tmp_path / "dlsgan.pt"
    save_dlsgan(path, trained)
    ck = torch.load(path, weights_only=True)
    ck["generator"].pop("to_image.bias")
    save_checkpoint(path, ck)
    with pytest.raises(CheckpointError, match="to_image.bias"):
        load_dlsgan(path)


def test_models_shapes():
    g = Generator(z_dim=4, canvas=CANVAS, width=4, max_channels=8)
    d = Discriminator(z_dim=4, canvas=CANVAS, width=4, max_channels=8)
    x = g(torch.randn(5, 4))
    assert x.shape == (5, 1, CANVAS, CANVAS) and x.abs().max() <= 1
    adv, zp = d(x)
    assert adv.shape == (5,) and zp.shape == (5, 4)
    with pytest.raises(ValueError, match="4·2\\^k"):
        Generator(canvas=24)
