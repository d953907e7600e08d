"""The Sinkhorn losses of latentedit.edits.sinkhorn: divergence properties, agreement with exact OT, the attribute
cost of the preservation loss."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest
import torch
from geomloss import SamplesLoss
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from latentedit.edits.sinkhorn import (DEFAULT_BLUR_FRACTION, SEMI_RELAXED_WARM_TOLERANCE, Potentials,
                                       _log_domain_updates, _warm_updates, annealing_steps, attribute_cost_loss,
                                       attribute_cost_matrix, bounding_diameter, default_blur, epsilon_schedule,
                                       flatten_codes, half_squared_distances, preservation_weights,
                                       semi_relaxed_divergence, sinkhorn_divergence, sinkhorn_loss)

seeds = st.integers(0, 2**31 - 1)


def _cloud(seed: int, n: int, d: int, shift: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.tensor(rng.normal(size=(n, d)) * scale + shift)  # float64


def _exact_ot(x: torch.Tensor, y: torch.Tensor) -> float:
    """min over permutations of mean ½‖x_i − y_σ(i)‖²: the exact OT cost between equal-size uniform clouds."""
    c = 0.5 * torch.cdist(x, y) ** 2
    rows, cols = linear_sum_assignment(c.numpy())
    return float(c[rows, cols].mean())


@given(seed=seeds, n=st.integers(3, 40), d=st.integers(1, 6))
def test_identical_clouds_have_zero_divergence(seed, n, d):
    x = _cloud(seed, n, d)
    assert abs(float(sinkhorn_loss(x, x.clone()))) < 1e-8 * (1 + float((x ** 2).sum(1).mean()))


@given(seed=seeds, n=st.integers(3, 30), m=st.integers(3, 30), d=st.integers(1, 5))
def test_symmetric(seed, n, m, d):
    x, y = _cloud(seed, n, d), _cloud(seed + 1, m, d, shift=1.0, scale=1.5)
    a = torch.tensor(np.random.default_rng(seed).uniform(0.1, 1.0, n))
    s_xy = float(sinkhorn_loss(x, y, a=a, blur=0.3))
    s_yx = float(sinkhorn_loss(y, x, b=a, blur=0.3))
    assert s_xy == pytest.approx(s_yx, rel=1e-6, abs=1e-9)


@given(seed=seeds, d=st.integers(1, 5), norm=st.floats(0.5, 5.0))
def test_translation_is_half_squared_shift_and_decreases(seed, d, norm):
    """For the quadratic cost, S_ε(α, α shifted by v) = ½‖v‖² exactly, at any blur (the cross term integrates to
    ⟨mean − mean, v⟩ = 0 under any coupling with equal marginals); moving x toward y along v lowers the loss."""
    x = _cloud(seed, 30, d)
    v = torch.tensor(np.random.default_rng(seed + 7).normal(size=d))
    v = v / v.norm() * norm
    y = x + v
    values = [float(sinkhorn_loss(x + t * v, y, blur=0.2, scaling=0.9)) for t in (0.0, 0.25, 0.5, 0.75)]
    expected = [0.5 * (1 - t) ** 2 * norm ** 2 for t in (0.0, 0.25, 0.5, 0.75)]
    assert values == pytest.approx(expected, rel=1e-3)
    assert all(a > b for a, b in zip(values, values[1:]))


@settings(max_examples=25)
@given(seed=seeds, d=st.integers(2, 5), shift=st.floats(0.0, 3.0), scale=st.floats(0.5, 2.0))
def test_agrees_with_exact_ot_at_small_blur(seed, d, shift, scale):
    """Uniform clouds of N = 20 points; exact OT by the Hungarian algorithm.

    Tolerance: at convergence |S_ε − OT| ≤ ε·log N (ε = blur²): OT ≤ OT_ε(α, β) ≤ OT + ε log N (a permutation
    plan has KL(π ‖ α⊗β) = log N), and 0 ≤ OT_ε(α, α) ≤ ε log N (the identity plan). GeomLoss runs one Sinkhorn
    iteration per annealing step, which stops short of convergence and *under*-estimates the dual value, most on
    clouds whose OT cost is small: the worst undershoot we measured was 5.0 % at scaling 0.95 (~1100 random and
    boundary cases: shift 0–3, scale 0.5–2, D = 2–5) but 0.32 % at 0.98 (200 boundary cases plus the worst cases at
    0.95), so we run 0.98 and allow 2 % below (and nothing beyond ε log N above).
    """
    n, blur = 20, 0.01
    x, y = _cloud(seed, n, d), _cloud(seed + 1, n, d, shift=shift, scale=scale)
    s, ot = float(sinkhorn_loss(x, y, blur=blur, scaling=0.98)), _exact_ot(x, y)
    bias = blur ** 2 * math.log(n)
    assert ot - bias - 0.02 * ot <= s <= ot + bias + 1e-9


@given(seed=seeds, n=st.integers(3, 20), m=st.integers(3, 20))
def test_weights_are_normalised(seed, n, m):
    rng = np.random.default_rng(seed)
    x, y = _cloud(seed, n, 3), _cloud(seed + 1, m, 3, shift=0.5)
    a, b = torch.tensor(rng.uniform(0.1, 1, n)), torch.tensor(rng.uniform(0.1, 1, m))
    assert float(sinkhorn_loss(x, y, a, b, blur=0.3)) == pytest.approx(
        float(sinkhorn_loss(x, y, 3 * a, 7 * b, blur=0.3)), rel=1e-9)


def test_uniform_weights_by_default():
    x, y = _cloud(0, 12, 3), _cloud(1, 9, 3, shift=1.0)
    assert float(sinkhorn_loss(x, y, blur=0.3)) == pytest.approx(
        float(sinkhorn_loss(x, y, torch.ones(12), torch.ones(9), blur=0.3)), rel=1e-12)


def test_wplus_codes_are_flattened():
    x, y = _cloud(0, 10, 12).reshape(10, 3, 4), _cloud(1, 8, 12, shift=0.5).reshape(8, 3, 4)
    assert flatten_codes(x).shape == (10, 12)
    assert float(sinkhorn_loss(x, y, blur=0.5)) == pytest.approx(
        float(sinkhorn_loss(x.reshape(10, 12), y.reshape(8, 12), blur=0.5)), rel=1e-12)


def test_gradient_points_from_source_to_target():
    x, y = _cloud(0, 50, 2).float().requires_grad_(True), _cloud(1, 50, 2, shift=2.0).float()
    sinkhorn_loss(x, y).backward()
    mean_step = -x.grad.mean(0)  # descent direction, averaged over the points
    assert float(torch.nn.functional.cosine_similarity(mean_step, y.mean(0) - x.detach().mean(0), dim=0)) > 0.9


def test_grad_mode_is_restored():
    x, y = _cloud(0, 10, 2), _cloud(1, 10, 2)
    with torch.no_grad():
        sinkhorn_loss(x, y)
        assert not torch.is_grad_enabled()


def test_bad_inputs_are_refused():
    x, y = _cloud(0, 10, 2), _cloud(1, 10, 3)
    with pytest.raises(ValueError, match="different spaces"):
        sinkhorn_loss(x, y)
    with pytest.raises(ValueError, match="weights for"):
        sinkhorn_loss(x, x, a=torch.ones(3))
    with pytest.raises(ValueError, match="non-negative"):
        sinkhorn_loss(x, x, a=-torch.ones(10))
    with pytest.raises(ValueError, match="zero"):
        default_blur(torch.zeros(5, 2))


def test_default_blur_is_a_fraction_of_the_rms_spread_of_each_cloud():
    x = _cloud(0, 4000, 64)
    assert default_blur(x) == pytest.approx(DEFAULT_BLUR_FRACTION * 8.0, rel=0.02)  # σ_rms = √64 for unit variance
    assert default_blur(x, fraction=0.5) == pytest.approx(0.5 * 8.0, rel=0.02)
    assert default_blur(x, x + 100.0) == pytest.approx(default_blur(x), rel=1e-9)  # within-cloud spreads only


def test_annealing_steps_formula():
    assert annealing_steps(52.0, 4.0, 0.8) == 2 + math.ceil(math.log(13) / math.log(1.25))
    assert annealing_steps(1.0, 2.0, 0.5) == 2


# ---------------------------------------------------------------------------------------------------------------
# Attribute cost (preservation loss)


@given(seed=seeds, n=st.integers(1, 6), m=st.integers(1, 6), n_attr=st.integers(1, 5))
def test_attribute_cost_matrix_matches_double_loop(seed, n, m, n_attr):
    rng = np.random.default_rng(seed)
    fx, fy = rng.uniform(size=(n, n_attr)), rng.uniform(size=(m, n_attr))
    w = rng.uniform(size=n_attr) * (rng.uniform(size=n_attr) > 0.3)
    expected = np.zeros((n, m))
    for i in range(n):
        for j in range(m):
            expected[i, j] = 0.5 * sum(w[k] * (fx[i, k] - fy[j, k]) ** 2 for k in range(n_attr))
    got = attribute_cost_matrix(torch.tensor(fx), torch.tensor(fy), torch.tensor(w))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-15)
    batched = attribute_cost_matrix(torch.tensor(fx)[None], torch.tensor(fy)[None], torch.tensor(w))
    np.testing.assert_allclose(batched[0].numpy(), expected, rtol=1e-12, atol=1e-15)


@given(seed=seeds, n=st.integers(3, 25), m=st.integers(3, 25), n_attr=st.integers(2, 6))
def test_attribute_cost_loss_is_sinkhorn_with_the_attribute_cost(seed, n, m, n_attr):
    """The √w-scaling route equals GeomLoss run with the formula itself as its ``cost`` (same blur, same
    diameter — the one thing GeomLoss would otherwise estimate from the raw, unscaled features)."""
    rng = np.random.default_rng(seed)
    fx, fy = torch.tensor(rng.uniform(size=(n, n_attr))), torch.tensor(rng.uniform(size=(m, n_attr)))
    w = torch.tensor(rng.uniform(0, 2, size=n_attr))
    w[0] = 0.0  # the edited attribute
    a, b = torch.tensor(rng.uniform(0.1, 1, n)), torch.tensor(rng.uniform(0.1, 1, m))
    blur, diameter = 0.1, 3.0
    ours = attribute_cost_loss(fx, fy, w, a, b, blur=blur, scaling=0.8, diameter=diameter)
    reference = SamplesLoss("sinkhorn", p=2, blur=blur, scaling=0.8, diameter=diameter, debias=True,
                            backend="tensorized", cost=partial(attribute_cost_matrix, w=w))
    expected = reference(a / a.sum(), fx, b / b.sum(), fy)
    assert float(ours) == pytest.approx(float(expected), rel=1e-9, abs=1e-12)


def test_attribute_cost_ignores_the_edited_attribute():
    rng = np.random.default_rng(0)
    fx, fy = torch.tensor(rng.uniform(size=(15, 4))), torch.tensor(rng.uniform(size=(15, 4)))
    w = preservation_weights(torch.tensor([1.0, 0.2, -0.5, 0.0]))  # γ_kk = 1 → w_k = 0 for k = 0
    fx2 = fx.clone()
    fx2[:, 0] = torch.tensor(rng.uniform(size=15)) * 10
    assert float(attribute_cost_loss(fx, fy, w, blur=0.1)) == pytest.approx(
        float(attribute_cost_loss(fx2, fy, w, blur=0.1)), rel=1e-9)


def test_attribute_cost_loss_with_nothing_to_preserve_is_zero_with_graph():
    fx = torch.rand(6, 3, requires_grad=True)
    loss = attribute_cost_loss(fx, torch.rand(6, 3), torch.zeros(3))
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert fx.grad is not None and float(fx.grad.abs().sum()) == 0.0


def test_preservation_weights():
    gamma = torch.tensor([0.3, 1.0, -0.4, 0.0])
    assert preservation_weights(gamma).tolist() == pytest.approx([0.7, 0.0, 1.4, 1.0])
    assert preservation_weights(gamma, absolute=True).tolist() == pytest.approx([0.7, 0.0, 0.6, 1.0])
    assert preservation_weights(gamma, edited=3).tolist() == pytest.approx([0.7, 0.0, 1.4, 0.0])


# ---------------------------------------------------------------------------------------------------------------
# The solver itself: GeomLoss's algorithm, cold; warm starts


@settings(max_examples=15)
@given(seed=seeds, n=st.integers(3, 30), m=st.integers(3, 30), layers=st.integers(1, 3))
def test_a_cold_solve_is_geomloss_in_value_and_gradient(seed, n, m, layers):
    rng = np.random.default_rng(seed)
    x = torch.tensor(rng.normal(size=(n, layers, 4))).requires_grad_(True)
    y = torch.tensor(rng.normal(size=(m, layers, 4)) + 0.5)
    a, b = torch.tensor(rng.uniform(0.1, 1, n)), torch.tensor(rng.uniform(0.1, 1, m))
    loss, _ = sinkhorn_divergence(x, y, a, b, blur=0.3, scaling=0.8)
    (grad,) = torch.autograd.grad(loss, x)
    xr = x.detach().reshape(n, -1).requires_grad_(True)
    reference = SamplesLoss("sinkhorn", p=2, blur=0.3, scaling=0.8, debias=True, backend="tensorized")(
        a / a.sum(), xr, b / b.sum(), y.reshape(m, -1))
    (grad_ref,) = torch.autograd.grad(reference, xr)
    assert float(loss) == pytest.approx(float(reference), rel=1e-9, abs=1e-12)
    torch.testing.assert_close(grad.reshape(n, -1), grad_ref, rtol=1e-7, atol=1e-10)


def _converged(x, y, blur):
    """Annealing at scaling 0.99, then 80 updates at the final ε: the reference a solve should approach."""
    _, state = sinkhorn_divergence(x.detach(), y, blur=blur, scaling=0.99)
    return sinkhorn_divergence(x, y, blur=blur, warm=state, tolerance=0.0, max_iterations=80)[0]


@pytest.mark.parametrize("d, n, max_updates", [(64, 256, 5), (16, 128, 12)])
def test_a_warm_start_is_as_accurate_as_the_cold_annealing(d, n, max_updates):
    """The next problem (a fresh batch of the same clouds, moved by 0.01) from the last one's potentials: its value
    within 1e-3 of the converged one and its gradient at least as close as a cold solve's, in fewer updates."""
    g = torch.Generator().manual_seed(0)
    src, tgt = torch.randn(4 * n, d, generator=g), torch.randn(4 * n, d, generator=g) + 0.3
    blur = default_blur(src, tgt, DEFAULT_BLUR_FRACTION)
    _, state = sinkhorn_divergence(src[:n], tgt[:n], blur=blur)
    x, y = (src[n:2 * n] + 0.01).requires_grad_(True), tgt[n:2 * n]
    ref = _converged(x, y, blur)
    (grad_ref,) = torch.autograd.grad(ref, x)
    errors, updates = {}, {}
    for name, warm in (("cold", None), ("warm", state)):
        loss, solved = sinkhorn_divergence(x, y, blur=blur, warm=warm)
        (grad,) = torch.autograd.grad(loss, x)
        errors[name] = (abs(float(loss - ref)) / float(ref), float((grad - grad_ref).norm() / grad_ref.norm()))
        updates[name] = solved.iterations
    assert errors["warm"][0] < 1e-3 and errors["warm"][1] <= errors["cold"][1], errors
    assert updates["warm"] <= max_updates and updates["warm"] <= updates["cold"], updates
    tighter, solved = sinkhorn_divergence(x, y, blur=blur, warm=state, tolerance=1e-5)
    assert solved.iterations > updates["warm"] and abs(float(tighter - ref)) / float(ref) < errors["warm"][0]


