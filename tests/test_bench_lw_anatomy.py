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


def test_count_shares_along_alpha():
    count_shares = load_bench("lw_anatomy").count_shares
    counts = np.array([[1, 1, 1, 1],  # α = 0: nothing added
                       [1, 2, 2, 3]])  # one image short, two right, one with two new digits
    shares = count_shares(counts, k=1)
    np.testing.assert_allclose(shares["none added"], [1.0, 0.25])
    np.testing.assert_allclose(shares["one added"], [0.0, 0.5])
    np.testing.assert_allclose(shares["more added"], [0.0, 0.25])


def test_layout_rows_split_by_filled_slots():
    layout_rows = load_bench("lw_anatomy").layout_rows
    source = np.array([[3, -1, -1, -1], [4, -1, -1, -1], [-1, -1, 5, -1]])
    edited = np.array([[3, 7, EMPTY, EMPTY],  # slot 1 gains a digit
                       [4, EMPTY, 2, 9],  # slots 2 and 3: two new digits
                       [EMPTY, EMPTY, 5, EMPTY]])  # nothing added
    rows = {layout: (n, shares, per_slot) for layout, n, shares, per_slot in layout_rows(edited, source, EMPTY, k=1)}
    assert set(rows) == {"x...", "..x."}
    n, shares, per_slot = rows["x..."]
    assert n == 2
    assert (shares["one added"], shares["more added"]) == (0.5, 0.5)
    np.testing.assert_allclose(per_slot, [np.nan, 0.5, 0.5, 0.5])
    n, shares, per_slot = rows["..x."]
    assert n == 1 and shares["none added"] == 1.0
    np.testing.assert_allclose(per_slot, [0.0, 0.0, np.nan, 0.0])


def test_misses_grid_has_a_row_per_chosen_source(tmp_path):
    from types import SimpleNamespace

    from PIL import Image

    write_misses_grid = load_bench("lw_anatomy").write_misses_grid
    alphas = np.array([0.0, 0.9, 1.0, 1.1, 1.2])
    renders = SimpleNamespace(images=np.zeros((5, 6, 1, 8, 8), np.uint8), alphas=alphas)
    counts = np.array([1, 2, 3, 1, 2, 2])  # k = 1: two gain nothing, three gain one, one gains two
    write_misses_grid(renders, counts, 1, tmp_path / "a.png", per_kind=2)  # 2 none + 1 more + 1 one = 4 rows
    write_misses_grid(renders, counts, 1, tmp_path / "b.png", per_kind=1)  # 1 + 1 + 1 = 3 rows
    (wa, ha), (wb, hb) = Image.open(tmp_path / "a.png").size, Image.open(tmp_path / "b.png").size
    assert wa == wb and ha > hb
    write_misses_grid(SimpleNamespace(images=renders.images[:, :0], alphas=alphas), counts[:0], 1, tmp_path / "c.png")
    assert not (tmp_path / "c.png").exists()  # no source, no figure
