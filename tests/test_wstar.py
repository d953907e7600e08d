"""W* (latentedit.wstar): Real NVP invertibility, the loss formulas, the Table-1 metrics on synthetic cases with known
answers, training end to end on a toy problem, and the W* edit methods (lw_wstar, ifg_wstar) through train_edit /
apply_edit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from latentedit.edits.model import apply_edit, edit_module
from latentedit.edits.train import train_edit
from latentedit.render.calibrate import natural_unit
from latentedit.wstar import metrics as M
from latentedit.wstar.losses import attribute_separation_loss, distance_loss, identity_loss, pair_sq_distances
from latentedit.wstar.realnvp import RealNVP, coupling_masks, wstar_from_checkpoint
from latentedit.wstar.train import WStarConfig, distance_scale, fit_linear_classifiers, train_wstar


def _randomised(T: RealNVP, std: float = 0.1, seed: int = 0) -> RealNVP:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in T.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return T


# ---------------------------------------------------------------------------------------------------------------
# Real NVP


@given(n_couplings=st.integers(1, 5), seed=st.integers(0, 100), layered=st.booleans())
def test_realnvp_is_invertible_to_1e_4(n_couplings, seed, layered):
    shape = (3, 8) if layered else (16,)
    T = _randomised(RealNVP(shape, n_couplings, (32,), seed=seed), seed=seed).eval()
    z = torch.randn(64, *shape, generator=torch.Generator().manual_seed(seed)) * 2
    with torch.no_grad():
        w = T(z)
        assert w.shape == z.shape
        assert (w - z).abs().max() > 1e-3  # not the identity
        assert (T.inverse(w) - z).abs().max() < 1e-4
        assert (T(T.inverse(z)) - z).abs().max() < 1e-4


def test_realnvp_starts_as_identity_and_logdet_matches_autograd():
    T = RealNVP((6,), 4, (8,))
    z = torch.randn(5, 6)
    assert torch.equal(T(z), z)
    _randomised(T, 0.3)
    with torch.no_grad():
        _, logdet = T.forward_with_logdet(z)
    for n in range(2):
        jac = torch.autograd.functional.jacobian(lambda x: T(x[None])[0], z[n])
        assert float(torch.linalg.slogdet(jac.detach())[1]) == pytest.approx(float(logdet[n]), abs=1e-4)


def test_coupling_masks_pair_up_and_checkpoint_roundtrip():
    m = coupling_masks(9, 4, seed=1)
    assert torch.equal(m[0] + m[1], torch.ones(9)) and torch.equal(m[2] + m[3], torch.ones(9))
    assert float(m[0].sum()) == 4
    T = _randomised(RealNVP((9,), 4, (8,), seed=1))
    ck = {"spec": T.spec(), "state_dict": T.state_dict()}
    T2 = wstar_from_checkpoint(ck)
    z = torch.randn(4, 9)
    assert torch.allclose(T(z), T2(z))
    assert not any(p.requires_grad for p in T2.parameters())


# ---------------------------------------------------------------------------------------------------------------
# Losses


def test_attribute_separation_loss_is_bce_of_linear_logits():
    w = torch.randn(7, 4)
    y = (torch.rand(7, 3) > 0.5).float()
    a, b = torch.randn(3, 4), torch.randn(3)
    logits = w @ a.T + b
    expected = -(y * torch.log(torch.sigmoid(logits)) + (1 - y) * torch.log(1 - torch.sigmoid(logits))).mean()
    assert float(attribute_separation_loss(w, y, a, b)) == pytest.approx(float(expected), rel=1e-5)


def test_distance_loss_formula_and_zero_when_distances_agree():
    x = torch.randn(6, 3)
    i, j = torch.triu_indices(6, 6, 1)
    assert torch.allclose(pair_sq_distances(x), ((x[i] - x[j]) ** 2).sum(1))
    # features = x / 2: D_perc = ‖Δx‖²/4, so scale 4 matches exactly
    assert float(distance_loss(x, x / 2, scale=4.0, norm=1.0)) == pytest.approx(0.0, abs=1e-10)
    f = torch.randn(6, 5)
    d = pair_sq_distances(x) - 2.0 * pair_sq_distances(f)
    assert float(distance_loss(x, f, 2.0, 3.0)) == pytest.approx(float((d ** 2).mean() / 9.0), rel=1e-5)


@given(n=st.integers(2, 40), dim=st.integers(1, 300), seed=st.integers(0, 100))
def test_pair_distances_through_the_gram_matrix_equal_the_direct_ones(n, dim, seed):
    x = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 3 + 5
    direct = pair_sq_distances(x)
    gram = pair_sq_distances(x, max_elements=0)  # forces the Gram path (large batches of VGG16 features)
    assert torch.allclose(gram, direct, rtol=1e-9, atol=1e-9)
    i, j = torch.triu_indices(n, n, 1)
    assert np.allclose(M.indexed_sq_distances(x.numpy(), i.numpy(), j.numpy(), budget=7), direct.numpy())


def test_identity_loss_is_zero_for_a_feature_map_blind_to_the_step():
    T = RealNVP((4,), 2, (8,))  # identity
    w = torch.randn(5, 4)
    # φ ignores everything: loss 0; φ = identity: loss = E‖ε‖² / norm = σ²·D / norm
    assert float(identity_loss(w, T, lambda z: z, lambda x: x * 0, 0.1, 1.0)) == 0.0
    gen = torch.Generator().manual_seed(0)
    val = float(identity_loss(torch.randn(4000, 4), T, lambda z: z, lambda x: x, 0.5, 2.0, gen))
    assert val == pytest.approx(0.25 * 4 / 2.0, rel=0.05)


def test_distance_scale_matches_means():
    x = np.random.default_rng(0).normal(size=(300, 4))
    c, m = distance_scale(x, 2 * x, n_pairs=5000)
    assert c == pytest.approx(0.25, rel=1e-9) and m == pytest.approx(8.0, rel=0.1)


# ---------------------------------------------------------------------------------------------------------------
# Metrics on synthetic cases


def test_dci_perfect_code_and_entangled_code():
    rng = np.random.default_rng(0)
    factors = (rng.random((2000, 3)) > 0.5).astype(float)
    noise = rng.normal(size=(2000, 3)) * 0.01
    code = np.concatenate([factors + noise, rng.normal(size=(2000, 2))], 1)  # dims 0-2 = factors, 3-4 noise
    d = M.dci(code[:1500], factors[:1500], code[1500:], factors[1500:], alpha=0.01)
    assert d["disentanglement"] > 0.95 and d["completeness"] > 0.95 and d["informativeness"] > 0.95
    # every factor spread over every dimension by a random rotation: D and C drop well below 1
    rot = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    mixed = np.concatenate([factors @ rot + noise, rng.normal(size=(2000, 2))], 1)
    e = M.dci(mixed[:1500], factors[:1500], mixed[1500:], factors[1500:], alpha=0.01)
    assert e["disentanglement"] < 0.7 and e["completeness"] < 0.7
    assert e["informativeness"] > 0.95  # still linearly decodable


def test_two_afc_on_synthetic_distances():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    r, a, b = M.random_triplets(200, 3000, rng)
    assert not ((r == a) | (r == b) | (a == b)).any()
    d = M.sq_dist_fn(x)
    assert M.two_afc(d, d, r, a, b) == 1.0
    assert M.two_afc(lambda i, j: -d(i, j), d, r, a, b) == 0.0
    assert M.two_afc(M.sq_dist_fn(rng.normal(size=(200, 5))), d, r, a, b) == pytest.approx(0.5, abs=0.05)
    # a monotone transform of the distance changes nothing
    assert M.two_afc(lambda i, j: np.sqrt(d(i, j)) * 3 + 1, d, r, a, b) == 1.0


def test_distance_agreement_and_svm_accuracy():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 4))
    i, j = M.random_pairs(300, 1000, rng)
    assert (i != j).all()
    out = M.distance_agreement(x, x / 2, i, j, scale=4.0, norm=1.0)
    assert out["distance_diff_mean"] == pytest.approx(0.0, abs=1e-9) and out["distance_diff_std"] < 1e-9
    y = np.stack([(x[:, 0] > 0), (x[:, 1] + x[:, 2] > 0)], 1).astype(int)
    acc = M.svm_accuracy(x[:200], y[:200], x[200:], y[200:], ["a", "b"])
    assert acc["a"] > 0.95 and acc["b"] > 0.95
    sm = M.space_metrics(x[:200], y[:200], x[200:], y[200:], x[200:] / 2, ["a", "b"], 4.0, 1.0, 200, 200)
    rows = M.metrics_rows({"original": sm, "wstar": sm})
    t = M.table1(rows)
    assert list(t.columns) == ["metric", "original", "wstar"] and t["original"].notna().all()
    assert (rows["metric"] == "wstar.svm_accuracy").sum() == 2


# ---------------------------------------------------------------------------------------------------------------
# Training


def _toy(n, seed):
    """Codes whose attribute is x0·x1 > 0 (not linearly separable) and whose 'perceptual' features are the codes."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 4)).astype(np.float32)
    y = (z[:, :1] * z[:, 1:2] > 0).astype(np.float32)
    return z, y, z.copy()


