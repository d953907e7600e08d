"""bench/ot_pairing.py: which (source, target) pairs keep the source's digits, and how much of a plan lands on them."""

import numpy as np
import pytest
import torch

from conftest import load_bench


@pytest.fixture(scope="module")
def bench():
    return load_bench("ot_pairing")


def test_a_clean_pair_holds_every_source_digit_in_its_slot(bench):
    source = np.array([[3, -1, -1, -1], [-1, 5, 2, -1]])
    target = np.array([[3, 7, -1, -1],  # keeps the 3 in slot 0
                       [-1, 3, 5, -1],  # holds a 3, but not in slot 0
                       [-1, 5, 2, 9],  # keeps the 5 and the 2
                       [4, 5, 8, -1]])  # keeps the 5, redraws the 2
    np.testing.assert_array_equal(bench.clean_pairs(source, target),
                                  [[True, False, False, False], [False, False, True, False]])


def test_the_shares_follow_the_features(bench):
    """64 sources, each with one clean partner among 64 targets. Features that put every source beside its partner
    pair all of them under every rule; features that put it beside the next target pair none."""
    rng = np.random.default_rng(0)
    n = 64
    clean = np.eye(n, dtype=bool)
    points = torch.as_tensor(rng.standard_normal((n, 8)) * 10)
    near = points + 0.01 * torch.as_tensor(rng.standard_normal((n, 8)))
    shares = bench.pairing_shares(points, near, clean)
    assert shares["exact OT"] == 1.0 and shares["nearest target"] == 1.0
    assert shares["entropic plan"] > 0.9
    shares = bench.pairing_shares(points, near.roll(1, 0), clean)
    assert shares["exact OT"] == 0.0 and shares["nearest target"] == 0.0 and shares["entropic plan"] < 0.1