@pytest.mark.parametrize("d, n, max_updates", [(64, 256, 6), (16, 128, 12)])
def test_a_start_from_the_codes_own_potentials_is_as_accurate_as_the_cold_annealing(d, n, max_updates):
    """LW's tables: the same codes, solved against another batch of targets and moved by 0.01 since, start from the
    potentials they had there (no c-transform extension): value within 1e-3 of the converged one, gradient at least
    as close as a cold solve's, in fewer updates than the annealing."""
    g = torch.Generator().manual_seed(0)
    src, tgt = torch.randn(n, d, generator=g), torch.randn(3 * n, d, generator=g) + 0.3
    blur = default_blur(src, tgt, DEFAULT_BLUR_FRACTION)
    _, earlier = sinkhorn_divergence(src, tgt[:n], blur=blur)  # the targets' own potentials: from their last batch
    _, other = sinkhorn_divergence(torch.randn(n, d, generator=g), tgt[n:2 * n], blur=blur)
    start = Potentials(earlier.f_ba, other.g_ab, earlier.f_aa, other.g_bb)
    x, y = (src + 0.01).requires_grad_(True), tgt[n:2 * n]
    ref = _converged(x, y, blur)
    (grad_ref,) = torch.autograd.grad(ref, x)
    errors, updates = {}, {}
    for name, kwargs in (("cold", {}), ("start", {"start": start})):
        loss, solved = sinkhorn_divergence(x, y, blur=blur, **kwargs)
        (grad,) = torch.autograd.grad(loss, x)
        errors[name] = (abs(float(loss - ref)) / float(ref), float((grad - grad_ref).norm() / grad_ref.norm()))
        updates[name] = solved.iterations
    assert errors["start"][0] < 1e-3 and errors["start"][1] <= errors["cold"][1], errors
    assert updates["start"] <= max_updates < updates["cold"], updates