def test_train_wstar_lowers_its_loss_and_stays_invertible():
    z, y, f = _toy(400, 0)
    zv, yv, fv = _toy(100, 1)
    cfg = WStarConfig(n_couplings=4, hidden=(32,), lr=1e-2, batch_size=64, max_epochs=6, patience=6, lambda_d=0.1)
    model, history = train_wstar(z, y, f, zv, yv, fv, cfg)
    assert history[0]["epoch"] == -1 and len(history) > 2
    best = min(r["val_total"] for r in history)
    assert best < history[0]["val_total"]
    assert max(r["invertibility"] for r in history) < 1e-4
    T = wstar_from_checkpoint(model)
    zt = torch.as_tensor(zv)
    assert (T.inverse(T(zt)) - zt).abs().max() < 1e-4
    assert model["classifier_weight"].shape == (1, 4) and model["distance_scale"] == pytest.approx(1.0, rel=1e-6)


def test_fit_linear_classifiers_handles_constant_attribute():
    z, y, _ = _toy(200, 2)
    y = np.concatenate([y, np.ones_like(y)], 1)
    w, b, _ = fit_linear_classifiers(z, y)
    assert w.shape == (2, 4) and float(w[1].abs().sum()) == 0 and float(b[1]) > 0


# ---------------------------------------------------------------------------------------------------------------
# Edit methods in W*


