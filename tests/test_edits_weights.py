"""Balanced source/target weights over attribute combinations (latentedit.edits.weights)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from latentedit.edits.weights import balanced_weights, combination_counts

# Columns (A, B). Combinations: 00 → n_s 2, n_t 1; 01 → 1, 3; 10 → 1, 2; 11 → 3, 0 (source only).
SOURCE = np.array([[0, 0], [0, 0], [0, 1], [1, 0], [1, 1], [1, 1], [1, 1]], dtype=np.uint8)
TARGET = np.array([[0, 0], [0, 1], [0, 1], [0, 1], [1, 0], [1, 0]], dtype=np.uint8)


def test_hand_made_table():
    a, b = balanced_weights(SOURCE, TARGET)
    # |C| = 3 shared combinations (00, 01, 10); a_i = 1/(3·n_s), b_j = 1/(3·n_t); 11 has no target → 0.
    np.testing.assert_allclose(a, [1 / 6, 1 / 6, 1 / 3, 1 / 3, 0, 0, 0], rtol=1e-12)
    np.testing.assert_allclose(b, [1 / 3, 1 / 9, 1 / 9, 1 / 9, 1 / 6, 1 / 6], rtol=1e-12)
    assert a.sum() == pytest.approx(1.0) and b.sum() == pytest.approx(1.0)
    # The pair mass 1/(|C|·n_s·n_t) within a combination has these marginals, e.g. for 01: 3 targets × 1/(3·1·3).
    assert a[2] == pytest.approx(3 * 1 / (3 * 1 * 3))


def test_counts():
    assert combination_counts(SOURCE, TARGET) == {(0, 0): (2, 1), (0, 1): (1, 3), (1, 0): (1, 2), (1, 1): (3, 0)}
    assert combination_counts(SOURCE, TARGET, columns=[0]) == {(0,): (3, 4), (1,): (4, 2)}


def test_unmatched_combination_is_logged(caplog):
    with caplog.at_level(logging.WARNING, logger="latentedit.edits.weights"):
        balanced_weights(SOURCE, TARGET)
    assert "weight 0 for 3/7 source and 0/6 target" in caplog.text


def test_column_subset():
    a, b = balanced_weights(SOURCE, TARGET, columns=[0])  # A = {first column}: 0 → (3, 4), 1 → (4, 2)
    np.testing.assert_allclose(a, [1 / 6] * 3 + [1 / 8] * 4)
    np.testing.assert_allclose(b, [1 / 8] * 4 + [1 / 4] * 2)


def test_min_count_drops_rare_combinations():
    source, target = np.array([[0], [0], [0], [1]]), np.array([[0], [0], [1], [1], [1]])
    a, b = balanced_weights(source, target, min_count=2)  # combination 1 has a single source code → dropped
    np.testing.assert_allclose(a, [1 / 3, 1 / 3, 1 / 3, 0])
    np.testing.assert_allclose(b, [1 / 2, 1 / 2, 0, 0, 0])
    with pytest.raises(ValueError, match="min_count"):
        balanced_weights(source, target, min_count=0)


def test_no_shared_combination_is_an_error():
    with pytest.raises(ValueError, match="no attribute combination"):
        balanced_weights(np.array([[0], [0]]), np.array([[1]]))


def test_empty_attribute_set_gives_uniform_weights():
    a, b = balanced_weights(np.zeros((4, 0)), np.zeros((5, 0)))
    np.testing.assert_allclose(a, 0.25)
    np.testing.assert_allclose(b, 0.2)


def test_bad_shapes():
    with pytest.raises(ValueError, match="attribute tables"):
        balanced_weights(np.zeros((4, 2)), np.zeros((5, 3)))


tables = st.integers(1, 4).flatmap(lambda k: st.tuples(
    arrays(np.uint8, st.tuples(st.integers(1, 30), st.just(k)), elements=st.integers(0, 1)),
    arrays(np.uint8, st.tuples(st.integers(1, 30), st.just(k)), elements=st.integers(0, 1))))


@given(tables)
def test_every_shared_combination_gets_equal_mass_on_both_sides(pair):
    source, target = pair
    counts = combination_counts(source, target)
    shared = [c for c, (ns, nt) in counts.items() if ns and nt]
    if not shared:
        with pytest.raises(ValueError):
            balanced_weights(source, target)
        return
    a, b = balanced_weights(source, target)
    assert a.sum() == pytest.approx(1.0) and b.sum() == pytest.approx(1.0)
    for combo, (ns, nt) in counts.items():
        in_s = np.all(source == np.array(combo, dtype=np.uint8), axis=1)
        in_t = np.all(target == np.array(combo, dtype=np.uint8), axis=1)
        expected_mass = 1 / len(shared) if combo in shared else 0.0
        assert a[in_s].sum() == pytest.approx(expected_mass)
        assert b[in_t].sum() == pytest.approx(expected_mass)
        if combo in shared:  # uniform within a combination: a_i = 1/(|C|·n_s)
            np.testing.assert_allclose(a[in_s], 1 / (len(shared) * ns))
            np.testing.assert_allclose(b[in_t], 1 / (len(shared) * nt))
