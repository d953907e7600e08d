"""The dynamic latent scale and its companions (latentedit.dlsgan.scale).

s = √d·√v/‖√v‖₂;  L_enc = mean((z − z')²∘s²);  v = mean of z'² over the last N predictions, or an EMA of it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from latentedit.dlsgan.scale import (VarianceTracker, differential_entropy, dynamic_scale, encoder_loss,
                                     sample_latent)

variances = st.integers(1, 64).flatmap(
    lambda d: arrays(np.float64, d, elements=st.floats(1e-4, 1e4, allow_nan=False, allow_infinity=False)))


@given(variances)
def test_scale_has_norm_sqrt_d(v):
    s = dynamic_scale(torch.from_numpy(v))
    assert s.shape == (len(v),)
    assert float(s.norm()) == pytest.approx(math.sqrt(len(v)), rel=1e-9)
    assert (s > 0).all()


@given(variances, st.floats(1e-3, 1e3))
def test_scale_invariant_to_rescaling_v(v, c):
    torch.testing.assert_close(dynamic_scale(torch.from_numpy(c * v)), dynamic_scale(torch.from_numpy(v)),
                               rtol=1e-9, atol=1e-12)


@given(variances)
def test_scale_squared_proportional_to_v(v):
    s = dynamic_scale(torch.from_numpy(v)).numpy()
    # the formula itself, and its consequence s_i² / s_j² = v_i / v_j
    np.testing.assert_allclose(s, math.sqrt(len(v)) * np.sqrt(v) / np.linalg.norm(np.sqrt(v)), rtol=1e-9)
    np.testing.assert_allclose(s ** 2 / s[0] ** 2, v / v[0], rtol=1e-9)


@given(st.integers(1, 64), st.floats(1e-4, 1e4))
def test_uniform_variance_gives_unit_scale(d, value):
    torch.testing.assert_close(dynamic_scale(torch.full((d,), value, dtype=torch.float64)),
                               torch.ones(d, dtype=torch.float64))


@given(variances, st.sampled_from(["normal", "uniform"]))
def test_entropy_never_above_unit_scale(v, dist):
    """Σ log s ≤ 0 whenever ‖s‖ = √d (AM–GM): the DLS never adds entropy, equality iff s ≡ 1."""
    s = dynamic_scale(torch.from_numpy(v))
    d = len(v)
    h, h1 = differential_entropy(s, dist), differential_entropy(torch.ones(d), dist)
    assert h == pytest.approx(h1 + float(torch.log(s).sum()), abs=1e-6)
    assert h <= h1 + 1e-9


def test_entropy_closed_forms():
    assert differential_entropy(torch.ones(4), "normal") == pytest.approx(4 * 0.5 * math.log(2 * math.pi * math.e))
    assert differential_entropy(torch.ones(3), "uniform") == pytest.approx(3 * math.log(2 * math.sqrt(3)))
    s = torch.tensor([2.0, 0.5])
    assert differential_entropy(s, "normal") == pytest.approx(2 * 0.5 * math.log(2 * math.pi * math.e))
    with pytest.raises(ValueError, match="cauchy"):
        differential_entropy(s, "cauchy")


@given(st.integers(1, 5), st.integers(1, 8), st.integers(0, 2 ** 16))
def test_encoder_loss_formula(b, d, seed):
    gen = torch.Generator().manual_seed(seed)
    z, zp, s = torch.randn(b, d, generator=gen), torch.randn(b, d, generator=gen), torch.rand(d, generator=gen)
    explicit = sum(((z[i, j] - zp[i, j]) * s[j]) ** 2 for i in range(b) for j in range(d)) / (b * d)
    torch.testing.assert_close(encoder_loss(z, zp, s), explicit)
    torch.testing.assert_close(encoder_loss(z, zp, torch.ones(d)), torch.nn.functional.mse_loss(zp, z))


@pytest.mark.parametrize("dist", ["normal", "uniform"])
def test_sample_latent_unit_variance(dist):
    z = sample_latent(20000, 3, dist, torch.Generator().manual_seed(0))
    assert z.shape == (20000, 3)
    torch.testing.assert_close(z.var(0), torch.ones(3), atol=0.05, rtol=0)
    if dist == "uniform":
        assert z.abs().max() <= math.sqrt(3)
    with pytest.raises(ValueError, match="laplace"):
        sample_latent(2, 2, "laplace")


# ----------------------------------------------------------------------------------------------- VarianceTracker


def test_tracker_starts_at_one():
    t = VarianceTracker(5, "moving_average", window=10)
    torch.testing.assert_close(t.v, torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close(dynamic_scale(t.v), torch.ones(5, dtype=torch.float64))


@given(st.integers(1, 12), st.lists(st.integers(1, 9), min_size=1, max_size=8), st.integers(0, 2 ** 16))
def test_moving_average_is_mean_of_last_window_samples(window, batch_sizes, seed):
    """v = mean of z'² over the last ``window`` samples, the buffer starting as ``window`` rows of the prior 1."""
    gen = torch.Generator().manual_seed(seed)
    t = VarianceTracker(3, "moving_average", window=window)
    seen = [torch.ones(window, 3, dtype=torch.float64)]
    for b in batch_sizes:
        zp = torch.randn(b, 3, generator=gen) * torch.tensor([0.5, 1.0, 3.0])
        seen.append(zp.double())
        v = t.update(zp)
        expected = (torch.cat(seen) ** 2)[-window:].mean(0)  # prior rows are 1² = 1
        torch.testing.assert_close(v, expected)
        torch.testing.assert_close(t.v, expected)
    torch.testing.assert_close(t.state_dict()["v"], t.v)


def test_moving_average_accepts_grad_tensors_without_tracking():
    t = VarianceTracker(2, window=4)
    zp = torch.randn(3, 2, requires_grad=True)
    v = t.update(zp * 2)
    assert not v.requires_grad


@given(st.floats(0.0, 0.999), st.integers(1, 5), st.integers(0, 2 ** 16))
def test_ema_update(beta, steps, seed):
    gen = torch.Generator().manual_seed(seed)
    t = VarianceTracker(4, "ema", beta=beta)
    v = torch.ones(4, dtype=torch.float64)
    for _ in range(steps):
        zp = torch.randn(6, 4, generator=gen)
        v = beta * v + (1 - beta) * (zp.double() ** 2).mean(0)
        t.update(zp)
    torch.testing.assert_close(t.v, v)


def test_tracker_rejects_unknown_mode():
    with pytest.raises(ValueError, match="median"):
        VarianceTracker(3, "median")
