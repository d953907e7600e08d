"""PSNR, SSIM and the Fréchet distance (latentedit.metrics)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from latentedit.metrics import frechet_distance, psnr, ssim


def _images(seed: int, shape=(3, 1, 16, 16)) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_psnr_identical_is_clamped_large():
    x = _images(0)
    p = psnr(x, x)
    assert p.shape == (3,)
    assert torch.isfinite(p).all()
    torch.testing.assert_close(p, torch.full((3,), 10 * math.log10(4 / 1e-12)))  # mse clamped at 1e-12
    assert (p > 100).all()


@given(st.floats(1e-3, 2.0))
def test_psnr_constant_offset(c):
    x = _images(1, (2, 3, 8, 8))
    p = psnr(x + c, x)
    torch.testing.assert_close(p, torch.full((2,), 10 * math.log10(4 / c ** 2)), rtol=1e-4, atol=1e-3)


def test_psnr_data_range_and_per_image():
    x = torch.zeros(2, 1, 4, 4)
    y = x.clone()
    y[1] += 0.1
    y[0] += 0.5
    p = psnr(y, x, data_range=1.0)
    torch.testing.assert_close(p, torch.tensor([10 * math.log10(1 / 0.25), 10 * math.log10(1 / 0.01)]))


def test_ssim_identical_is_one():
    x = _images(2, (2, 3, 16, 16))
    torch.testing.assert_close(ssim(x, x), torch.ones(2), atol=1e-5, rtol=0)


def test_ssim_drops_monotonically_with_noise():
    x = _images(3, (4, 1, 32, 32)) * 0.8
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(4))
    scores = [float(ssim(x + sigma * noise, x).mean()) for sigma in (0.0, 0.05, 0.2, 0.8)]
    assert scores[0] == pytest.approx(1.0, abs=1e-5)
    assert all(a > b for a, b in zip(scores, scores[1:])), scores
    assert scores[-1] < 0.5


def test_ssim_is_symmetric_and_bounded():
    x, y = _images(5), _images(6)
    torch.testing.assert_close(ssim(x, y), ssim(y, x))
    assert (ssim(x, y).abs() <= 1).all()


def test_frechet_identical_sets_is_zero():
    a = np.random.default_rng(0).normal(size=(300, 6))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


@given(st.lists(st.floats(-5, 5), min_size=1, max_size=6), st.integers(0, 2 ** 16))
def test_frechet_of_shifted_set_is_squared_shift(shift, seed):
    shift = np.array(shift)
    a = np.random.default_rng(seed).normal(size=(200, len(shift))) * np.linspace(0.5, 2, len(shift))
    assert frechet_distance(a, a + shift) == pytest.approx(float((shift ** 2).sum()), abs=1e-6)


def test_frechet_of_shifted_gaussians_and_symmetry():
    rng = np.random.default_rng(1)
    shift = np.array([1.0, -2.0, 0.5])
    a = rng.normal(size=(20000, 3))
    b = rng.normal(size=(20000, 3)) + shift
    fd = frechet_distance(a, b)
    assert fd == pytest.approx(float((shift ** 2).sum()), abs=0.05)
    assert frechet_distance(b, a) == pytest.approx(fd, rel=1e-6)


def test_frechet_of_scaled_gaussians_closed_form():
    """N(0, σ₁²I) vs N(0, σ₂²I) in d dims: d·(σ₁ − σ₂)²."""
    rng = np.random.default_rng(2)
    a = rng.normal(size=(20000, 2)) * 1.0
    b = rng.normal(size=(20000, 2)) * 3.0
    assert frechet_distance(a, b) == pytest.approx(2 * (3.0 - 1.0) ** 2, rel=0.03)


def test_frechet_singular_covariance_is_finite():
    a = np.random.default_rng(3).normal(size=(5, 8))  # fewer samples than features
    fd = frechet_distance(a, a + 1.0)
    assert math.isfinite(fd) and fd == pytest.approx(8.0, abs=1e-4)