class _Store:
    def __init__(self, n=240, seed=0):
        rng = np.random.default_rng(seed)
        self.latents = rng.normal(size=(n, 4)).astype(np.float32)
        a = (self.latents[:, 0] > 0).astype(np.uint8)
        self.latents[a == 1, 0] += 1.0
        self.attributes = np.stack([a, 1 - a], 1)
        self.attribute_names = ["a", "b"]
        self.split = np.array(["train", "val", "test"] * (n // 3))
        self.ids = np.arange(n)


def _wstar_model(dim=4):
    T = _randomised(RealNVP((dim,), 4, (16,)), 0.1)
    return {"kind": "wstar", "spec": T.spec(), "state_dict": T.state_dict()}, T


DEF = {"source": {"a": 0}, "target": {"a": 1}, "attribute": "a"}


def test_ifg_wstar_edits_along_the_normal_in_wstar():
    store = _Store()
    wstar, T = _wstar_model()
    model, history, _ = train_edit("ifg_wstar", store, DEF, None, None, {"max_samples": 200}, wstar=wstar)
    assert model["type"] == "direction" and "wstar" in model and history[0]["train_accuracy"] > 0.8
    z = torch.as_tensor(store.latents[:10])
    out = apply_edit(model, z, 0.7)
    n = torch.as_tensor(model["normal"])
    with torch.no_grad():
        assert torch.allclose(T(out), T(z) + 0.7 * n, atol=1e-4)
        assert torch.allclose(apply_edit(model, z, 0.0), z, atol=1e-4)
    assert natural_unit(model, z, z + 1) > 0
    with pytest.raises(ValueError, match="needs the W\\* model"):
        train_edit("ifg_wstar", store, DEF, None, None, {})


def test_lw_wstar_trains_in_wstar_and_maps_back():
    store = _Store()
    wstar, T = _wstar_model()
    opts = {"lr": 1e-2, "max_epochs": 3, "max_steps": 6, "batch_cap": 32, "blur_fraction": 0.5, "scaling": 0.5,
            "patience": 3, "weighting": False}
    model, _, resolved = train_edit("lw_wstar", store, DEF, None, None, opts, wstar=wstar)
    assert model["type"] == "affine" and resolved["wstar"]["spec"] == T.spec()
    z = torch.as_tensor(store.latents[:10])
    out = apply_edit(model, z, 1.0)
    assert out.shape == z.shape and torch.isfinite(out).all()

    with torch.no_grad():
        assert torch.allclose(T(out), edit_module(model)(T(z)), atol=1e-4)
