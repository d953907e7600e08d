"""GANSpace (latentedit.edits.ganspace) and SeFa (latentedit.edits.sefa): the unsupervised candidates recover planted
axes, a candidate is assigned to an edit by the attribute it moves (latentedit.edits.components), the W+ placement,
and both methods train through ``train_edit``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from latentedit.dlsgan.models import Generator as DLSGANGenerator
from latentedit.edits.components import (LatentPrior, assign_component, assignment_step, latent_prior,
                                         load_generator_network, place_on_layers)
from latentedit.edits.ganspace import pca, sample_mapping
from latentedit.edits.model import apply_edit
from latentedit.edits.sefa import factorize, style_weights
from latentedit.edits.train import train_edit
from latentedit.faces.stylegan2 import Generator as StyleGAN2
from latentedit.io.latent_store import LatentStore
from latentedit.labels.classifiers import LatentClassifier
from latentedit.labels.correlations import correlation_matrix

torch.set_num_threads(1)

NAMES = ["a", "b", "c"]
ADD_A = {"source": {"a": 0}, "target": {"a": 1}, "attribute": "a", "lambda_pres": 1.0}
REMOVE_A = {"source": {"a": 1}, "target": {"a": 0}, "attribute": "a", "lambda_pres": 1.0}


def _unit(rng, d: int) -> np.ndarray:
    u = rng.standard_normal(d)
    return u / np.linalg.norm(u)


def _abs_cos(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64).reshape(-1), np.asarray(b, dtype=np.float64).reshape(-1)
    return abs(float(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b)))


# ---------------------------------------------------------------------------------------------------------------
# GANSpace: PCA


@given(seed=st.integers(0, 10_000))
def test_pca_recovers_a_planted_principal_axis(seed):
    rng = np.random.default_rng(seed)
    u = _unit(rng, 16)
    x = rng.standard_normal((2000, 16)) + 4.0 * rng.standard_normal((2000, 1)) * u + 7.0  # std 4 along u, offset
    comps, stdev, ratio = pca(x, 3)
    assert comps.shape == (3, 16) and np.allclose(np.linalg.norm(comps, axis=1), 1.0)
    assert _abs_cos(comps[0], u) > 0.99
    assert stdev[0] == pytest.approx(np.sqrt(17.0), rel=0.1) and ratio[0] > 0.5 and np.all(np.diff(stdev) <= 0)


class _LinearMapping(nn.Module):
    """A stand-in for a mapping network: w = M z with M = I + 3·u uᵀ (so cov(w) = (I + 3 u uᵀ)², top axis u)."""

    def __init__(self, u: np.ndarray):
        super().__init__()
        self.z_dim = self.style_dim = len(u)
        m = torch.eye(len(u), dtype=torch.float64) + 3.0 * torch.outer(torch.as_tensor(u), torch.as_tensor(u))
        self.lin = nn.Linear(len(u), len(u), bias=False)
        with torch.no_grad():
            self.lin.weight.copy_(m.float())

    def mapping(self, z):
        return self.lin(z)


def test_pca_of_the_mapping_network_recovers_its_dominant_axis():
    u = _unit(np.random.default_rng(0), 8)
    g = _LinearMapping(u)
    w = sample_mapping(g, 4000, seed=3, batch_size=1000)
    assert w.shape == (4000, 8)
    np.testing.assert_array_equal(w, sample_mapping(g, 4000, seed=3))  # seeded, batch-size free
    assert not np.array_equal(w, sample_mapping(g, 4000, seed=4))
    comps, _, _ = pca(w, 2)
    assert _abs_cos(comps[0], u) > 0.99


# ---------------------------------------------------------------------------------------------------------------
# SeFa: the factorisation


def _planted_rows(rng, n: int, u: np.ndarray, noise: float = 0.05) -> torch.Tensor:
    """n weight rows c_i·u + noise with random signed scales c_i: every output unit reads mostly along u."""
    c = rng.uniform(0.5, 3.0, (n, 1)) * rng.choice([-1.0, 1.0], (n, 1))
    return torch.as_tensor(c * u + noise * rng.standard_normal((n, len(u))), dtype=torch.float32)


def _tiny_stylegan(style_dim: int = 8) -> StyleGAN2:
    """An 8-pixel rosinality StyleGAN2: conv1 + 2 convs (modulation weights (512, D)), W+ of L = 4 layers."""
    torch.manual_seed(0)
    return StyleGAN2(8, style_dim=style_dim, n_mlp=2, channel_multiplier=1).eval()


def test_sefa_recovers_a_planted_modulation_direction():
    rng = np.random.default_rng(1)
    u = _unit(rng, 8)
    g = _tiny_stylegan()
    convs = [g.conv1, *g.convs]
    assert len(convs) == g.n_latent - 1 == 3
    with torch.no_grad():
        for conv in convs:
            conv.conv.modulation.weight.copy_(_planted_rows(rng, conv.conv.modulation.weight.shape[0], u))
        for rgb in [g.to_rgb1, *g.to_rgbs]:  # ToRGB is excluded: a strong other axis there must not matter
            rgb.conv.modulation.weight.copy_(_planted_rows(rng, rgb.conv.modulation.weight.shape[0], _unit(rng, 8)))
    a, layers = style_weights(g, "wplus")
    assert a.shape == (3 * 512, 8) and layers == [0, 1, 2]
    vecs, vals = factorize(a, 4)
    assert vecs.shape == (4, 8) and np.all(np.diff(vals) <= 0)
    assert _abs_cos(vecs[0], u) > 0.99


def test_sefa_layers_choose_the_modulation_weights():
    rng = np.random.default_rng(2)
    u, v = _unit(rng, 8), _unit(rng, 8)
    g = _tiny_stylegan()
    with torch.no_grad():
        g.conv1.conv.modulation.weight.copy_(_planted_rows(rng, 512, v))  # W+ layer 0
        for conv in g.convs:  # W+ layers 1, 2
            conv.conv.modulation.weight.copy_(_planted_rows(rng, 512, u))
    a, layers = style_weights(g, "wplus", [2, 1])
    assert layers == [1, 2] and a.shape == (1024, 8)
    assert _abs_cos(factorize(a, 1)[0][0], u) > 0.99
    assert _abs_cos(factorize(style_weights(g, "wplus", [0])[0], 1)[0][0], v) > 0.99
    with pytest.raises(ValueError, match="layers must be indices in 0 … 2"):
        style_weights(g, "wplus", [3])  # W+ layer 3 feeds the last ToRGB only


def test_sefa_row_normalisation_counts_each_unit_once():
    # 10 strong rows along e0, 100 weak rows along e1: the raw AᵀA prefers e0, the normalised one e1 (genforce/sefa)
    a = np.zeros((110, 4))
    a[:10, 0], a[10:, 1] = 100.0, 0.01
    assert _abs_cos(np.linalg.eigh(a.T @ a)[1][:, -1], np.eye(4)[0]) == pytest.approx(1.0)
    assert _abs_cos(factorize(a, 1)[0][0], np.eye(4)[1]) == pytest.approx(1.0)


def test_sefa_on_a_linear_first_layer():
    rng = np.random.default_rng(3)
    u = _unit(rng, 6)
    g = DLSGANGenerator(z_dim=6, canvas=8, width=4, max_channels=8)
    with torch.no_grad():
        g.fc[0].weight.copy_(_planted_rows(rng, g.fc[0].weight.shape[0], u))
    a, layers = style_weights(g, "z")
    assert layers is None and a.shape == (8 * 16, 6)
    assert _abs_cos(factorize(a, 2)[0][0], u) > 0.99
    with pytest.raises(ValueError, match="layers apply to wplus codes only"):
        style_weights(g, "z", [0])
    for space in ("w", "wplus"):
        with pytest.raises(ValueError, match=f"{space} codes need a StyleGAN2 generator"):
            style_weights(g, space)
    with pytest.raises(ValueError, match="no style-modulation weights"):
        style_weights(nn.Sequential(nn.ReLU()), "z")


# ---------------------------------------------------------------------------------------------------------------
# W+ placement and the assignment


def test_a_style_vector_is_placed_on_the_chosen_wplus_layers_with_unit_norm():
    v = np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 2.0]])
    out = place_on_layers(v, (4, 3), [3, 1])
    assert out.shape == (2, 4, 3)
    np.testing.assert_allclose(out[:, [0, 2]], 0.0)
    np.testing.assert_allclose(out[0, 1], [0.6 / np.sqrt(2), 0.8 / np.sqrt(2), 0.0], rtol=1e-6)
    np.testing.assert_allclose(out[0, 3], out[0, 1])
    np.testing.assert_allclose(np.linalg.norm(out.reshape(2, -1), axis=1), 1.0, rtol=1e-6)
    every = place_on_layers(v, (4, 3), None)
    np.testing.assert_allclose(every[1], np.tile([0.0, 0.0, 0.5], (4, 1)), rtol=1e-6)
    np.testing.assert_allclose(place_on_layers(v, (3,), None)[0], [0.6, 0.8, 0.0], rtol=1e-6)  # flat codes
    with pytest.raises(ValueError, match="W\\+ codes"):
        place_on_layers(v, (3,), [0])
    with pytest.raises(ValueError, match="layers must be indices"):
        place_on_layers(v, (4, 3), [4])


def _exact_classifier(shape=(4,)) -> LatentClassifier:
    """Logits 4·z_l for attributes a, b, c = the first three coordinates of the (flattened) code."""
    d = int(np.prod(shape))
    model = LatentClassifier(shape, 3, hidden=(), attribute_names=NAMES)
    with torch.no_grad():
        model.net[0].weight.copy_(4 * torch.eye(3, d))
        model.net[0].bias.zero_()
    return model.eval()


@pytest.mark.parametrize("target, sign", [(1, -1), (0, 1)])
def test_the_assignment_picks_the_planted_direction_with_its_sign(target, sign):
    rng = np.random.default_rng(4)
    codes = rng.standard_normal((200, 4)).astype(np.float32)
    codes[:, 0] = -np.abs(codes[:, 0]) if target == 1 else np.abs(codes[:, 0])  # sources lack / have a
    e = np.eye(4, dtype=np.float32)
    candidates = np.stack([e[1], -e[0], e[2], (e[0] + e[3]) / np.sqrt(2)])  # -e0: a, flipped; the last: half of it
    a = assign_component(candidates, codes, _exact_classifier(), k=0, target=target, step=2.0)
    assert (a["component"], a["sign"]) == (1, sign)
    assert a["score"] > a["runner_up_score"] > 0 and a["runner_up_component"] == 3
    assert a["scores"].shape == (4, 2) and abs(a["scores"][0]).max() < 1e-6  # e1 leaves a alone


def test_the_assignment_step_is_the_distance_between_the_class_means():
    src = np.zeros((5, 2, 3))
    tgt = np.zeros((7, 2, 3)) + np.array([3.0, 4.0, 0.0])  # every entry shifted: ‖Δμ‖ = √(2·25)
    assert assignment_step(src + 1.0, tgt + 1.0) == pytest.approx(np.sqrt(50.0))


# ---------------------------------------------------------------------------------------------------------------
# Through train_edit


@pytest.fixture(scope="module")
def flat_store() -> LatentStore:
    """Codes with std 3 along z₀ (GANSpace's first component); a, b, c = [z₀ > 0], [z₁ > 0], [z₂ > 0]."""
    z = (np.random.default_rng(5).standard_normal((500, 4)) * [3.0, 1.0, 1.0, 1.0]).astype(np.float32)
    split = np.array(["train"] * 300 + ["val"] * 100 + ["test"] * 100)
    return LatentStore(latents=z, ids=np.array([f"i{i}" for i in range(500)]), split=split,
                       attributes=(z[:, :3] > 0).astype(np.uint8), attribute_names=list(NAMES),
                       attrs={"latent_space": "z"})


def _dlsgan_with_planted_first_layer(u) -> DLSGANGenerator:
    rng = np.random.default_rng(6)
    g = DLSGANGenerator(z_dim=4, canvas=8, width=4, max_channels=8)
    with torch.no_grad():
        g.fc[0].weight.copy_(_planted_rows(rng, g.fc[0].weight.shape[0], u, noise=0.3))
    return g


@pytest.mark.parametrize("method, options", [("ganspace", {"n_components": 3, "n_samples": 100, "layers": None}),
                                             ("sefa", {"n_components": 4, "layers": None})])
@pytest.mark.parametrize("definition, direction", [(ADD_A, 1.0), (REMOVE_A, -1.0)], ids=["add", "remove"])
def test_both_methods_train_on_flat_codes(flat_store, method, options, definition, direction):
    classifier = _exact_classifier()
    gamma = correlation_matrix(flat_store.select("train").attributes)
    g = _dlsgan_with_planted_first_layer(np.eye(4)[0])
    model, history, resolved = train_edit(method, flat_store, definition, classifier, gamma,
                                          {**options, "seed": 3}, name="edit", generator=g)
    n = model["normal"].numpy()
    assert model["type"] == "direction" and n.shape == (4,) and np.linalg.norm(n) == pytest.approx(1.0, abs=1e-5)
    assert direction * n[0] > 0.95  # the axis of a, from source to target
    (row,) = history
    assert row["epoch"] == 0 and row["component"] == 0 and row["sign"] in (-1, 1)
    assert row["score"] > 0.5 and row["score"] > row["runner_up_score"]
    assert resolved["config"] == {**options, "seed": 3}
    assert resolved["assignment"]["step"] == pytest.approx(assignment_step(*(
        flat_store.latents[(flat_store.split == "train") & (flat_store.attributes[:, 0] == v)] for v in
        ((0, 1) if direction > 0 else (1, 0)))))
    json.dumps(resolved)  # options.json-ready
    z = torch.as_tensor(flat_store.latents[:3])
    torch.testing.assert_close(apply_edit(model, z, 2.0) - z, 2.0 * model["normal"].expand(3, 4))
    if method == "ganspace":
        assert resolved["pca"]["pca_of"] == "train_codes" and resolved["pca"]["n_samples"] == 300


def test_a_method_reading_the_generator_needs_one(flat_store):
    gamma = correlation_matrix(flat_store.select("train").attributes)
    with pytest.raises(ValueError, match="needs the generator"):
        train_edit("sefa", flat_store, ADD_A, _exact_classifier(), gamma, {"n_components": 2, "layers": None})
    with pytest.raises(ValueError, match="unknown sefa options \\['alpha'\\]"):
        train_edit("sefa", flat_store, ADD_A, _exact_classifier(), gamma, {"alpha": 1.0},
                   generator=_dlsgan_with_planted_first_layer(np.eye(4)[0]))


@pytest.fixture(scope="module")
def wplus_store() -> LatentStore:
    """W+ codes (N, 4, 8) of the tiny StyleGAN2; a, b, c = signs of the first three entries of layer 0."""
    z = np.random.default_rng(7).standard_normal((300, 4, 8)).astype(np.float32)
    split = np.array(["train"] * 150 + ["val"] * 100 + ["test"] * 50)
    return LatentStore(latents=z, ids=np.array([f"i{i}" for i in range(300)]), split=split,
                       attributes=(z[:, 0, :3] > 0).astype(np.uint8), attribute_names=list(NAMES),
                       attrs={"latent_space": "stylegan2_wplus"})  # the faces projection's name for wplus


@pytest.mark.parametrize("method, options, zero_layers", [
    ("ganspace", {"n_components": 4, "n_samples": 300, "layers": [0, 1]}, [2, 3]),
    ("ganspace", {"n_components": 4, "n_samples": 300, "layers": None}, []),
    ("sefa", {"n_components": 4, "layers": None}, [3]),  # layer 3 feeds the last ToRGB only
    ("sefa", {"n_components": 4, "layers": [0]}, [1, 2, 3]),
])
def test_both_methods_train_on_wplus_codes(wplus_store, method, options, zero_layers):
    gamma = correlation_matrix(wplus_store.select("train").attributes)
    model, history, resolved = train_edit(method, wplus_store, ADD_A, _exact_classifier((4, 8)), gamma, options,
                                          name="add_a", generator=_tiny_stylegan())
    n = model["normal"].numpy()
    assert n.shape == (4, 8) and np.linalg.norm(n) == pytest.approx(1.0, abs=1e-5)
    used = [i for i in range(4) if i not in zero_layers]
    np.testing.assert_array_equal(n[zero_layers], 0.0)
    for i in used[1:]:  # the same style vector on every used layer
        np.testing.assert_allclose(n[i], n[used[0]], atol=1e-6)
    assert resolved["config"]["layers"] == used and history[0]["score"] >= history[0]["runner_up_score"]
    if method == "ganspace":
        assert resolved["pca"]["pca_of"] == "mapping" and resolved["pca"]["n_samples"] == 300


# ---------------------------------------------------------------------------------------------------------------
# The space of the codes decides what is decomposed (z and w codes have the same shape)


def test_the_mapping_is_sampled_from_the_generators_prior():
    u = _unit(np.random.default_rng(8), 8)
    g = _LinearMapping(u)
    plain = sample_mapping(g, 500, seed=2)  # a StyleGAN2's prior: N(0, I), exactly the draws it always took
    with torch.no_grad():
        expected = g.mapping(torch.randn(500, 8, generator=torch.Generator().manual_seed(2))).double().numpy()
    np.testing.assert_array_equal(plain, expected)
    s = torch.linspace(0.1, 2.0, 8)
    g.latent_prior = LatentPrior(8, "uniform", s)  # the DLSGAN generator reads z∘s, z ~ U(−√3, √3)
    scaled = sample_mapping(g, 500, seed=2, batch_size=128)
    z = LatentPrior(8, "uniform", s).sample(500, 2)
    assert float(z.abs().max()) <= np.sqrt(3) * 2.0 + 1e-6
    np.testing.assert_allclose(z.std(0).numpy(), s.numpy() * 1.0, rtol=0.2)  # unit-variance z, times s
    with torch.no_grad():
        np.testing.assert_allclose(scaled, g.mapping(z).double().numpy(), rtol=1e-6, atol=1e-6)


def _tiny_dls_stylegan():
    from latentedit.dlsgan.stylegan import DLSStyleGenerator

    torch.manual_seed(0)
    g = DLSStyleGenerator(8, 16, 1, (8, 8, 4), n_mlp=2).eval()
    g.latent_prior = LatentPrior(8, "normal", torch.linspace(0.5, 1.5, 8))
    return g


def _space_store(space: str) -> LatentStore:
    """Codes of ``space`` (z, w: (N, 8); wplus: (N, 6, 8)) whose attributes a, b, c are the signs of their first
    three entries (layer 0 for wplus)."""
    shape = (6, 8) if space == "wplus" else (8,)
    z = np.random.default_rng(9).standard_normal((300, *shape)).astype(np.float32)
    first = z[:, 0] if space == "wplus" else z
    split = np.array(["train"] * 150 + ["val"] * 100 + ["test"] * 50)
    return LatentStore(latents=z, ids=np.array([f"i{i}" for i in range(300)]), split=split,
                       attributes=(first[:, :3] > 0).astype(np.uint8), attribute_names=list(NAMES),
                       attrs={"latent_space": space})


@pytest.mark.parametrize("space", ["z", "w", "wplus"])
def test_ganspace_decomposes_the_space_of_the_codes(space):
    store, g = _space_store(space), _tiny_dls_stylegan()
    shape = store.latents.shape[1:]
    gamma = correlation_matrix(store.select("train").attributes)
    model, history, resolved = train_edit("ganspace", store, ADD_A, _exact_classifier(shape), gamma,
                                          {"n_components": 4, "n_samples": 400, "layers": None, "seed": 1},
                                          name="add_a", generator=g)
    n = model["normal"].numpy()
    assert n.shape == shape and np.linalg.norm(n) == pytest.approx(1.0, abs=1e-5)
    assert resolved["latent_space"] == space
    if space == "z":  # the generator's input: the PCA of the store's train codes
        assert resolved["pca"]["pca_of"] == "train_codes" and resolved["pca"]["n_samples"] == 150
        return
    assert resolved["pca"]["pca_of"] == "mapping" and resolved["pca"]["n_samples"] == 400
    comps, _, _ = pca(sample_mapping(g, 400, seed=1), 4)  # mapping(z∘s), z from the DLS prior
    v = comps[resolved["assignment"]["component"]]
    direction = n if space == "w" else n[0] * np.sqrt(6)  # W+: the same vector on all 6 layers, unit norm overall
    assert _abs_cos(direction, v) == pytest.approx(1.0, abs=1e-5)
    if space == "wplus":
        np.testing.assert_allclose(n, np.tile(n[:1], (6, 1)), atol=1e-6)


@pytest.mark.parametrize("space, rows, layers", [("z", 8, None), ("w", 8 + 8 + 8 + 8 + 4, None),
                                                 ("wplus", 8 + 8 + 8 + 8 + 4, [0, 1, 2, 3, 4])])
def test_sefa_factorises_the_weights_that_read_the_codes(space, rows, layers):
    store, g = _space_store(space), _tiny_dls_stylegan()
    shape = store.latents.shape[1:]
    gamma = correlation_matrix(store.select("train").attributes)
    model, _, resolved = train_edit("sefa", store, ADD_A, _exact_classifier(shape), gamma,
                                    {"n_components": 4, "layers": None}, name="add_a", generator=g)
    assert model["normal"].shape == shape and resolved["latent_space"] == space
    assert resolved["factorization"]["weight_rows"] == rows and resolved["config"]["layers"] == layers
    a, _ = style_weights(g, space)
    if space == "z":  # the mapping network's first linear layer, which reads z∘s after the PixelNorm
        np.testing.assert_array_equal(a, g.g.style[1].weight.detach().double().numpy())
    else:
        np.testing.assert_array_equal(a, style_weights(g.g, "wplus")[0])  # found inside the DLSGAN wrapper
    if space != "wplus":  # flat codes have no W+ layers
        with pytest.raises(ValueError, match="add_a: sefa: layers apply to wplus codes only"):
            train_edit("sefa", store, ADD_A, _exact_classifier(shape), gamma, {"n_components": 4, "layers": [0]},
                       name="add_a", generator=g)


def test_a_store_that_does_not_say_its_space_is_refused(flat_store):
    from latentedit.io.h5 import StoreError

    unsaid = LatentStore(flat_store.latents, flat_store.ids, flat_store.split, flat_store.attributes,
                         list(flat_store.attribute_names))
    gamma = correlation_matrix(flat_store.select("train").attributes)
    for method, options in [("ganspace", {"n_components": 2, "n_samples": 50, "layers": None}),
                            ("sefa", {"n_components": 2, "layers": None})]:
        with pytest.raises(StoreError, match="the latent store of edit: the latent store does not record its "
                                             "latent space"):
            train_edit(method, unsaid, ADD_A, _exact_classifier(), gamma, options, name="edit",
                       generator=_dlsgan_with_planted_first_layer(np.eye(4)[0]))


@pytest.mark.parametrize("arch", ["dcgan", "stylegan2"])
def test_the_digits_generator_network_carries_the_dls_prior(tmp_path, arch):
    from latentedit.dlsgan.checkpoint import save_dlsgan
    from latentedit.dlsgan.models import Discriminator

    g = _tiny_dls_stylegan() if arch == "stylegan2" else DLSGANGenerator(z_dim=8, canvas=16, width=4, max_channels=8)
    s = torch.linspace(0.5, 1.5, 8)
    save_dlsgan(tmp_path / "g.pt", {"generator": g, "discriminator": Discriminator(8, 16, 1, 4, 8, 16), "scale": s,
                                    "v": torch.ones(8), "options": {"distribution": "uniform"}, "history": []})
    net = load_generator_network("digits", tmp_path / "g.pt", "cpu")
    prior = latent_prior(net)
    assert prior.dim == 8 and prior.distribution == "uniform"
    torch.testing.assert_close(prior.scale, s)
    assert hasattr(net, "mapping") == (arch == "stylegan2")
