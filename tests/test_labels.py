"""Label correlations (latentedit.labels.correlations) and latent classifiers (latentedit.labels.classifiers)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from latentedit.io.checkpoints import CheckpointError, save_checkpoint
from latentedit.labels.classifiers import (ClassifierConfig, LatentClassifier, evaluate_classifiers,
                                           load_latent_classifiers, predict_logits, save_latent_classifiers,
                                           train_latent_classifiers)
from latentedit.labels.correlations import correlation_matrix, read_correlations, write_correlations

torch.set_num_threads(1)

# ---------------------------------------------------------------------------------------------------------------
# correlations


def _table(n11: int, n10: int, n01: int, n00: int) -> np.ndarray:
    """Two binary columns with the given 2×2 contingency counts (n_ab: column 0 = a, column 1 = b)."""
    rows = [(1, 1)] * n11 + [(1, 0)] * n10 + [(0, 1)] * n01 + [(0, 0)] * n00
    return np.array(rows, dtype=np.uint8)


@pytest.mark.parametrize("counts", [(3, 1, 2, 4), (5, 0, 0, 5), (2, 3, 4, 1), (10, 2, 7, 1)])
def test_phi_coefficient_of_a_contingency_table(counts):
    n11, n10, n01, n00 = counts
    phi = (n11 * n00 - n10 * n01) / math.sqrt((n11 + n10) * (n01 + n00) * (n11 + n01) * (n10 + n00))
    attrs = _table(*counts)
    signed = correlation_matrix(attrs, absolute=False)
    assert signed[0, 1] == pytest.approx(phi, abs=1e-12) and signed[1, 0] == pytest.approx(phi, abs=1e-12)
    assert correlation_matrix(attrs)[0, 1] == pytest.approx(abs(phi), abs=1e-12)
    np.testing.assert_allclose(np.diag(signed), 1.0)


def test_hand_made_table():
    # column 2 = not column 0 (φ = −1), column 3 constant
    attrs = _table(3, 1, 2, 4)
    attrs = np.column_stack([attrs, 1 - attrs[:, 0], np.ones(len(attrs), dtype=np.uint8)])
    g = correlation_matrix(attrs)
    phi01 = 10 / math.sqrt(600)  # (3·4 − 1·2) / √(4·6·5·5)
    expected = np.array([[1, phi01, 1, 0], [phi01, 1, phi01, 0], [1, phi01, 1, 0], [0, 0, 0, 1]])
    np.testing.assert_allclose(g, expected, atol=1e-12)
    assert correlation_matrix(attrs, absolute=False)[0, 2] == pytest.approx(-1.0)


@pytest.mark.parametrize("value", [0, 1])
def test_constant_columns_give_no_nan(value):
    attrs = np.full((20, 3), value, dtype=np.uint8)
    attrs[::2, 1] = 1 - value  # one varying column
    g = correlation_matrix(attrs)
    assert np.isfinite(g).all()
    np.testing.assert_array_equal(g, np.eye(3))


@given(hnp.arrays(np.uint8, st.tuples(st.integers(2, 40), st.integers(1, 6)), elements=st.integers(0, 1)))
def test_correlation_properties(attrs):
    g = correlation_matrix(attrs)
    assert np.isfinite(g).all() and (g >= 0).all() and (g <= 1).all()
    np.testing.assert_allclose(g, g.T)
    np.testing.assert_array_equal(np.diag(g), 1.0)
    varying = attrs.std(0) > 0
    if varying.sum() >= 2:  # agrees with numpy's Pearson correlation where it is defined
        ref = np.abs(np.corrcoef(attrs[:, varying].T.astype(float)))
        np.testing.assert_allclose(g[np.ix_(varying, varying)], ref, atol=1e-9)


def test_correlation_rejects_non_binary():
    with pytest.raises(ValueError, match="binary"):
        correlation_matrix(np.array([[0, 2], [1, 0]]))


# ---------------------------------------------------------------------------------------------------------------
# latent classifiers

FAST = ClassifierConfig(hidden=(32, 32), dropout=0.0, lr=3.0e-3, max_epochs=60, patience=8, seed=0)


def _synthetic(n: int, seed: int, d: int = 8, a: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian codes x (N, d) with attribute l = [x_l > 0]."""
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x, (x[:, :a] > 0).astype(np.uint8)


@pytest.fixture(scope="module")
def trained():
    (xtr, ytr), (xva, yva), (xte, yte) = _synthetic(1000, 0), _synthetic(300, 1), _synthetic(300, 2)
    model, history, metrics = train_latent_classifiers(xtr, ytr, xva, yva, FAST, "cpu",
                                                       attribute_names=["a", "b", "c"], latents_test=xte,
                                                       attrs_test=yte)
    return model, history, metrics, (xte, yte)


def test_classifier_learns_sign_attributes(trained):
    model, history, metrics, (xte, yte) = trained
    assert set(metrics["test"]) == {"a", "b", "c"}
    assert min(metrics["test"].values()) > 0.9, metrics["test"]
    assert metrics["test"] == evaluate_classifiers(model, xte, yte)
    assert min(metrics["test_balanced"].values()) > 0.9
    assert metrics["best_epoch"] == max(r["epoch"] for r in history if r["best"])
    assert not model.training