def test_start_potentials_are_checked():
    x, y = _cloud(0, 12, 3), _cloud(1, 10, 3, shift=1.0)
    _, state = sinkhorn_divergence(x, y, blur=0.3)
    with pytest.raises(ValueError, match="not both"):
        sinkhorn_divergence(x, y, blur=0.3, warm=state, start=state.potentials)
    with pytest.raises(ValueError, match="shapes"):
        sinkhorn_divergence(x[:11], y, blur=0.3, start=state.potentials)
    _, state = sinkhorn_divergence(x, y, blur=1.0)
    converged = {"blur": 1.0, "tolerance": 0.0, "max_iterations": 60}
    assert float(sinkhorn_divergence(x, y, start=state.potentials, **converged)[0]) == pytest.approx(
        float(sinkhorn_divergence(x, y, warm=state, **converged)[0]), rel=1e-9)  # same points: same solution


@pytest.mark.parametrize("warm", [False, True])
def test_given_target_costs_are_the_computed_ones(warm):
    """``cost_yy`` (LW gathers it from its targets' costs, computed once) gives the value and gradient of a solve that
    computes C(y, y) itself, cold and warm; it must fit y and y must be a constant."""
    x, y = _cloud(0, 12, 3).requires_grad_(True), _cloud(1, 10, 3, shift=1.0)
    _, state = sinkhorn_divergence(x.detach() - 0.05, y, blur=0.3)
    start = {"start": state.potentials} if warm else {}
    results = []
    for cost_yy in (None, half_squared_distances(y, y)):
        loss, _ = sinkhorn_divergence(x, y, blur=0.3, cost_yy=cost_yy, **start)
        results.append((float(loss), torch.autograd.grad(loss, x)[0]))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-12)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-10, atol=1e-12)
    # and they are the costs the solve uses: 1 more on every C(y, y) raises OT_ε(β, β) by 1, so S_ε falls by ½
    shifted, _ = sinkhorn_divergence(x, y, blur=0.3, cost_yy=half_squared_distances(y, y) + 1.0, **start)
    assert float(shifted) == pytest.approx(results[0][0] - 0.5, abs=1e-3)
    with pytest.raises(ValueError, match="cost_yy"):
        sinkhorn_divergence(x, y, blur=0.3, cost_yy=half_squared_distances(y[:9], y[:9]))
    with pytest.raises(ValueError, match="gradient"):
        sinkhorn_divergence(x, y.clone().requires_grad_(True), blur=0.3, cost_yy=half_squared_distances(y, y))


