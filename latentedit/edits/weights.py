"""Sample weights that balance attribute combinations between source and target codes.

For an attribute set A and the combination c = A(i) of code i (its row of A's labels),

    a_i = 1 / (|C| · n_s^A(c)),    b_j = 1 / (|C| · n_t^A(c)),    C = combinations present on both sides,

where n_s^A(c), n_t^A(c) count the source and target codes showing c. Equivalently, a source/target pair (i, j)
sharing c gets the joint mass 1 / (|C| · n_s^A(c) · n_t^A(c)) — the 1/(n_s^A·n_t^A) of the paper — whose marginals
are a and b. Each side then puts the same mass 1/|C| on every shared combination, so the cheapest transport moves
codes *within* a combination: the edit is not rewarded for changing the other attributes just because they are
distributed differently among codes with and without the edited attribute (e.g. "has glasses" correlates with "is
old"). Both a and b sum to 1.

Edge cases (a decision, not in the paper): a combination seen on one side only (or fewer than ``min_count`` times on
either side) cannot be matched without changing another attribute, so its codes get weight 0 and the number of
codes dropped on each side is logged as a warning; if no combination is shared, a ValueError is raised. An empty
attribute set (K = 0) gives uniform weights.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

log = logging.getLogger(__name__)


def _combinations(source_attrs, target_attrs, columns):
    s, t = np.asarray(source_attrs), np.asarray(target_attrs)
    if s.ndim != 2 or t.ndim != 2 or s.shape[1] != t.shape[1]:
        raise ValueError(f"attribute tables must be (N, K) and (M, K), got {s.shape} and {t.shape}")
    if columns is not None:
        s, t = s[:, list(columns)], t[:, list(columns)]
    # One integer id per distinct row, shared by both sides.
    combos, inverse = np.unique(np.concatenate([s, t]), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    return combos, inverse[:len(s)], inverse[len(s):]


def combination_counts(source_attrs: np.ndarray, target_attrs: np.ndarray,
                       columns: Sequence[int] | None = None) -> dict[tuple[int, ...], tuple[int, int]]:
    """n_s^A(c), n_t^A(c) for every combination c seen on either side.

    Parameters
    ----------
    source_attrs : ndarray, shape (N, K)
        Labels of the source codes (e.g. uint8 0/1).
    target_attrs : ndarray, shape (M, K)
        Labels of the target codes.
    columns : sequence of int, optional
        The attribute set A (columns of the tables); all K columns when None.

    Returns
    -------
    dict
        {combination (tuple of labels): (n_source, n_target)}.
    """
    combos, cs, ct = _combinations(source_attrs, target_attrs, columns)
    ns, nt = np.bincount(cs, minlength=len(combos)), np.bincount(ct, minlength=len(combos))
    return {tuple(int(v) for v in c): (int(ns[i]), int(nt[i])) for i, c in enumerate(combos)}


def balanced_weights(source_attrs: np.ndarray, target_attrs: np.ndarray, columns: Sequence[int] | None = None,
                     min_count: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """a_i = 1 / (|C| · n_s^A(A(i))), b_j = 1 / (|C| · n_t^A(A(j))) over the combinations C shared by both sides.

    Parameters
    ----------
    source_attrs : ndarray, shape (N, K)
        Labels of the source codes (rows are combinations once restricted to ``columns``).
    target_attrs : ndarray, shape (M, K)
        Labels of the target codes.
    columns : sequence of int, optional
        The attribute set A; all K columns when None. Leave the edited attribute out (it is constant on each side).
    min_count : int
        A combination is shared only when both sides have at least this many codes showing it; raising it keeps a
        handful of rare codes from carrying a whole 1/|C| of the mass each.

    Returns
    -------
    a : ndarray, shape (N,), float64
        Source weights, summing to 1 (0 for codes whose combination is not shared).
    b : ndarray, shape (M,), float64
        Target weights, summing to 1.
    """
    if min_count < 1:
        raise ValueError(f"min_count must be ≥ 1, got {min_count}")
    combos, cs, ct = _combinations(source_attrs, target_attrs, columns)
    ns = np.bincount(cs, minlength=len(combos))  # (n_combos,)
    nt = np.bincount(ct, minlength=len(combos))
    shared = (ns >= min_count) & (nt >= min_count)
    n_shared = int(shared.sum())
    if n_shared == 0:
        raise ValueError("no attribute combination is present on both sides: nothing can be balanced")
    per_source = np.where(shared, 1.0 / (n_shared * np.maximum(ns, 1)), 0.0)
    per_target = np.where(shared, 1.0 / (n_shared * np.maximum(nt, 1)), 0.0)
    a, b = per_source[cs], per_target[ct]
    dropped_s, dropped_t = int((a == 0).sum()), int((b == 0).sum())
    if dropped_s or dropped_t:
        log.warning("balanced weights: %d of %d combinations shared; weight 0 for %d/%d source and %d/%d target "
                    "codes whose combination is missing (or rarer than %d) on the other side", n_shared,
                    len(combos), dropped_s, len(a), dropped_t, len(b), min_count)
    # Renormalise away the rounding of 1/(|C|·n); mathematically both already sum to 1.
    return a / a.sum(), b / b.sum()
