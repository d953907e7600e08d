"""The affine edit (latentedit.edits.affine) and the LW training loop (latentedit.edits.lw)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from latentedit.edits.affine import AffineEdit
from latentedit.edits.lw import (LWConfig, PotentialTable, TargetCosts, WarmStarts, epoch_batches,
                                 nearest_target_distance, per_code_preservation, train_lw)
from latentedit.edits.sinkhorn import half_squared_distances, sinkhorn_divergence, sinkhorn_loss

# A fast configuration for tiny clouds: a learning rate large enough (Adam moves each parameter by about lr per
# step) for a shift of 3 in ~100 steps; no early stopping unless a test asks for it.
FAST = LWConfig(lr=0.05, max_epochs=1000, max_steps=150, patience=1000, eval_every_steps=0, seed=0,  # every epoch
               target_reach=None, pres_mode="distribution")  # the paper's LW (balanced S_ε: its warm starts)


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


def test_coupled_layers_are_one_map_on_the_flattened_edited_layers():
    torch.manual_seed(0)
    edit = AffineEdit(4, n_layers=4, layers=[3, 1], couple_layers=True)
    assert edit.weight.shape == (8, 8) and edit.bias.shape == (8,)
    z = torch.randn(6, 4, 4)
    assert torch.equal(edit(z), z)  # zero-initialised: the identity
    with torch.no_grad():
        edit.weight.normal_()
        edit.bias.normal_()
        out = edit(z, alpha=0.5)
    for layer in (0, 2):
        assert torch.equal(out[:, layer], z[:, layer])
    z_e = z[:, [1, 3]].reshape(6, 8)  # the edited layers in sorted order, layer-major
    torch.testing.assert_close(out[:, [1, 3]].reshape(6, 8), z_e + 0.5 * (z_e @ edit.weight.T + edit.bias))
    z2 = z.clone()
    z2[:, 1] += 1.0  # unlike the block-diagonal map, a change in layer 1 moves layer 3's step too
    with torch.no_grad():
        assert float((edit(z2)[:, 3] - edit(z)[:, 3]).abs().max()) > 0


def test_coupled_layers_with_a_block_diagonal_weight_is_the_per_layer_map():
    torch.manual_seed(0)
    per_layer = AffineEdit(4, n_layers=3, layers=[0, 2])
    coupled = AffineEdit(4, n_layers=3, layers=[0, 2], couple_layers=True)
    with torch.no_grad():
        per_layer.weight.normal_()
        per_layer.bias.normal_()
        coupled.weight.copy_(torch.block_diag(*per_layer.weight))
        coupled.bias.copy_(per_layer.bias.flatten())
        z = torch.randn(5, 3, 4)
        torch.testing.assert_close(coupled(z), per_layer(z))


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
    with pytest.raises(ValueError, match="W\\+"):
        AffineEdit(4, couple_layers=True)
    coupled = AffineEdit(4, n_layers=3, layers=[2, 0], couple_layers=True)
    clone = AffineEdit.from_spec(coupled.spec())
    assert clone.spec() == {**edit.spec(), "alpha": 1.0, "couple_layers": True}
    clone.load_state_dict(coupled.state_dict())


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
    `patience` epochs — or `patience_steps` steps, here one per epoch — returning the identity edit."""
    source, _ = _blobs(128, 4, 0.0, seed=0)
    val_source, _ = _blobs(128, 4, 0.0, seed=1)
    for patience_steps, epochs in ((0, 2), (4, 4)):
        cfg = dataclasses.replace(FAST, max_epochs=50, patience=2, patience_steps=patience_steps, min_delta=1e-4,
                                  eval_every_steps=0)
        edit, history = train_lw(source, source.clone(), val_source, val_source.clone(), cfg)
        assert len(history) - 1 == epochs < cfg.max_epochs
        assert [r["best"] for r in history] == [True] + [False] * epochs
        assert not edit.weight.detach().any() and not edit.bias.detach().any()  # the identity edit of epoch −1
    # validating every 3 steps: two evaluations without improvement are 6 one-step epochs
    cfg = dataclasses.replace(FAST, max_epochs=50, patience=2, patience_steps=0, min_delta=1e-4, eval_every_steps=3)
    _, history = train_lw(source, source.clone(), val_source, val_source.clone(), cfg)
    assert [(r["epoch"], r["steps"]) for r in history] == [(-1, 0), (2, 3), (5, 6)]


