"""The digits world (latentedit.data.digits): determinism, labels that match pixels, disjoint source splits."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest
from sklearn.datasets import load_digits

from latentedit.data.digits import (DigitsConfig, _resized_sources, add_one_digit, attribute_names,
                                    attributes_from_slots, build_digits, load_glyphs, split_sources)
from latentedit.io.image_store import SPLITS, read_image_store, write_image_store

CFG = DigitsConfig(canvas=16, grid=2, digit_size=6, max_digits=3, n_train=24, n_val=10, n_test=10, seed=1)


@pytest.fixture(scope="module")
def world():
    return build_digits(CFG)


@pytest.fixture(scope="module")
def source_targets():
    return load_digits().target


def test_same_seed_same_world(world):
    again = build_digits(CFG)
    np.testing.assert_array_equal(again.images, world.images)
    np.testing.assert_array_equal(again.attributes, world.attributes)
    for k in world.extra:
        np.testing.assert_array_equal(again.extra[k], world.extra[k])
    assert list(again.ids) == list(world.ids)


def test_different_seed_different_world(world):
    other = build_digits(DigitsConfig(**{**CFG.__dict__, "seed": 2}))
    assert other.images.shape == world.images.shape
    assert not np.array_equal(other.images, world.images)
    assert not np.array_equal(other.extra["source_index"], world.extra["source_index"])


def test_shapes_names_and_splits(world):
    n = CFG.n_train + CFG.n_val + CFG.n_test
    assert world.images.shape == (n, 1, CFG.canvas, CFG.canvas) and world.images.dtype == np.uint8
    assert world.attribute_names == ["count_1", "count_2", "count_3"] + [f"has_{d}" for d in range(10)]
    assert world.attributes.shape == (n, CFG.max_digits + 10)
    assert [int((world.split == s).sum()) for s in SPLITS] == [CFG.n_train, CFG.n_val, CFG.n_test]
    assert len(set(world.ids)) == n
    assert world.extra["slot_labels"].shape == (n, CFG.grid ** 2)
    assert world.attrs["grid"] == CFG.grid and world.attrs["canvas"] == CFG.canvas


def test_attributes_follow_slot_labels(world):
    slots = world.extra["slot_labels"]
    np.testing.assert_array_equal(world.attributes, attributes_from_slots(slots, CFG.max_digits))
    counts = (slots >= 0).sum(1)
    assert counts.min() >= 1 and counts.max() <= CFG.max_digits
    np.testing.assert_array_equal(world.attributes[:, :CFG.max_digits].sum(1), 1)  # count is one-hot


def test_labels_match_pixels(world, source_targets):
    """Empty slots are black; an occupied slot holds exactly the resized source glyph its labels name."""
    assert_labels_match_pixels(world, source_targets)


def assert_labels_match_pixels(world, source_targets):
    glyphs = _resized_sources(load_digits().images, CFG.digit_size)
    slot, size = CFG.canvas // CFG.grid, CFG.digit_size
    labels, index = world.extra["slot_labels"], world.extra["source_index"]
    for i, img in enumerate(world.images[:, 0]):
        for s in range(CFG.grid ** 2):
            r, c = divmod(s, CFG.grid)
            patch = img[r * slot:(r + 1) * slot, c * slot:(c + 1) * slot]
            if labels[i, s] < 0:
                assert index[i, s] == -1
                assert not patch.any(), f"image {i} slot {s} is labelled empty but has ink"
                continue
            k = index[i, s]
            assert labels[i, s] == source_targets[k]
            assert patch.any()
            fits = [(dy, dx) for dy in range(slot - size + 1) for dx in range(slot - size + 1)
                    if np.array_equal(patch[dy:dy + size, dx:dx + size], glyphs[k])
                    and patch.sum(dtype=np.int64) == glyphs[k].sum(dtype=np.int64)]
            assert fits, f"image {i} slot {s}: glyph of source digit {k} not found"


def test_the_random_layout_world_is_the_one_the_shipped_networks_saw():
    """``layout: random`` draws exactly what the builder drew before the option existed (the shipped oracle, encoder
    and generator were trained on it): a digest of this world taken before the change."""
    w = build_digits(CFG)
    digest = hashlib.sha256(w.images.tobytes() + w.extra["slot_labels"].tobytes()
                            + w.extra["source_index"].tobytes()).hexdigest()[:16]
    assert digest == "205cdc4413312725"


def test_reading_order_puts_n_digits_in_the_first_n_slots(source_targets):
    world = build_digits(replace(CFG, layout="reading_order"))
    slots = world.extra["slot_labels"]
    counts = (slots >= 0).sum(1)
    np.testing.assert_array_equal(slots >= 0, np.arange(CFG.grid ** 2)[None] < counts[:, None])
    assert set(counts) == set(range(1, CFG.max_digits + 1))
    np.testing.assert_array_equal(world.attributes, attributes_from_slots(slots, CFG.max_digits))
    assert world.attrs["layout"] == "reading_order"
    assert_labels_match_pixels(world, source_targets)


def test_test_digits_never_seen_in_training(world):
    idx = world.extra["source_index"]
    used = {s: set(idx[world.split == s].ravel()) - {-1} for s in SPLITS}
    assert used["train"].isdisjoint(used["test"])
    assert used["train"].isdisjoint(used["val"])
    assert used["val"].isdisjoint(used["test"])


def test_round_trips_through_image_store(world, tmp_path):
    path = tmp_path / "images.h5"
    write_image_store(path, world)
    back = read_image_store(path)
    np.testing.assert_array_equal(back.images, world.images)
    for k in world.extra:
        np.testing.assert_array_equal(back.extra[k], world.extra[k])


def test_split_sources_disjoint_cover_stratified(source_targets):
    parts = split_sources(source_targets, (0.6, 0.2, 0.2), np.random.default_rng(0))
    all_idx = np.concatenate([parts[s] for s in SPLITS])
    assert len(all_idx) == len(set(all_idx)) == len(source_targets)  # disjoint and complete
    for s, frac in zip(SPLITS, (0.6, 0.2, 0.2)):
        for d in range(10):
            n_d = (source_targets == d).sum()
            assert abs((source_targets[parts[s]] == d).sum() - frac * n_d) <= 1  # stratified per class
    again = split_sources(source_targets, (0.6, 0.2, 0.2), np.random.default_rng(0))
    for s in SPLITS:
        np.testing.assert_array_equal(again[s], parts[s])


def test_attributes_from_slots_by_hand():
    slots = np.array([[3, -1, 3, -1],   # one 3 twice: count 2
                      [-1, -1, 0, -1],  # count 1, has_0
                      [1, 2, 9, 5]], dtype=np.int8)
    out = attributes_from_slots(slots, max_digits=4)
    names = attribute_names(4)
    expected = {0: {"count_2", "has_3"}, 1: {"count_1", "has_0"}, 2: {"count_4", "has_1", "has_2", "has_9", "has_5"}}
    for row, on in expected.items():
        assert {n for n, v in zip(names, out[row]) if v} == on
    assert out.dtype == np.uint8


@pytest.mark.parametrize("kwargs, key", [
    ({"canvas": 16, "grid": 2, "digit_size": 9}, "digit_size"),
    ({"grid": 2, "max_digits": 5}, "max_digits"),
    ({"max_digits": 0}, "max_digits"),
    ({"source_fractions": (0.5, 0.2, 0.2)}, "source_fractions"),
    ({"layout": "diagonal"}, "layout"),
])
def test_config_errors_name_the_key(kwargs, key):
    with pytest.raises(ValueError, match=f"digits.{key}"):
        DigitsConfig(**kwargs)


def test_grid_must_divide_canvas():
    with pytest.raises(ValueError, match="digits.grid"):
        DigitsConfig(canvas=32, grid=3, digit_size=8)


def test_tiny_source_fraction_names_the_key():
    with pytest.raises(ValueError, match="source_fractions"):
        build_digits(DigitsConfig(canvas=16, grid=2, digit_size=6, max_digits=3, n_train=2, n_val=2, n_test=2,
                                  source_fractions=(0.998, 0.001, 0.001)))


@pytest.mark.parametrize("row", [[-1, -1, -1, -1], [0, 1, 2, 3]])
def test_attributes_from_slots_refuses_impossible_counts(row):
    with pytest.raises(ValueError, match="expected 1..3"):
        attributes_from_slots(np.array([row], dtype=np.int8), max_digits=3)


@pytest.mark.parametrize("rule", ["fixed", "random"])
def test_add_one_digit_fills_one_empty_slot_and_keeps_the_others(world, rule):
    glyphs = load_glyphs(CFG, np.random.default_rng(CFG.seed))
    test = world.split == "test"
    slots = world.extra["slot_labels"][test]
    keep = (slots >= 0).sum(1) < CFG.grid ** 2  # images with an empty slot
    before, before_slots = world.images[test][keep], slots[keep]
    after, after_slots = add_one_digit(before, before_slots, glyphs, "test", CFG, rule, digit=3)
    np.testing.assert_array_equal((after_slots >= 0).sum(1), (before_slots >= 0).sum(1) + 1)
    slot = CFG.canvas // CFG.grid
    for i in range(len(after)):
        new = np.flatnonzero(after_slots[i] != before_slots[i])
        assert len(new) == 1 and before_slots[i, new[0]] < 0
        for s in range(CFG.grid ** 2):
            r, c = divmod(s, CFG.grid)
            cell = np.s_[0, r * slot:(r + 1) * slot, c * slot:(c + 1) * slot]
            if s == new[0]:
                assert after[i][cell].any(), "the new slot holds no ink"
                if rule == "fixed":
                    assert after_slots[i, s] == 3 and s == np.flatnonzero(before_slots[i] < 0)[0]
            else:
                np.testing.assert_array_equal(after[i][cell], before[i][cell])
    with pytest.raises(ValueError, match="no empty slot"):
        full = np.zeros((1, CFG.grid ** 2), dtype=np.int8)
        add_one_digit(before[:1], full, glyphs, "test", CFG, rule)
