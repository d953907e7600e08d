"""The affine edit (latentedit.edits.affine) and the LW training loop (latentedit.edits.lw)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from latentedit.edits.affine import AffineEdit
from latentedit.edits.lw import LWConfig, epoch_batches, train_lw
from latentedit.edits.sinkhorn import sinkhorn_loss

# A fast configuration for tiny clouds: a learning rate large enough (Adam moves each parameter by about lr per
# step) for a shift of 3 in ~100 steps; no early stopping unless a test asks for it.
FAST = LWConfig(lr=0.05, max_epochs=1000, max_steps=150, patience=1000, seed=0)


def _blobs(n: int, d: int, shift: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    offset = torch.zeros(d)
    offset[0] = shift
    return torch.randn(n, d, generator=g), torch.randn(n, d, generator=g) + offset


# ---------------------------------------------------------------------------------------------------------------
# AffineEdit


def test_zero_init_is_identity_with_nonvanishing_gradient():
    edit = AffineEdit(4)
    x, y = _blobs(32, 4, 3.0, 0)
    assert torch.equal(edit(x), x)
    sinkhorn_loss(edit(x), y).backward()
    assert float(edit.weight.grad.abs().sum()) > 0 and float(edit.bias.grad.abs().sum()) > 0


def test_flat_forward_formula():
    torch.manual_seed(0)
    edit = AffineEdit(5, alpha=0.5)
    with torch.no_grad():
        edit.weight.normal_()
        edit.bias.normal_()
    z = torch.randn(7, 5)
    expected = z + 0.5 * (z @ edit.weight.T + edit.bias)
    torch.testing.assert_close(edit(z), expected)
    torch.testing.assert_close(edit(z, alpha=2.0), z + 2.0 * (z @ edit.weight.T + edit.bias))


def test_block_diagonal_leaves_unedited_layers_unchanged():
    torch.manual_seed(0)
    edit = AffineEdit(8, n_layers=5, layers=[3, 1])
    with torch.no_grad():
        edit.weight.normal_()
        edit.bias.normal_()
    z = torch.randn(6, 5, 8)
    out = edit(z)
    assert out.shape == z.shape
    for layer in (0, 2, 4):
        assert torch.equal(out[:, layer], z[:, layer])
    for i, layer in enumerate([1, 3]):  # layers are sorted: block i edits layer `layer`
        torch.testing.assert_close(out[:, layer], z[:, layer] + z[:, layer] @ edit.weight[i].T + edit.bias[i])


def test_block_diagonal_is_per_layer():
    """Each edited layer's output depends on that layer's input only."""
    torch.manual_seed(0)
    edit = AffineEdit(4, n_layers=3)
    with torch.no_grad():
        edit.weight.normal_()
    z = torch.randn(2, 3, 4)
    z2 = z.clone()
    z2[:, 0] += 1.0
    with torch.no_grad():
        diff = edit(z2) - edit(z)
    assert float(diff[:, 1:].abs().max()) == 0.0


def test_affine_edit_validation_and_spec():
    with pytest.raises(ValueError, match="W\\+"):
        AffineEdit(4, layers=[0])
    with pytest.raises(ValueError, match="subset"):
        AffineEdit(4, n_layers=3, layers=[3])
    with pytest.raises(ValueError, match="expected"):
        AffineEdit(4)(torch.zeros(2, 5))
    edit = AffineEdit(4, n_layers=3, layers=[2, 0], alpha=1.5)
    clone = AffineEdit.from_spec(edit.spec())
    assert clone.spec() == {"dim": 4, "n_layers": 3, "layers": [0, 2], "alpha": 1.5}
    clone.load_state_dict(edit.state_dict())


# ---------------------------------------------------------------------------------------------------------------
# Batching


@given(n_s=st.integers(1, 60), n_t=st.integers(1, 60), cap=st.integers(2, 25), frac=st.floats(0, 1))
def test_epoch_batches(n_s, n_t, cap, frac):
    size = min(n_s, n_t, cap)
    batches = epoch_batches(n_s, n_t, size, frac, torch.Generator().manual_seed(0))
    assert batches
    for s, t in batches:
        assert len(s) == len(t) and 1 <= len(s) <= size
        assert int(s.max()) < n_s and int(t.max()) < n_t
    assert all(len(s) == size for s, _ in batches[:-1])
    if len(batches) > 1:
        assert len(batches[-1][0]) >= frac * size
    larger, which = (n_s, 0) if n_s >= n_t else (n_t, 1)
    seen = torch.cat([b[which] for b in batches])
    assert len(torch.unique(seen)) == len(seen)  # the larger side is one permutation, no repeats
    dropped = larger - len(seen)
    assert 0 <= dropped < size and (dropped == 0 or dropped < frac * size)


# ---------------------------------------------------------------------------------------------------------------
# train_lw


def test_moves_source_mean_onto_target_mean():
    """Blobs N(0, I) → N((3, 0, 0, 0), I) in D = 4, 256 codes each, batches of 128 (2 steps per epoch)."""
    source, target = _blobs(256, 4, 3.0, seed=0)
    val_source, val_target = _blobs(256, 4, 3.0, seed=1)
    cfg = dataclasses.replace(FAST, batch_cap=128, max_steps=200)
    edit, history = train_lw(source, target, val_source, val_target, cfg)
    with torch.no_grad():
        moved, moved_val = edit(source), edit(val_source)
    assert float((moved.mean(0) - target.mean(0)).norm()) < 0.3
    # Held out: the two sample means differ from the population ones by ~0.25 (4 means of 256 codes in D = 4).
    assert float((moved_val.mean(0) - val_target.mean(0)).norm()) < 0.5
    assert history[0]["epoch"] == -1 and history[-1]["steps"] <= cfg.max_steps
    best = min(r["val_edit_loss"] for r in history)
    assert best < 0.1 * history[0]["val_edit_loss"]
    assert {"train_wasserstein", "val_wasserstein", "val_preservation", "blur", "best"} <= set(history[-1])


def test_early_stopping_when_nothing_to_learn():
    """Target = source: the identity (epoch −1) is already optimal, so no epoch improves and training stops after
    `patience` epochs, returning the identity edit."""
    source, _ = _blobs(128, 4, 0.0, seed=0)
    val_source, _ = _blobs(128, 4, 0.0, seed=1)
    cfg = dataclasses.replace(FAST, max_epochs=50, patience=2, min_delta=1e-4)
    edit, history = train_lw(source, source.clone(), val_source, val_source.clone(), cfg)
    epochs_run = len(history) - 1
    assert epochs_run == cfg.patience < cfg.max_epochs
    assert [r["best"] for r in history] == [True, False, False]
    assert not edit.weight.detach().any() and not edit.bias.detach().any()  # the identity edit of epoch −1


def test_max_steps_caps_training():
    source, target = _blobs(64, 2, 1.0, seed=0)
    cfg = dataclasses.replace(FAST, batch_cap=16, max_steps=10)  # 4 batches per epoch
    _, history = train_lw(source, target, source, target, cfg)
    assert history[-1]["steps"] == 10 and history[-1]["epoch"] == 2


def test_wplus_training_leaves_unedited_layers_unchanged():
    g = torch.Generator().manual_seed(0)
    source = torch.randn(64, 3, 4, generator=g)
    target = source + torch.tensor([0.0, 2.0, 0.0]).view(1, 3, 1)
    cfg = dataclasses.replace(FAST, max_steps=30, layers=(1,))
    edit, _ = train_lw(source, target, source, target, cfg)
    assert edit.layers == [1]
    with torch.no_grad():
        out = edit(source)
    assert torch.equal(out[:, 0], source[:, 0]) and torch.equal(out[:, 2], source[:, 2])
    assert float((out[:, 1] - source[:, 1]).abs().max()) > 0


def test_weights_select_what_is_transported():
    """Weight 0 on the far half of the target: the edit should aim at the near half."""
    g = torch.Generator().manual_seed(0)
    source = torch.randn(64, 2, generator=g)
    near = torch.randn(32, 2, generator=g) + torch.tensor([2.0, 0.0])
    far = torch.randn(32, 2, generator=g) + torch.tensor([8.0, 0.0])
    target = torch.cat([near, far])
    b = np.r_[np.ones(32), np.zeros(32)]
    edit, _ = train_lw(source, target, source, target, FAST, target_weights=b, val_target_weights=b)
    with torch.no_grad():
        assert float((edit(source).mean(0) - near.mean(0)).norm()) < 0.5


def test_preservation_term_keeps_preserved_attribute():
    """F(z) = z with attribute 0 edited and attribute 1 preserved: the target differs in both coordinates, and a
    strong preservation weight keeps the edit from moving coordinate 1."""
    g = torch.Generator().manual_seed(0)
    source = torch.randn(64, 2, generator=g)
    target = torch.randn(64, 2, generator=g) + torch.tensor([3.0, 3.0])
    gamma = torch.tensor([1.0, 0.0])  # γ_00 = 1 (the edited attribute), attribute 1 uncorrelated
    cfg = dataclasses.replace(FAST, max_steps=100, lambda_pres=20.0, pres_space="logit")
    edit, history = train_lw(source, target, source, target, cfg, classifier=lambda z: z, gamma_row=gamma,
                             edited_attribute=0)
    with torch.no_grad():
        shift = edit(source).mean(0) - source.mean(0)
    assert float(shift[0]) > 1.5 and abs(float(shift[1])) < 0.5 * float(shift[0])
    assert all(np.isfinite(r["val_preservation"]) for r in history)


@pytest.mark.parametrize("space, free", [("probability", True), ("logit", False)])
def test_probability_space_ignores_moves_that_keep_a_label(space, free):
    """Attribute 1 is confidently absent on both sides (logits −20 → −10): in probability space σ(F) barely moves,
    so L_pres lets the edit follow the target; on raw logits the same move costs ½·10² and is held back."""
    g = torch.Generator().manual_seed(0)
    source = torch.randn(64, 2, generator=g) + torch.tensor([0.0, -20.0])
    target = torch.randn(64, 2, generator=g) + torch.tensor([3.0, -10.0])
    cfg = dataclasses.replace(FAST, max_steps=150, lambda_pres=20.0, pres_space=space)
    edit, _ = train_lw(source, target, source, target, cfg, classifier=lambda z: z,
                       gamma_row=torch.tensor([1.0, 0.0]), edited_attribute=0)
    with torch.no_grad():
        shift = edit(source).mean(0) - source.mean(0)
    assert (float(shift[1]) > 5.0) == free, shift


def test_preservation_needs_a_classifier():
    source, target = _blobs(16, 2, 1.0, seed=0)
    with pytest.raises(ValueError, match="classifier"):
        train_lw(source, target, source, target, dataclasses.replace(FAST, lambda_pres=1.0))


def test_config_validation():
    with pytest.raises(ValueError, match="monitor"):
        LWConfig(monitor="val_accuracy")
    with pytest.raises(ValueError, match="scaling"):
        LWConfig(scaling=1.0)
    with pytest.raises(ValueError, match="pres_space"):
        LWConfig(pres_space="logits")
    assert LWConfig().to_dict()["batch_cap"] == 512


def test_warm_started_training_learns_the_same_edit_as_cold():
    """Warm-started solves (the default for small codes) and cold annealed ones train to the same shift."""
    x, y = _blobs(300, 8, 3.0, 0)
    vx, vy = _blobs(200, 8, 3.0, 1)
    cfg = dataclasses.replace(FAST, batch_cap=64, max_steps=120)
    edits = {mode: train_lw(x, y, vx, vy, dataclasses.replace(cfg, warm_start=mode))[0]
             for mode in ("always", "never")}
    with torch.no_grad():
        shifts = {mode: float((e(vx) - vx).mean(0)[0]) for mode, e in edits.items()}
        losses = {mode: float(sinkhorn_loss(e(vx), vy)) for mode, e in edits.items()}
    assert shifts["always"] == pytest.approx(3.0, abs=0.4) and shifts["always"] == pytest.approx(shifts["never"],
                                                                                              abs=0.15), shifts
    assert losses["always"] == pytest.approx(losses["never"], rel=0.2, abs=0.02), losses


def test_warm_start_auto_follows_the_code_size(monkeypatch):
    import latentedit.edits.lw as lw

    seen = []
    real = lw.sinkhorn_divergence

    def spy(*args, warm=None, **kwargs):
        seen.append(warm is not None)
        return real(*args, warm=warm, **kwargs)

    monkeypatch.setattr(lw, "sinkhorn_divergence", spy)
    x, y = _blobs(64, 4, 1.0, 0)
    cfg = dataclasses.replace(FAST, batch_cap=32, max_steps=4, max_epochs=2)
    train_lw(x, y, x, y, cfg)  # auto, 4-d codes: warm from the second step on
    assert any(seen)
    seen.clear()
    monkeypatch.setattr(lw, "WARM_START_MAX_DIM", 3)  # now 4-d codes count as large: every solve cold
    train_lw(x, y, x, y, cfg)
    assert seen and not any(seen)
    with pytest.raises(ValueError, match="warm_start"):
        LWConfig(warm_start="yes")