def test_relative_min_delta_stops_on_a_plateau_the_absolute_one_waits_out():
    """The blob shift converges within ≈ 90 one-step epochs; after that only Sinkhorn-solver noise and tiny gains
    remain. An absolute 1e-4 counts those as improvements (226 rows), a 5 % relative threshold does not (155)."""
    source, target = _blobs(128, 4, 3.0, seed=0)
    val_source, val_target = _blobs(128, 4, 3.0, seed=1)
    runs = {}
    for rel in (0.0, 0.05):
        cfg = dataclasses.replace(FAST, batch_cap=128, max_steps=300, patience=3, min_delta=1e-4, min_rel_delta=rel)
        runs[rel] = train_lw(source, target, val_source, val_target, cfg)[1]
    assert len(runs[0.05]) < len(runs[0.0])
    best = [r["val_edit_loss"] for r in runs[0.05] if r["best"]]
    assert all(b < 0.95 * a for a, b in zip(best, best[1:]))  # every new best beat the last by 5 %


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


def test_wplus_training_with_coupled_layers_learns_a_cross_layer_edit():
    """The target's layer 1 is shifted by twice the code's layer 0, a correlation between layers that only a map
    coupling them can create: per layer, LW matches each layer's spread but not the correlation; coupled, the clouds
    meet (4.05 → 1.69 against → 0.001)."""
    g = torch.Generator().manual_seed(0)
    source = torch.randn(128, 2, 3, generator=g)
    target = source.clone()
    target[:, 1] += 2.0 * source[:, 0]
    distance = {}
    for couple in (False, True):
        edit, _ = train_lw(source, target, source, target, dataclasses.replace(FAST, couple_layers=couple))
        assert edit.couple_layers == couple
        with torch.no_grad():
            distance[couple] = float(sinkhorn_loss(edit(source).flatten(1), target.flatten(1)))
    start = float(sinkhorn_loss(source.flatten(1), target.flatten(1)))
    assert distance[True] < 0.05 * distance[False] and distance[False] > 0.25 * start, (start, distance)


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


def test_per_code_preservation_by_hand():
    f_src = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    f_edit = torch.tensor([[0.5, 0.6], [0.2, 0.4]])
    w = torch.tensor([1.0, 0.5])
    # Δ = F(z) − F(z') = [[0.4, −0.5], [0, 0.4]]; ½ Σ_l w_l Δ² per code: [0.08 + 0.0625, 0.04]
    assert float(per_code_preservation(f_edit, f_src, w, None, "per_code")) == pytest.approx((0.1425 + 0.04) / 2)
    # only falls (Δ > 0) count: [0.08, 0.04]; weights a = (3, 1) / 4
    a = torch.tensor([0.75, 0.25])
    assert float(per_code_preservation(f_edit, f_src, w, a, "per_code_falls")) == pytest.approx(0.75 * 0.08 + 0.25 * 0.04)


def test_per_code_falls_frees_rises_and_holds_falls():
    """The target spreads attribute 1 twice as wide (it rises on codes where it is positive, falls where negative).
    Unpreserved, LW follows; ``per_code`` holds every code's attribute 1; ``per_code_falls`` lets it rise and holds
    the falls."""
    g = torch.Generator().manual_seed(0)
    source = torch.randn(128, 2, generator=g)
    target = torch.randn(128, 2, generator=g) * torch.tensor([1.0, 2.0]) + torch.tensor([3.0, 0.0])
    neg, pos = source[:, 1] < -1, source[:, 1] > 1
    moves = {}
    for mode, lam in [("per_code", 0.0), ("per_code", 20.0), ("per_code_falls", 20.0)]:
        cfg = dataclasses.replace(FAST, lambda_pres=lam, pres_space="logit", pres_mode=mode)
        edit, history = train_lw(source, target, source, target, cfg, classifier=lambda z: z,
                                 gamma_row=torch.tensor([1.0, 0.0]), edited_attribute=0)
        assert math.isnan(history[0]["pres_blur"])  # no OT problem in attribute space, so no blur
        with torch.no_grad():
            delta = edit(source) - source
        assert float(delta[:, 0].mean()) > 2.5  # the edited attribute follows the target in every mode
        moves[mode, lam] = float(delta[neg, 1].mean()), float(delta[pos, 1].mean())
    assert moves["per_code", 0.0][0] < -1.0 and moves["per_code", 0.0][1] > 1.0, moves
    assert abs(moves["per_code", 20.0][0]) < 0.3 and abs(moves["per_code", 20.0][1]) < 0.3, moves
    assert moves["per_code_falls", 20.0][0] > -0.4 and moves["per_code_falls", 20.0][1] > 0.7, moves