def test_save_load_round_trip(trained, tmp_path):
    model, _, metrics, (xte, _) = trained
    path = tmp_path / "classifiers.pt"
    save_latent_classifiers(path, model, metrics)
    loaded = load_latent_classifiers(path)
    assert loaded.attribute_names == ["a", "b", "c"]
    assert torch.equal(predict_logits(loaded, xte), predict_logits(model, xte))
    save_checkpoint(tmp_path / "other.pt", {"kind": "digits_oracle", "spec": {}, "state_dict": {}})
    with pytest.raises(CheckpointError, match="latent_classifiers"):
        load_latent_classifiers(tmp_path / "other.pt")


def test_load_rejects_mismatched_state(trained, tmp_path):
    model, _, _, _ = trained
    state = model.state_dict()
    state.pop(next(iter(state)))
    save_checkpoint(tmp_path / "bad.pt", {"kind": "latent_classifiers", "spec": model.spec(), "state_dict": state,
                                          "attribute_names": model.attribute_names})
    with pytest.raises(CheckpointError, match="missing keys"):
        load_latent_classifiers(tmp_path / "bad.pt")


def test_early_stopping_on_random_labels():
    x, _ = _synthetic(600, 3)
    xv, _ = _synthetic(200, 4)
    rng = np.random.default_rng(5)
    y, yv = rng.integers(0, 2, (600, 2), dtype=np.uint8), rng.integers(0, 2, (200, 2), dtype=np.uint8)
    cfg = ClassifierConfig(hidden=(64,), dropout=0.0, lr=1.0e-2, max_epochs=200, patience=3, seed=0)
    _, history, metrics = train_latent_classifiers(x, y, xv, yv, cfg, "cpu")
    assert metrics["stopped_early"] and len(history) < cfg.max_epochs
    assert len(history) == metrics["best_epoch"] + 1 + cfg.patience  # stopped exactly `patience` epochs later
    assert 0.3 < metrics["val_mean_accuracy"] < 0.7  # nothing to learn


def test_accuracy_monitor_and_wplus_codes():
    x, y = _synthetic(400, 6, d=12)
    xv, yv = _synthetic(100, 7, d=12)
    cfg = ClassifierConfig(hidden=(16,), max_epochs=3, patience=3, monitor="val_accuracy")
    model, history, metrics = train_latent_classifiers(x.reshape(-1, 3, 4), y, xv.reshape(-1, 3, 4), yv, cfg)
    assert model.input_shape == (3, 4) and len(history) == 3
    assert predict_logits(model, xv.reshape(-1, 3, 4)).shape == (100, 3)
    with pytest.raises(ValueError, match="expected codes"):
        model(torch.zeros(2, 12))


def test_config_validation():
    assert ClassifierConfig(hidden=[8, 4]).hidden == (8, 4)
    with pytest.raises(ValueError, match="monitor"):
        ClassifierConfig(monitor="accuracy")
    with pytest.raises(ValueError):
        LatentClassifier((4,), 2, attribute_names=["only_one"])


def test_correlations_round_trip_in_any_order(tmp_path):
    names = ["count_1", "has_0", "has_7"]
    gamma = correlation_matrix(np.random.default_rng(0).integers(0, 2, (200, 3)))
    path = tmp_path / "correlations.csv"
    write_correlations(path, gamma, names)
    read, read_names = read_correlations(path)
    assert read_names == names
    np.testing.assert_allclose(read, gamma, rtol=1e-5)
    reordered, order = read_correlations(path, ["has_7", "count_1", "has_0"])
    assert order == ["has_7", "count_1", "has_0"]
    np.testing.assert_allclose(reordered, gamma[np.ix_([2, 0, 1], [2, 0, 1])], rtol=1e-5)


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("has_0,", "has_9,", 1), "disagree"),  # a header name that is not a row name
    (lambda t: t.rsplit("\n", 2)[0] + "\n", "disagree"),  # a row missing
    (lambda t: t.replace(",1,0,0", ",x,0,0"), "not a number"),
    (lambda t: t.replace(",1,0,0", ",inf,0,0"), "non-finite"),
    (lambda t: "", "empty"),
])
def test_read_correlations_names_the_broken_file(tmp_path, edit, message):
    path = tmp_path / "correlations.csv"
    write_correlations(path, np.eye(3), ["count_1", "has_0", "has_7"])
    path.write_text(edit(path.read_text()))
    with pytest.raises(ValueError, match=message) as err:
        read_correlations(path)
    assert str(path) in str(err.value)


def test_read_correlations_refuses_other_attributes(tmp_path):
    path = tmp_path / "correlations.csv"
    write_correlations(path, np.eye(2), ["a", "b"])
    with pytest.raises(ValueError, match="expected"):
        read_correlations(path, ["a", "c"])
