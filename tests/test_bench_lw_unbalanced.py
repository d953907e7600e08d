"""bench/lw_unbalanced.py: its stand-in for LW's Sinkhorn solver is LW's loss when balanced (value and gradient, W+
codes, weighted), and with a reach it stops paying for target mass out of reach; δ is the median distance to the
nearest target."""

import numpy as np
import pytest
import torch

from conftest import load_bench
from latentedit.edits.sinkhorn import sinkhorn_divergence


@pytest.fixture(scope="module")
def bench():
    return load_bench("lw_unbalanced")


def _clouds(seed=0, n=20, m=24):
    rng = np.random.default_rng(seed)
    x = torch.tensor(rng.normal(size=(n, 3, 4))).requires_grad_(True)  # W+ shaped: 3 layers of 4
    y = torch.tensor(rng.normal(size=(m, 3, 4)) + 0.5)
    a, b = torch.tensor(rng.uniform(0.1, 1, n)), torch.tensor(rng.uniform(0.1, 1, m))
    return x, y, a, b


def test_balanced_stand_in_is_lws_loss_in_value_and_gradient(bench):
    x, y, a, b = _clouds()
    ours, _ = sinkhorn_divergence(x, y, a, b, blur=0.3, scaling=0.8)
    (grad,) = torch.autograd.grad(ours, x)
    # the warm-start arguments LW passes are accepted and ignored; no state comes back (every solve cold)
    theirs, state = bench.unbalanced_divergence(None)(x, y, a, b, blur=0.3, scaling=0.8, start=None, warm=None,
                                                      tolerance=1e-3, cost_yy=None)
    (grad_theirs,) = torch.autograd.grad(theirs, x)
    assert state is None
    assert theirs.item() == pytest.approx(ours.item(), rel=1e-9)
    torch.testing.assert_close(grad_theirs, grad, rtol=1e-7, atol=1e-10)


def test_with_a_reach_far_target_mass_costs_little(bench):
    x, y, _, _ = _clouds()
    x = x.detach()
    far = torch.cat([y, y[:6] + 50.0])  # a fifth of the targets copied far out of reach
    balanced = bench.unbalanced_divergence(None)
    unbalanced = bench.unbalanced_divergence(1.0)
    near_b, far_b = float(balanced(x, y, blur=0.3)[0]), float(balanced(x, far, blur=0.3)[0])
    near_u, far_u = float(unbalanced(x, y, blur=0.3)[0]), float(unbalanced(x, far, blur=0.3)[0])
    assert far_b > 100 * near_b  # balanced: the far mass must be carried (≈ ⅕ · ½ · 50² · 12 = 3000)
    assert near_u < near_b  # unbalanced: even near mass may be destroyed rather than carried
    assert far_u < 1.1 * near_u  # the far fifth is left alone, at a price bounded by ρ = reach², not carried


def test_nearest_target_distance_is_the_median_of_nearest_distances(bench):
    source = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 20.0]])
    target = torch.tensor([[1.0, 0.0], [10.0, 3.0], [0.0, 24.0], [100.0, 100.0]])
    assert bench.nearest_target_distance(source, target) == pytest.approx(3.0)  # nearest: 1, 3, 4
    assert bench.nearest_target_distance(source[:, None, :], target[:, None, :]) == pytest.approx(3.0)  # W+
