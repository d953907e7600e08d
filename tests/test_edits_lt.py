"""The Latent Transformer baseline (latentedit.edits.lt): loss terms, the LT(*) variant, the equalised-lr
parametrisation and training on a synthetic latent set."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from latentedit.edits.affine import AffineEdit
from latentedit.edits.lt import (LTConfig, _optimizer, lt_loss_components, lt_preservation_mask, make_lt_edit,
                                 train_lt)
from latentedit.labels.classifiers import ClassifierConfig, train_latent_classifiers
from latentedit.labels.correlations import correlation_matrix

torch.set_num_threads(1)


def _bce(logit: float, t: float) -> float:
    return -(t * math.log(1 / (1 + math.exp(-logit))) + (1 - t) * math.log(1 - 1 / (1 + math.exp(-logit))))


# ---------------------------------------------------------------------------------------------------------------
# loss terms


CODES = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
EDITED = torch.tensor([[1.0, 1.0], [2.0, 1.0]])
BEFORE = torch.tensor([[-2.0, 0.5, 1.0], [-1.0, 0.0, -1.0]])
AFTER = torch.tensor([[1.0, 1.5, 1.0], [0.5, 0.0, 1.0]])
GAMMA_ROW = torch.tensor([1.0, 0.5, -0.75])  # γ_l0 for k = 0 (a signed entry: |γ| is used)


def test_preservation_mask():
    torch.testing.assert_close(lt_preservation_mask(GAMMA_ROW, 0), torch.tensor([0.0, 0.5, 0.25]))
    torch.testing.assert_close(lt_preservation_mask(np.array([0.2, 1.0]), 1), torch.tensor([0.8, 0.0]))


@pytest.mark.parametrize("power", [1, 2])
def test_loss_components_match_hand_computation(power):
    mask = lt_preservation_mask(GAMMA_ROW, 0)
    out = lt_loss_components(CODES, EDITED, BEFORE, AFTER, 0, mask, target=1.0, lambda_pres=2.0, lambda_reg=10.0,
                             pres_weight_power=power)
    cls = (_bce(1.0, 1) + _bce(0.5, 1)) / 2  # F_0(T(w)) = 1.0, 0.5 → target 1
    m = [0.0, 0.5, 0.25]
    # ΔF: row 0 = (3, 1, 0), row 1 = (1.5, 0, 2); mean over 2 codes × 3 attributes
    dF = [[3.0, 1.0, 0.0], [1.5, 0.0, 2.0]]
    pres = sum(m[l] ** power * dF[n][l] ** 2 for n in range(2) for l in range(3)) / 6
    reg = (1.0 + 0.0 + 0.0 + 4.0) / 4  # (T(w) − w)² entry-wise mean: changes (1, 0), (0, 2)
    assert float(out["classification"]) == pytest.approx(cls)
    assert float(out["preservation"]) == pytest.approx(pres)
    assert float(out["regularisation"]) == pytest.approx(reg)
    assert float(out["total"]) == pytest.approx(cls + 2.0 * pres + 10.0 * reg)
    # repo form for power 2: MSELoss(F(T(w))·m, F(w)·m)
    if power == 2:
        assert float(out["preservation"]) == pytest.approx(float(F.mse_loss(AFTER * mask, BEFORE * mask)))


def test_remove_direction_target_zero():
    out = lt_loss_components(CODES, EDITED, BEFORE, AFTER, 0, lt_preservation_mask(GAMMA_ROW, 0), target=0.0)
    assert float(out["classification"]) == pytest.approx((_bce(1.0, 0) + _bce(0.5, 0)) / 2)


def test_core_variant_is_classification_only():
    cfg = LTConfig(core=True, lambda_pres=3.0, lambda_reg=7.0)
    assert cfg.effective_lambdas == (0.0, 0.0)
    assert LTConfig().effective_lambdas == (1.0, 10.0)  # the LT repository's weights
    lp, lr = cfg.effective_lambdas
    out = lt_loss_components(CODES, EDITED, BEFORE, AFTER, 0, lt_preservation_mask(GAMMA_ROW, 0), lambda_pres=lp,
                             lambda_reg=lr)
    assert torch.equal(out["total"], out["classification"])
    assert float(out["preservation"]) > 0 and float(out["regularisation"]) > 0  # still reported


# ---------------------------------------------------------------------------------------------------------------
# the map and its optimiser


def test_make_lt_edit_shapes_and_init():
    gen = torch.Generator().manual_seed(0)
    flat = make_lt_edit((8,), LTConfig(), gen)
    assert flat.weight.shape == (8, 8) and flat.weight.abs().max() <= math.sqrt(3) / 8
    assert float(flat.weight.detach().abs().sum()) > 0 and float(flat.bias.detach().abs().sum()) == 0
    zero = make_lt_edit((8,), LTConfig(init="zero"))
    z = torch.randn(4, 8)
    assert torch.equal(zero(z), z)
    wplus = make_lt_edit((5, 4), LTConfig(layers=(1, 3)))
    assert wplus.weight.shape == (2, 4, 4) and wplus.layers == [1, 3]
    zp = torch.randn(3, 5, 4)
    out = wplus(zp)
    assert torch.equal(out[:, [0, 2, 4]], zp[:, [0, 2, 4]])  # unedited layers pass through


class _EqualizedDense(torch.nn.Module):
    """The LT repository's Dense_layer/F_mapping (flat, one layer): raw weight v used as v/√D, bias unscaled."""

    def __init__(self, v: torch.Tensor):
        super().__init__()
        self.v = torch.nn.Parameter(v.clone())
        self.b = torch.nn.Parameter(torch.zeros(v.shape[0]))

    def forward(self, z):
        return z + F.linear(z, self.v / math.sqrt(self.v.shape[1]), self.b)