@pytest.mark.parametrize("offset", [0.0, 1.0e4])
def test_warm_updates_in_the_kernel_domain_are_the_log_domain_updates(offset):
    """The gemv updates of a warm solve (potentials absorbed into stabilised kernels) are the log-sum-exp updates, to
    rounding; potentials far from a solution (``offset``: every kernel entry overflows) continue in the log domain."""
    x, y = _cloud(0, 40, 8), _cloud(1, 30, 8, shift=0.4)
    a = torch.tensor(np.random.default_rng(2).uniform(0.1, 1, 40))
    a[:3] = 0  # codes of weight zero drop out in both
    a, b = a / a.sum(), torch.full((30,), 1 / 30, dtype=torch.float64)
    blur = default_blur(x, y)
    _, state = sinkhorn_divergence(x + 0.05, y, a, b, blur=blur)  # a solved neighbouring problem
    eps = blur ** 2
    C_xy, C_xx, C_yy = (half_squared_distances(p, q) for p, q in ((x, y), (x, x), (y, y)))
    start = tuple(p + offset for p in (state.f_ba, state.g_ab, state.f_aa, state.g_bb))
    kernel = _warm_updates(eps, C_xy, C_xx, C_yy, a, b, start, 12, tolerance=0.0)
    log = _log_domain_updates(eps, C_xy, C_xx, C_yy, a, b, start, 12, tolerance=0.0)
    assert kernel[4] == log[4] == 12
    for p, q in zip(kernel[:4], log[:4], strict=True):
        torch.testing.assert_close(p, q, rtol=1e-9, atol=1e-9)


