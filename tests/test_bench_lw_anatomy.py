"""bench/lw_anatomy.py: the per-image slot outcomes its table is made of."""

import numpy as np

from conftest import load_bench

EMPTY = 10


def test_slot_outcomes_of_two_digit_sources():
    slot_outcomes = load_bench("lw_anatomy").slot_outcomes
    source = np.array([[3, 5, -1, -1]] * 4)
    edited = np.array([[3, 5, 7, EMPTY],  # clean: one more digit, both kept
                       [3, 8, 7, EMPTY],  # the count reached, the 5 redrawn as an 8
                       [3, EMPTY, EMPTY, 5],  # the 5 moved: emptied in its slot, the count unchanged
                       [3, 5, EMPTY, EMPTY]])  # nothing added
    out = slot_outcomes(edited, source, EMPTY, k=2)
    np.testing.assert_array_equal(out["target count"], [True, True, False, False])
    np.testing.assert_array_equal(out["source count"], [False, False, True, True])
    np.testing.assert_array_equal(out["digits kept"], [1.0, 0.5, 0.5, 1.0])
    np.testing.assert_array_equal(out["digits changed"], [0.0, 0.5, 0.0, 0.0])
    np.testing.assert_array_equal(out["digits emptied"], [0.0, 0.0, 0.5, 0.0])
    np.testing.assert_array_equal(out["clean edit"], [True, False, False, False])