def test_equalized_lr_reproduces_the_repository_parametrisation():
    d, gen = 6, torch.Generator().manual_seed(1)
    cfg = LTConfig(lr=1.0e-2, weight_decay=5.0e-3)
    edit = make_lt_edit((d,), cfg, gen)
    ref = _EqualizedDense(edit.weight.detach() * math.sqrt(d))
    opt_ref = torch.optim.Adam(ref.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    opt = _optimizer(edit, cfg)
    z, y = torch.randn(16, d, generator=gen), torch.randn(16, d, generator=gen)
    for _ in range(25):
        for module, o in ((edit, opt), (ref, opt_ref)):
            o.zero_grad()
            ((module(z) - y) ** 2).sum().backward()
            o.step()
    torch.testing.assert_close(edit.weight.detach(), ref.v.detach() / math.sqrt(d), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(edit.bias.detach(), ref.b.detach(), atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------------------------------------------------------
# training


def _synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(seed).standard_normal((n, 8)).astype(np.float32)
    return x, (x[:, :3] > 0).astype(np.uint8)


@pytest.fixture(scope="module")
def world():
    (xtr, ytr), (xva, yva) = _synthetic(1000, 0), _synthetic(300, 1)
    cfg = ClassifierConfig(hidden=(32, 32), dropout=0.0, lr=3.0e-3, max_epochs=40, patience=5)
    clf, _, _ = train_latent_classifiers(xtr, ytr, xva, yva, cfg)
    gamma = correlation_matrix(ytr)
    src = torch.from_numpy(xtr[ytr[:, 0] == 0])
    val = torch.from_numpy(xva[yva[:, 0] == 0])
    return clf, gamma, src, val


FAST = dict(lr=1.0e-2, max_epochs=40, patience=40, seed=0)  # Adam at 10× the repo's rate: seconds, not minutes


def _rates(clf, edit, src):
    with torch.no_grad():
        before, after = clf(src), clf(edit(src))
    success = float((after[:, 0] > 0).float().mean())
    kept = float(((after[:, 1:] > 0) == (before[:, 1:] > 0)).float().mean())
    return success, kept


def test_lt_core_adds_the_attribute(world):
    clf, gamma, src, val = world
    params_before = [p.detach().clone() for p in clf.parameters()]
    grads_before = [None if p.grad is None else p.grad.clone() for p in clf.parameters()]
    clf.train()  # the caller's module keeps its mode, parameters and gradients: LT works on a frozen copy
    try:
        edit, history = train_lt(src, clf, 0, gamma[:, 0], LTConfig(core=True, **FAST), val_source=val)
        assert clf.training and all(p.requires_grad for p in clf.parameters())
        assert all((g is None and p.grad is None) or torch.equal(g, p.grad)
                   for g, p in zip(grads_before, clf.parameters()))
    finally:
        clf.eval()
    assert all(torch.equal(a, b) for a, b in zip(params_before, clf.parameters()))
    success, _ = _rates(clf, edit, src)
    assert success > 0.9
    rows = [r for r in history if r["epoch"] >= 0]
    assert all(r["train_total"] == pytest.approx(r["train_classification"]) for r in rows)
    assert rows[-1]["val_success"] > 0.85
    assert isinstance(edit, AffineEdit) and not edit.training


def test_lt_full_keeps_other_attributes(world):
    clf, gamma, src, val = world
    core, _ = train_lt(src, clf, 0, gamma[:, 0], LTConfig(core=True, **FAST), val_source=val)
    full, history = train_lt(src, clf, 0, gamma[:, 0], LTConfig(**FAST), val_source=val)
    success, kept = _rates(clf, full, src)
    _, kept_core = _rates(clf, core, src)
    assert success > 0.5  # most source codes now have the attribute
    assert kept > 0.95 and kept >= kept_core
    best = [r for r in history if r["best"]][-1]
    assert best["val_total"] == min(r["val_total"] for r in history)


def test_lt_without_validation_and_wplus(world):
    clf, gamma, src, _ = world
    cfg = LTConfig(lr=1.0e-2, max_epochs=3, patience=3, layers=(0, 1))
    # W+ view of the same codes through a classifier that flattens them
    wrapped = lambda z: clf(z.reshape(len(z), -1))  # noqa: E731
    edit, history = train_lt(src.reshape(-1, 2, 4), wrapped, 0, gamma[:, 0], cfg)
    assert edit.n_layers == 2 and len(history) == 4
    assert math.isnan(history[0]["val_total"]) and not history[0]["best"]
    assert any(r["best"] for r in history[1:])


def test_lt_checks_classifier_and_gamma_agree(world):
    clf, gamma, src, _ = world
    with pytest.raises(ValueError, match="must agree"):
        train_lt(src, clf, 0, gamma[:2, 0], LTConfig(max_epochs=1))