def test_a_warm_solve_takes_the_autograd_update_s_value_and_gradient_from_its_kernels():
    """With y constant (LW's target codes) a warm solve's last update and its gradient in x come from the kernels;
    with y differentiable, from autograd through the soft-mins: the same value and the same gradient in x."""
    x0, y0 = _cloud(0, 40, 8), _cloud(1, 30, 8, shift=0.4)
    a = torch.tensor(np.random.default_rng(2).uniform(0.1, 1, 40))
    blur = default_blur(x0, y0)
    _, state = sinkhorn_divergence(x0 + 0.05, y0, a, blur=blur)
    results = []
    for y_grad in (False, True):
        x, y = x0.clone().requires_grad_(True), y0.clone().requires_grad_(y_grad)
        loss, solved = sinkhorn_divergence(x, y, a, blur=blur, warm=state)
        (grad,) = torch.autograd.grad(loss, x)
        results.append((float(loss), grad, solved.f_ba))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-12)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(results[0][2], results[1][2], rtol=1e-9, atol=1e-12)


def test_a_state_that_does_not_fit_starts_cold():
    x, y = _cloud(0, 12, 3), _cloud(1, 10, 3, shift=1.0)
    cold, state = sinkhorn_divergence(x, y, blur=0.3)
    assert state.fits(x, y, 0.3 ** 2) and not state.fits(x, y, 0.5 ** 2)
    assert float(sinkhorn_divergence(x, y, blur=0.5, warm=state)[0]) == float(sinkhorn_divergence(x, y, blur=0.5)[0])
    other = _cloud(2, 12, 4)
    assert float(sinkhorn_divergence(other, other + 1, blur=0.3, warm=state)[0]) == \
        float(sinkhorn_divergence(other, other + 1, blur=0.3)[0])


