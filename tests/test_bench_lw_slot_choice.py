"""bench/lw_slot_choice.py: the layouts its restriction rests on — which slots an image fills, the reading-order
layout of n digits, the n of a count edit, the target layouts of each rule, and the share of edits that fill each
empty slot; and the ``--set`` overrides it shares with the other benchmarks (the shared pieces live in
``bench/_judging.py``)."""

import numpy as np
import pytest

from conftest import load_bench


@pytest.fixture(scope="module")
def bench():
    return load_bench("lw_slot_choice")


@pytest.fixture(scope="module")
def judging():
    return load_bench("_judging")


def test_layouts_mark_filled_slots_in_slot_order(judging):
    slots = np.array([[3, -1, -1, -1], [-1, 0, -1, 7], [1, 2, 3, 4]], np.int8)
    assert judging.layouts(slots).tolist() == ["x...", ".x.x", "xxxx"]


def test_reading_order_fills_the_first_n_slots(bench):
    assert [bench.reading_order(n, 4) for n in range(1, 5)] == ["x...", "xx..", "xxx.", "xxxx"]


def test_count_of_reads_the_count_selection_and_refuses_others(bench):
    assert bench.count_of({"count_2": 1}) == 2
    assert bench.count_of({"count_3": 1, "has_7": 0}) == 3
    with pytest.raises(SystemExit, match="not a count selection"):
        bench.count_of({"has_7": 1})
    with pytest.raises(SystemExit, match="not a count selection"):
        bench.count_of({"count_1": 1, "count_2": 1})


def test_target_layouts_next_fills_the_first_empty_slot_any_fills_each(bench):
    assert bench.target_layouts("xx..", "next") == ["xxx."]
    assert bench.target_layouts("xx..", "any") == ["xxx.", "xx.x"]
    assert bench.target_layouts(".x.x", "any") == ["xx.x", ".xxx"]
    with pytest.raises(ValueError, match="no empty slot"):
        bench.target_layouts("xxxx", "next")


def test_empty_slots_filled_reads_each_slot_the_source_leaves_empty(judging):
    empty = 10
    edited = np.array([[3, 5, empty, empty], [3, empty, 4, empty], [8, 9, empty, 1], [empty, 1, empty, empty]])
    shares = judging.empty_slots_filled(edited, "x...", empty)
    assert np.isnan(shares[0])
    assert shares[1:] == pytest.approx([0.75, 0.25, 0.25])


def test_set_overrides_parse_yaml_values_and_refuse_a_missing_value(judging):
    assert judging.overrides(["rank=8", "lr=1.0e-3", "pres_mode=per_code", "rank_note=a=b"]) == {
        "rank": 8, "lr": 1.0e-3, "pres_mode": "per_code", "rank_note": "a=b"}
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        judging.overrides(["rank"])
