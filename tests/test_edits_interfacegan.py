"""InterFaceGAN (latentedit.edits.interfacegan): the SVM normal and the edit along it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from latentedit.edits.interfacegan import fit_direction, signed_distance
from latentedit.edits.model import apply_edit, direction_parameters

torch.set_num_threads(1)


def _blobs(d: int, n: int, shift: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two unit Gaussian blobs at ±shift·u, u a random unit vector; returns (positive, negative, u)."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(d)
    u /= np.linalg.norm(u)
    pos = rng.standard_normal((n, d)) + shift * u
    neg = rng.standard_normal((n, d)) - shift * u
    return pos.astype(np.float32), neg.astype(np.float32), u


@pytest.mark.parametrize("solver", ["svc", "linear_svc"])
@pytest.mark.parametrize("seed", [0, 1])
def test_normal_recovers_the_separating_direction(solver, seed):
    # overlapping blobs (1σ from the origin each): many support vectors pin the normal down (cos ≈ 0.99); well
    # separated blobs leave it to a handful of extreme codes
    pos, neg, u = _blobs(16, 1000, 1.0, seed)
    normal, intercept, acc = fit_direction(pos, neg, C=1.0, seed=seed, solver=solver)
    assert normal.shape == (16,) and normal.dtype == np.float32
    assert np.linalg.norm(normal) == pytest.approx(1.0, abs=1e-6)
    assert float(normal @ u) > 0.95  # cosine with u, and points from negative to positive
    assert acc > 0.8 and abs(intercept) < 0.2  # Bayes accuracy Φ(1) ≈ 0.84; blobs symmetric about the origin
    assert (signed_distance(pos, normal, intercept) > 0).mean() > 0.8
    assert (signed_distance(neg, normal, intercept) < 0).mean() > 0.8


def test_swapping_sides_flips_the_normal():
    pos, neg, _ = _blobs(8, 200, 2.0, 3)
    n1, b1, _ = fit_direction(pos, neg)
    n2, b2, _ = fit_direction(neg, pos)
    np.testing.assert_allclose(n1, -n2, atol=1e-3)
    assert b1 == pytest.approx(-b2, abs=1e-3)


def test_subsampling_and_balance():
    pos, neg, u = _blobs(8, 1000, 1.5, 4)
    normal, _, _ = fit_direction(pos[:200], neg, max_samples=150, seed=0)  # 150 codes a side
    assert float(normal @ u) > 0.9
    a = fit_direction(pos, neg, max_samples=100, seed=7)
    b = fit_direction(pos, neg, max_samples=100, seed=7)
    np.testing.assert_array_equal(a[0], b[0])  # deterministic given the seed


def test_wplus_codes_are_flattened():
    pos, neg, u = _blobs(12, 600, 1.5, 5)
    normal, _, acc = fit_direction(pos.reshape(-1, 3, 4), neg.reshape(-1, 3, 4))
    assert normal.shape == (3, 4) and np.linalg.norm(normal) == pytest.approx(1.0, abs=1e-6)
    assert float(normal.reshape(-1) @ u) > 0.95 and acc > 0.85
    z = torch.from_numpy(pos[:5].reshape(-1, 3, 4))
    moved = apply_edit(_direction_model(normal), z, 2.0)
    torch.testing.assert_close(moved - z, 2.0 * torch.from_numpy(normal).expand(5, 3, 4))


def _direction_model(normal) -> dict:
    """The parts of an edit model that applying a direction reads (latentedit.edits.model)."""
    return direction_parameters(normal, 0.0)


@given(alpha=st.floats(-5, 5, allow_nan=False), seed=st.integers(0, 1000))
def test_a_direction_edit_moves_along_the_normal_by_alpha(alpha, seed):
    rng = np.random.default_rng(seed)
    normal = rng.standard_normal(6)
    normal = normal / np.linalg.norm(normal)
    z = torch.as_tensor(rng.standard_normal((4, 6)))  # float64: exact to 1e-12
    moved = apply_edit(_direction_model(normal), z, alpha)
    assert moved.dtype == torch.float64
    np.testing.assert_allclose((moved - z).numpy(), np.broadcast_to(alpha * normal, z.shape), atol=1e-12)
    np.testing.assert_allclose(signed_distance(moved, normal) - signed_distance(z, normal), alpha, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm((moved - z).numpy(), axis=1), abs(alpha), atol=1e-12)


def test_a_direction_edit_needs_a_finite_step():
    for alpha in (None, float("nan")):
        with pytest.raises(ValueError, match="finite step"):
            apply_edit(_direction_model(np.array([1.0, 0.0])), torch.zeros(2, 2), alpha)


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="solver"):
        fit_direction(np.zeros((2, 2)), np.ones((2, 2)), solver="lda")
    with pytest.raises(ValueError, match="one shape"):
        fit_direction(np.zeros((2, 2)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="at least one"):
        fit_direction(np.zeros((0, 2)), np.ones((2, 2)))