def test_codes_of_weight_zero_drop_out():
    x, y = _cloud(0, 12, 3), _cloud(1, 10, 3, shift=1.0)
    a = torch.ones(12, dtype=torch.float64)
    a[:4] = 0
    loss = float(sinkhorn_divergence(x, y, a, blur=0.3)[0])
    assert math.isfinite(loss)
    assert loss == pytest.approx(float(sinkhorn_divergence(x[4:], y, blur=0.3)[0]), rel=1e-9)


# ---------------------------------------------------------------------------------------------------------------
# The semi-relaxed divergence (LW's target_reach)


@settings(max_examples=10)
@given(seed=seeds, n=st.integers(3, 30), m=st.integers(3, 30))
def test_the_semi_relaxed_divergence_at_infinite_reach_is_the_balanced_one(seed, n, m):
    rng = np.random.default_rng(seed)
    x = torch.tensor(rng.normal(size=(n, 2, 3))).requires_grad_(True)
    y = torch.tensor(rng.normal(size=(m, 2, 3)) + 0.5)
    a, b = torch.tensor(rng.uniform(0.1, 1, n)), torch.tensor(rng.uniform(0.1, 1, m))
    relaxed, state = semi_relaxed_divergence(x, y, a, b, blur=0.3, scaling=0.8, reach=1e5)
    balanced, _ = sinkhorn_divergence(x, y, a, b, blur=0.3, scaling=0.8)
    assert state.iterations == len(epsilon_schedule(bounding_diameter(x.detach(), y), 0.3, 0.8))  # cold: annealed
    assert float(relaxed) == pytest.approx(float(balanced), rel=1e-6, abs=1e-9)
    torch.testing.assert_close(torch.autograd.grad(relaxed, x)[0], torch.autograd.grad(balanced, x)[0], rtol=1e-5,
                               atol=1e-8)