def test_preservation_needs_a_classifier():
    source, target = _blobs(16, 2, 1.0, seed=0)
    for option in ({"lambda_pres": 1.0}, {"transport_attributes": 1.0}):
        with pytest.raises(ValueError, match="classifier"):
            train_lw(source, target, source, target, dataclasses.replace(FAST, **option))


def _swapping_clusters(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sources A = (0, 1, 0.2), B = (0, −1, −0.2); targets A' = (3, −1, 0.2), B' = (3, 1, −0.2); 64 codes each, noise
    0.05. Coordinate 2 is the attribute. In ½‖x − y‖² the cheap pairing is A → B' (9.08 against A → A''s 11): it
    flips the attribute and keeps coordinate 1."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[0.0, 1.0, 0.2], [0.0, -1.0, -0.2]])
    source = centres.repeat_interleave(64, 0) + 0.05 * torch.randn(128, 3, generator=g)
    target = (centres * torch.tensor([1.0, -1.0, 1.0]) + torch.tensor([3.0, 0.0, 0.0])).repeat_interleave(64, 0)
    return source, target + 0.05 * torch.randn(128, 3, generator=g)


@pytest.mark.parametrize("reach", [None, 0.3])
@pytest.mark.parametrize("mu, kept", [(0.0, False), (200.0, True)])
def test_attributes_in_the_transport_cost_pair_codes_that_keep_them(mu, kept, reach):
    """With ½μ (F(x) − F(y))² added to the cost (F reads coordinate 2), the transport pairs A with A' and the edit
    keeps each code's attribute; without it LW follows the cheaper A → B' and flips it. No L_pres in either; balanced
    and with the targets relaxed (δ then measured with the attributes appended)."""
    source, target = _swapping_clusters(0)
    val_source, val_target = _swapping_clusters(1)
    cfg = dataclasses.replace(FAST, max_steps=300, transport_attributes=mu, pres_space="logit", target_reach=reach)
    edit, _ = train_lw(source, target, val_source, val_target, cfg, classifier=lambda z: z[:, 2:],
                       gamma_row=torch.tensor([0.0]))
    with torch.no_grad():
        edited = edit(val_source)
    assert float((edited[:, 0] - 3).abs().mean()) < 0.3
    same_sign = float((torch.sign(edited[:, 2]) == torch.sign(val_source[:, 2])).float().mean())
    assert (same_sign > 0.95) if kept else (same_sign < 0.05), (mu, same_sign, edited[::64])


def test_config_validation():
    with pytest.raises(ValueError, match="monitor"):
        LWConfig(monitor="val_accuracy")
    with pytest.raises(ValueError, match="pres_mode"):
        LWConfig(pres_mode="pointwise")
    with pytest.raises(ValueError, match="scaling"):
        LWConfig(scaling=1.0)
    with pytest.raises(ValueError, match="pres_space"):
        LWConfig(pres_space="logits")
    with pytest.raises(ValueError, match="min_rel_delta"):
        LWConfig(min_rel_delta=1.0)
    with pytest.raises(ValueError, match="target_reach"):
        LWConfig(target_reach=0.0)
    with pytest.raises(ValueError, match="transport_attributes"):
        LWConfig(transport_attributes=-1.0)
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


def test_target_costs_are_gathered_batch_costs():
    y = torch.randn(20, 3, 4, generator=torch.Generator().manual_seed(0))
    costs = TargetCosts.of(y)
    idx = torch.tensor([3, 7, 7, 0, 19])  # a batch straddling two permutations may repeat a code
    flat = y.reshape(20, -1)[idx]
    torch.testing.assert_close(costs.batch(idx), half_squared_distances(flat, flat), rtol=1e-5, atol=1e-4)


def test_training_with_target_costs_is_training_without(monkeypatch):
    """LW reads each batch's target-to-target costs from the costs of all targets, computed once (up to
    TARGET_COSTS_MAX_CODES targets): the same losses, to float rounding, as computing them every step."""
    import latentedit.edits.lw as lw

    x, y = _blobs(300, 8, 3.0, 0)
    vx, vy = _blobs(200, 8, 3.0, 1)
    cfg = dataclasses.replace(FAST, batch_cap=64, max_steps=40)
    calls = []
    monkeypatch.setattr(lw.TargetCosts, "batch", lambda self, idx: calls.append(len(idx)) or
                        self.costs[idx.unsqueeze(1), idx.unsqueeze(0)])
    _, gathered = train_lw(x, y, vx, vy, cfg)
    assert len(calls) == 40  # every training step read its costs from the table
    monkeypatch.setattr(lw, "TARGET_COSTS_MAX_CODES", 100)  # 300 targets: each batch computes its own
    _, computed = train_lw(x, y, vx, vy, cfg)
    assert len(calls) == 40
    for key in ("train_wasserstein", "val_wasserstein"):
        np.testing.assert_allclose([r[key] for r in gathered[1:]], [r[key] for r in computed[1:]], rtol=1e-4)


def test_warm_start_auto_follows_the_code_size(monkeypatch):
    import latentedit.edits.lw as lw

    seen = []
    real = lw.sinkhorn_divergence

    def spy(*args, warm=None, start=None, **kwargs):
        seen.append("table" if start is not None else "extended" if warm is not None else "cold")
        return real(*args, warm=warm, start=start, **kwargs)

    monkeypatch.setattr(lw, "sinkhorn_divergence", spy)
    x, y = _blobs(64, 4, 1.0, 0)
    cfg = dataclasses.replace(FAST, batch_cap=32, max_steps=6, max_epochs=3)
    train_lw(x, y, x, y, cfg)  # auto, 4-d codes: warm from the second step on
    # validation (cold, then from its table); steps: cold, extended (its codes unseen), then from the tables
    assert seen == ["cold", "cold", "extended", "table", "table", "table", "table", "table", "table", "table"], seen
    seen.clear()
    monkeypatch.setattr(lw, "WARM_START_MAX_DIM", 3)  # now 4-d codes count as large: cold until the tables are full
    train_lw(x, y, x, y, cfg)
    assert seen == ["cold", "cold", "cold", "table", "table", "table", "table", "table", "table", "table"], seen
    seen.clear()
    train_lw(x, y, x, y, dataclasses.replace(cfg, warm_start="never"))
    assert seen and set(seen) == {"cold"}
    with pytest.raises(ValueError, match="warm_start"):
        LWConfig(warm_start="yes")


def test_semi_relaxed_solves_start_from_the_tables_never_extended(monkeypatch):
    """With target_reach, a solve starts from its codes' potentials once the tables hold them all, else cold: the
    c-transform that extends a balanced solve does not hold for the damped targets' side."""
    import latentedit.edits.lw as lw

    seen, tolerances = [], set()
    real = lw.semi_relaxed_divergence

    def spy(*args, start=None, tolerance=None, **kwargs):
        seen.append("table" if start is not None else "cold")
        tolerances.add(tolerance)
        return real(*args, start=start, tolerance=tolerance, **kwargs)

    monkeypatch.setattr(lw, "semi_relaxed_divergence", spy)
    x, y = _blobs(64, 4, 1.0, 0)
    cfg = dataclasses.replace(FAST, batch_cap=32, max_steps=6, max_epochs=3, target_reach=0.5)
    train_lw(x, y, x, y, cfg)
    assert seen == ["cold", "cold", "cold", "table", "table", "table", "table", "table", "table", "table"], seen
    assert tolerances == {lw.SEMI_RELAXED_WARM_TOLERANCE, lw.VALIDATION_TOLERANCE}
    seen.clear()
    train_lw(x, y, x, y, dataclasses.replace(cfg, warm_start="never"))
    assert seen and set(seen) == {"cold"}


def test_warm_started_semi_relaxed_training_learns_the_same_edit_as_cold():
    """From the tables or cold, LW with relaxed targets moves every source onto the same one of two target modes."""
    source, target = _one_source_two_targets(0)
    val_source, val_target = _one_source_two_targets(1)
    cfg = dataclasses.replace(FAST, batch_cap=64, max_steps=300, target_reach=0.3)
    moved = {}
    for mode in ("auto", "never"):
        edit, _ = train_lw(source, target, val_source, val_target, dataclasses.replace(cfg, warm_start=mode))
        with torch.no_grad():
            moved[mode] = edit(val_source)[:, 0]
    assert float((moved["auto"] - moved["never"]).abs().mean()) < 0.2, moved


def test_warm_starts_index_each_term_s_tables_by_its_own_codes(monkeypatch):
    """Sources and targets of different counts, with L_pres: the Wasserstein term's y side is the targets, L_pres's the
    unedited sources; a swapped index or a table of the wrong size fails here (wrong shapes or an IndexError)."""
    import latentedit.edits.lw as lw

    seen = []
    real = lw.attribute_cost_divergence

    def spy(fx, fy, *args, start=None, **kwargs):
        if start is not None:
            seen.append((len(fx), len(fy), tuple(len(p) for p in start)))
        return real(fx, fy, *args, start=start, **kwargs)

    monkeypatch.setattr(lw, "attribute_cost_divergence", spy)
    x, _ = _blobs(96, 2, 1.0, 0)
    _, y = _blobs(40, 2, 1.0, 1)
    cfg = dataclasses.replace(FAST, batch_cap=32, max_steps=12, max_epochs=4, lambda_pres=1.0)
    edit, history = train_lw(x, y, x[:48], y[:20], cfg, classifier=lambda z: z, gamma_row=torch.tensor([1.0, 0.0]),
                             edited_attribute=0)
    assert seen and all(n == m and sizes == (n, m, n, m) for n, m, sizes in seen), seen
    assert all(math.isfinite(row["val_edit_loss"]) for row in history)


def test_a_partly_solved_batch_starts_cold_without_extension():
    x, y = _blobs(12, 3, 1.0, 0)
    warm = WarmStarts(12, 12, extend=False)
    first = warm.solver_kwargs("wasserstein", torch.arange(6), torch.arange(6))
    _, state = sinkhorn_divergence(x[:6], y[:6], blur=0.5, **first)
    warm.record("wasserstein", first, state, torch.arange(6), torch.arange(6))
    partly = warm.solver_kwargs("wasserstein", torch.arange(3, 9), torch.arange(6))
    assert partly["start"] is None and partly["warm"] is None  # cold: code 6 … 8 never solved, nothing to extend
    again = warm.solver_kwargs("wasserstein", torch.arange(6), torch.arange(6))
    assert again["start"] is not None
    warm.record("wasserstein", again, sinkhorn_divergence(x[:6], y[:6], blur=0.5, **again)[1], torch.arange(6),
                torch.arange(6))
    assert warm.summary("wasserstein").startswith("2 solves (1 cold, 0 extended, 1 from the tables)")


def test_a_potential_table_starts_a_batch_only_once_all_its_codes_were_solved():
    x, y = _blobs(12, 3, 1.0, 0)
    _, state = sinkhorn_divergence(x[:6], y[:4], blur=0.5)
    table = PotentialTable.empty(12, 12, x)
    idx_x, idx_y = torch.tensor([0, 2, 4, 6, 8, 10]), torch.tensor([1, 3, 5, 7])
    assert table.start(idx_x, idx_y) is None
    table.store(idx_x, idx_y, state)
    start = table.start(idx_x.flip(0), idx_y)  # any order of the same codes
    for got, solved in zip(start, (state.f_ba.flip(0), state.g_ab, state.f_aa.flip(0), state.g_bb), strict=True):
        torch.testing.assert_close(got, solved)
    assert table.start(torch.tensor([0, 1]), idx_y) is None  # code 1 of x never solved
    repeated = table.start(torch.tensor([4, 4, 0]), torch.tensor([7, 7]))  # a code twice in a batch
    torch.testing.assert_close(repeated.f_aa, state.f_aa[[2, 2, 0]])
    torch.testing.assert_close(repeated.g_ab, state.g_ab[[3, 3]])


def test_low_rank_edit_starts_at_the_identity_and_composes_to_a_plain_edit():
    torch.manual_seed(0)
    edit = AffineEdit(6, n_layers=3, layers=[0, 2], rank=2)
    assert set(dict(edit.named_parameters())) == {"u", "v", "bias"} and edit.linear().shape == (2, 6, 6)
    z = torch.randn(5, 3, 6)
    assert torch.equal(edit(z), z)  # V = 0: W = 0
    with torch.no_grad():
        edit.v.normal_()
        edit.bias.normal_()
    assert all(int(torch.linalg.matrix_rank(w)) == 2 for w in edit.linear())
    full = edit.full_rank()
    assert full.rank is None and "rank" not in full.spec() and edit.spec()["rank"] == 2
    torch.testing.assert_close(full(z), edit(z))
    assert AffineEdit.from_spec(edit.spec()).rank == 2
    for other in (AffineEdit(6, rank=3), AffineEdit(6, n_layers=3, couple_layers=True, rank=3)):  # flat, coupled
        with torch.no_grad():
            other.v.normal_()
        codes = torch.randn(5, 6) if other.n_layers is None else z
        assert int(torch.linalg.matrix_rank(other.linear())) == 3
        torch.testing.assert_close(other.full_rank()(codes), other(codes))
    with pytest.raises(ValueError, match="rank"):
        AffineEdit(4, rank=0)


def test_wplus_training_at_low_rank_returns_a_plain_edit_of_that_rank():
    """Each layer's target doubles the source along three directions: rank 3 per layer reaches it, rank 1 cannot."""
    g = torch.Generator().manual_seed(0)
    source = torch.randn(256, 2, 4, generator=g)
    target = source.clone()
    target[..., :3] *= 2.0
    distance = {}
    for rank in (1, 3):
        edit, history = train_lw(source, target, source, target, dataclasses.replace(FAST, rank=rank, max_steps=300))
        assert edit.rank is None and isinstance(edit.weight, torch.nn.Parameter)
        assert all(int(torch.linalg.matrix_rank(w, atol=1e-5)) <= rank for w in edit.weight.detach())
        with torch.no_grad():
            distance[rank] = float(sinkhorn_loss(edit(source).flatten(1), target.flatten(1)))
    start = float(sinkhorn_loss(source.flatten(1), target.flatten(1)))
    assert distance[3] < 0.1 * start and distance[1] > 3 * distance[3], (start, distance)


# ---------------------------------------------------------------------------------------------------------------
# target_reach: the semi-relaxed Wasserstein term


def _one_source_two_targets(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """256 sources N(0, 0.25 I) in D = 4; 256 targets, half at +3 and half at −3 along axis 0 (same spread)."""
    g = torch.Generator().manual_seed(seed)
    source, target = torch.randn(256, 4, generator=g) * 0.5, torch.randn(256, 4, generator=g) * 0.5
    target[:, 0] += torch.where(torch.arange(256) % 2 == 0, 3.0, -3.0)
    return source, target


def test_nearest_target_distance_is_the_median_distance_to_the_nearest_target():
    source, target = torch.tensor([[0.0, 0.0], [1.0, 0.0], [5.0, 0.0]]), torch.tensor([[0.0, 2.0], [5.0, 1.0]])
    assert nearest_target_distance(source, target) == pytest.approx(2.0)  # 2, √5, 1 → median 2
    assert nearest_target_distance(source, target, chunk=1) == pytest.approx(2.0)


def test_a_relaxed_target_marginal_lets_the_affine_edit_commit_to_one_mode():
    """An affine map cannot split one blob into two. Balanced, LW must cover both target modes, so it stretches the
    sources across them; with the targets' marginal relaxed at 0.3·δ it moves every source onto one mode."""
    source, target = _one_source_two_targets(0)
    val_source, val_target = _one_source_two_targets(1)
    moved = {}
    for reach in (None, 0.3):
        cfg = dataclasses.replace(FAST, batch_cap=256, max_steps=300, target_reach=reach)
        edit, history = train_lw(source, target, val_source, val_target, cfg)
        delta = nearest_target_distance(source, target)
        assert (math.isnan(history[0]["reach"]) if reach is None
                else history[0]["reach"] == pytest.approx(reach * delta))
        with torch.no_grad():
            moved[reach] = edit(val_source)[:, 0]
    right = {r: float((m > 0).float().mean()) for r, m in moved.items()}
    off_mode = {r: float(torch.minimum((m - 3).abs(), (m + 3).abs()).mean()) for r, m in moved.items()}
    assert 0.3 < right[None] < 0.7 and off_mode[None] > 1.0  # balanced: spread over both modes and between them
    assert right[0.3] in (0.0, 1.0) and off_mode[0.3] < 0.8  # relaxed: all on one mode