def test_the_semi_relaxed_gradient_is_the_derivative_of_its_value():
    """Central differences of the value against the envelope gradient, on a converged solve (scaling 0.998)."""
    x, y = _cloud(0, 12, 3), _cloud(1, 15, 3, shift=1.0)
    solve = partial(semi_relaxed_divergence, blur=0.3, scaling=0.998, reach=1.0)
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(solve(xg, y)[0], xg)
    h = 1e-5
    for i, k in ((0, 0), (3, 1), (7, 2)):
        step = torch.zeros_like(x)
        step[i, k] = h
        numeric = (float(solve(x + step, y)[0]) - float(solve(x - step, y)[0])) / (2 * h)
        assert float(grad[i, k]) == pytest.approx(numeric, rel=0.02, abs=1e-6)


@pytest.mark.parametrize("d, n, reach, max_updates", [(1024, 256, 4.4, 8), (16, 128, 0.5, 14)])
def test_a_semi_relaxed_start_from_the_codes_own_potentials_is_as_accurate_as_the_cold_annealing(d, n, reach,
                                                                                                 max_updates):
    """LW's tables with relaxed targets: the same codes, solved against another batch of targets and moved by 0.01
    since, start from their potentials there. At LW's tolerance for these solves the value is within 1e-3 of the
    converged one and the gradient at least as close as a cold solve's, in fewer updates than the annealing. The
    targets' updates are damped by 1/(1 + ε/ρ) (here ε/ρ ≈ 3–4, as LW's 0.2·δ gives on the digits' W+), so a solve
    settles more slowly than a balanced one: at the balanced solves' tolerance (1e-3) the value stops 2–4e-3 short."""
    g = torch.Generator().manual_seed(0)
    src, tgt = torch.randn(n, d, generator=g), torch.randn(3 * n, d, generator=g) + 0.3
    blur = default_blur(src, tgt, DEFAULT_BLUR_FRACTION)
    solve = partial(semi_relaxed_divergence, blur=blur, reach=reach)
    _, earlier = solve(src, tgt[:n])
    _, other = solve(torch.randn(n, d, generator=g), tgt[n:2 * n])
    start = Potentials(earlier.f_ba, other.g_ab, earlier.f_aa, other.g_bb)
    x, y = (src + 0.01).requires_grad_(True), tgt[n:2 * n]
    _, annealed = solve(x.detach(), y, scaling=0.99)
    ref = solve(x, y, start=annealed.potentials, tolerance=0.0, max_iterations=80)[0]
    (grad_ref,) = torch.autograd.grad(ref, x)
    errors, updates = {}, {}
    for name, kwargs in (("cold", {}), ("start", {"start": start, "tolerance": SEMI_RELAXED_WARM_TOLERANCE})):
        loss, solved = solve(x, y, **kwargs)
        (grad,) = torch.autograd.grad(loss, x)
        errors[name] = (abs(float(loss - ref)) / float(ref), float((grad - grad_ref).norm() / grad_ref.norm()))
        updates[name] = solved.iterations
    assert errors["start"][0] < 1e-3 and errors["start"][1] <= errors["cold"][1], errors
    assert updates["start"] <= max_updates < updates["cold"], updates
    with pytest.raises(ValueError, match="shapes"):
        solve(x[:-1], y, start=start)


def test_only_the_targets_marginal_is_relaxed():
    """Sources on one of two target modes: balanced, they must still cover the other mode; relaxed, they need not.
    Swap the roles (targets on one of two source modes) and the sources' marginal still holds: every source is
    carried, so the relaxed divergence stays of the balanced one's order."""
    one = _cloud(0, 40, 2, scale=0.3) + torch.tensor([4.0, 0.0], dtype=torch.float64)
    two = torch.cat([_cloud(1, 40, 2, scale=0.3) + torch.tensor([s, 0.0], dtype=torch.float64) for s in (4.0, -4.0)])
    kw = dict(blur=0.3, scaling=0.9)
    relaxed = partial(semi_relaxed_divergence, reach=1.0, **kw)
    assert float(relaxed(one, two)[0]) < 0.2 * float(sinkhorn_loss(one, two, **kw))
    assert float(relaxed(two, one)[0]) > 0.5 * float(sinkhorn_loss(two, one, **kw))
    with pytest.raises(ValueError, match="reach"):
        semi_relaxed_divergence(one, two, reach=0.0)
