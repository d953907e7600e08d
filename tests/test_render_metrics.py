"""Calibration, render store, rendering, image metrics and aggregation (the library side of rules/render.smk and
rules/metrics.smk)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch

from latentedit.edits.affine import AffineEdit
from latentedit.evaluation.aggregate import (SUMMARY_METRICS, collect, flatten, history_rows, seed_summary,
                                             summary_markdown, summary_table)
from latentedit.evaluation.edit_metrics import edit_metric_rows
from latentedit.io.h5 import StoreError
from latentedit.io.latent_store import LatentStore
from latentedit.io.render_store import RenderStore, read_render_store, write_render_store
from latentedit.render.calibrate import alpha_grid, calibrate, calibrate_edit, latent_rate_function, natural_unit
from latentedit.imaging import generate_uint8
from latentedit.render.render import render_codes, render_edit

# ---------------------------------------------------------------------------------------------------------------
# Calibration


def test_calibrate_finds_the_threshold_of_a_step_function():
    cal = calibrate(lambda a: float(a >= 2.7), tau=1.0, unit=1.0)
    assert cal.reached and cal.rate == 1.0
    assert 2.7 <= cal.d <= 2.7 * (1 + 2e-3)


def test_calibrate_on_a_smooth_rate_hits_tau():
    rate = lambda a: 1 - np.exp(-a)  # noqa: E731
    cal = calibrate(rate, tau=0.9, unit=0.5)
    assert cal.reached
    assert cal.d == pytest.approx(np.log(10), rel=2e-3)


def test_calibrate_returns_zero_when_already_done_and_flags_unreachable():
    assert calibrate(lambda a: 1.0, tau=1.0).d == 0.0
    cal = calibrate(lambda a: min(0.5, a / 10), tau=1.0, unit=1.0, max_alpha=16)
    assert not cal.reached
    assert cal.rate == 0.5 and 5.0 <= cal.d <= 5.5  # the smallest α of the highest rate, scanned over (4, 16]
    flat = calibrate(lambda a: 0.2, tau=1.0, unit=3.0, max_alpha=10)
    assert not flat.reached and flat.d == 3.0  # nothing beats α = 0: the natural unit


def test_calibrate_finds_the_peak_of_a_rate_that_falls_again():
    """Like "add one digit" pushed past the target count: the rate peaks at α = 1.3 below τ and falls after."""
    rate = lambda a: max(0.0, 0.9 - abs(a - 1.3))  # noqa: E731
    cal = calibrate(rate, tau=1.0, unit=1.0)
    assert not cal.reached
    assert cal.d == pytest.approx(1.3, abs=0.03) and cal.rate == pytest.approx(0.9, abs=0.03)


def test_calibrate_bisects_a_tau_that_only_the_peak_scan_finds():
    """The rate reaches τ only on [0.8, 0.95], between the doubling steps 0.5 · 2^k (InterFaceGAN's 1 → 2 on the W+
    world): d is the first crossing, 0.8, and it counts as reached (not the scan's next value, 0.83, flagged †)."""
    rate = lambda a: 1.0 if 0.8 <= a <= 0.95 else min(a, 0.99 - 0.01 * a)  # noqa: E731
    cal = calibrate(rate, tau=1.0, unit=0.5)
    assert cal.reached and cal.rate == 1.0
    assert 0.8 <= cal.d <= 0.8 * (1 + 2e-3)


def test_calibrate_rejects_bad_arguments():
    with pytest.raises(ValueError, match="τ"):
        calibrate(lambda a: 1.0, tau=0.0)
    with pytest.raises(ValueError, match="unit"):
        calibrate(lambda a: 1.0, unit=0.0)


def test_alpha_grid():
    assert alpha_grid(2.0, 3) == [0.0, 2.0, 3.0, 4.0]
    assert alpha_grid(0.0, 10) == [0.0]
    with pytest.raises(ValueError):
        alpha_grid(1.0, 0)


class _Threshold(torch.nn.Module):
    """A 'latent classifier' with one logit per attribute: logit_l = z_l (attribute l present iff z_l > 0)."""

    def __init__(self, n):
        super().__init__()
        self.n_attributes = n
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, z):
        return z[:, : self.n_attributes] + 0 * self.dummy


def test_latent_rate_and_natural_unit_of_a_direction():
    codes = torch.tensor([[-1.0, 0.0], [-3.0, 0.0]])
    model = {"type": "direction", "normal": torch.tensor([1.0, 0.0]), "intercept": 0.0}
    rate = latent_rate_function(model, codes, _Threshold(2), k=0, target=1)
    assert rate(0.0) == 0.0 and rate(2.0) == 0.5 and rate(3.5) == 1.0
    cal = calibrate(rate, tau=1.0, unit=natural_unit(model, codes, torch.tensor([[1.0, 0.0]])))
    assert cal.d == pytest.approx(3.0, rel=2e-3)
    # the one call the evaluation makes: the same search, on the source codes, from the same unit
    assert calibrate_edit(model, codes, torch.tensor([[1.0, 0.0]]), _Threshold(2), 0, 1) == dataclasses.replace(
        cal, n_codes=2)
    assert natural_unit(model, codes, torch.tensor([[1.0, 0.0]])) == pytest.approx(3.0)  # mean gap along n
    assert natural_unit({"type": "affine"}, codes, codes) == 1.0


# ---------------------------------------------------------------------------------------------------------------
# Render store and rendering


def _render_store(a=3, n=4, names=("count_1", "has_0")) -> RenderStore:
    rng = np.random.default_rng(0)
    return RenderStore(images=rng.integers(0, 256, (a, n, 1, 8, 8), dtype=np.uint8),
                       alphas=np.linspace(0, 2, a), ids=np.array([f"i{j}" for j in range(n)], dtype=object),
                       latent_logits=rng.normal(size=(a, n, len(names))).astype(np.float32),
                       attribute_names=list(names),
                       attrs={"method": "lw", "edit": "add_0", "calibration": json.dumps({"d": 1.0})})


def test_render_store_round_trip(tmp_path):
    store = _render_store()
    write_render_store(tmp_path / "r.h5", store)
    back = read_render_store(tmp_path / "r.h5")
    np.testing.assert_array_equal(back.images, store.images)
    np.testing.assert_array_equal(back.alphas, store.alphas)
    assert list(back.ids) == list(store.ids) and back.attribute_names == store.attribute_names
    assert back.calibration == {"d": 1.0} and back.attrs["method"] == "lw"


def test_render_store_rejects_inconsistent_shapes_and_truncation(tmp_path):
    bad = _render_store()
    bad.alphas = bad.alphas[:2]
    with pytest.raises(StoreError, match="alphas"):
        write_render_store(tmp_path / "bad.h5", bad)
    assert not (tmp_path / "bad.h5").exists()
    write_render_store(tmp_path / "r.h5", _render_store())
    data = (tmp_path / "r.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreError, match="cut.h5"):
        read_render_store(tmp_path / "cut.h5")


def _latent_store() -> LatentStore:
    rng = np.random.default_rng(1)
    n = 40
    split = np.array(["train"] * 10 + ["val"] * 10 + ["test"] * 20, dtype=object)
    attrs = rng.integers(0, 2, (n, 2)).astype(np.uint8)
    return LatentStore(latents=rng.normal(size=(n, 3)).astype(np.float32),
                       ids=np.array([f"x{i}" for i in range(n)], dtype=object), split=split, attributes=attrs,
                       attribute_names=["count_1", "has_0"])


def test_render_codes_selects_test_source_codes_deterministically():
    store = _latent_store()
    codes, ids = render_codes(store, {"has_0": 0}, max_images=100, seed=0)
    mask = (store.split == "test") & (store.attributes[:, 1] == 0)
    assert list(ids) == list(store.ids[mask])
    np.testing.assert_array_equal(codes, store.latents[mask])
    sub, sub_ids = render_codes(store, {"has_0": 0}, max_images=3, seed=5)
    again, again_ids = render_codes(store, {"has_0": 0}, max_images=3, seed=5)
    assert len(sub) == 3 and list(sub_ids) == list(again_ids)
    assert set(sub_ids) <= set(ids) and list(sub_ids) == sorted(sub_ids, key=list(ids).index)


class _PixelGenerator(torch.nn.Module):
    """codes (B, 3) → (B, 1, 2, 2) images whose pixels are tanh of the first code entry."""

    def forward(self, z):
        return torch.tanh(z[:, :1, None, None]).expand(-1, 1, 2, 2)


def test_render_edit_applies_each_alpha_and_reports_latent_logits():
    edit = AffineEdit(3)
    with torch.no_grad():
        edit.bias.copy_(torch.tensor([1.0, 0.0, 0.0]))  # H(z) = e_1: z' = z + α e_1
    model = {"type": "affine", "spec": edit.spec(), "state_dict": edit.state_dict(), "method": "lw", "edit": "e"}
    codes = np.zeros((5, 3), dtype=np.float32)
    images, logits = render_edit(model, _PixelGenerator(), codes, [0.0, 1.0, 2.0], _Threshold(2), "cpu",
                                 batch_size=2)
    assert images.shape == (3, 5, 1, 2, 2) and images.dtype == np.uint8
    expected = [np.round((np.tanh(a) + 1) * 127.5) for a in (0.0, 1.0, 2.0)]
    np.testing.assert_allclose(images[:, 0, 0, 0, 0], expected, atol=1)
    np.testing.assert_allclose(logits[:, 0, 0], [0.0, 1.0, 2.0], atol=1e-6)


def test_generate_uint8_matches_the_store_convention():
    from latentedit.imaging import to_uint8

    z = torch.linspace(-3, 3, 7)[:, None].repeat(1, 3)
    np.testing.assert_array_equal(generate_uint8(_PixelGenerator(), z, 3).numpy(),
                                  to_uint8(_PixelGenerator()(z)))


# ---------------------------------------------------------------------------------------------------------------
# Image metrics


DEFINITION = {"source": {"count_1": 1}, "target": {"count_2": 1}, "attribute": "count_2"}
NAMES = ["count_1", "count_2", "has_0", "has_1"]


def _metrics(**overrides):
    a, n = 2, 4
    probs = np.zeros((a, n, 4))
    probs[:, :, 0] = 0.9  # count_1 before
    probs[1, :2, 1] = 0.9  # α = 1: two of four images gain a digit (count_2 > 0.5)
    probs[1, :, 0] = 0.1
    probs[1, 0, 2] = 0.9  # and the first one also gained a 0 (has_0 flips once)
    emb = np.ones((a, n, 3))
    emb[1, :, 0] = -1  # cos((−1, 1, 1), (1, 1, 1)) = 1/3
    logits = np.full((a, n, 4), -1.0)
    logits[1, :, 1] = 2.0  # the latent classifier sees every code edited
    args = dict(method="lw", edit="add", definition=DEFINITION, attribute_names=NAMES, alphas=[0.0, 1.0],
                edited_probs=probs, edited_embeddings=emb, input_probs=probs[0], input_embeddings=emb[0],
                latent_logits=logits)
    args.update(overrides)
    return edit_metric_rows(**args)


def _value(df, metric, alpha, attribute="count_2"):
    sel = df[(df["metric"] == metric) & (df["alpha"] == alpha) & (df["attribute"] == attribute)]
    assert len(sel) == 1, (metric, alpha, attribute)
    return float(sel["value"].iloc[0])


def test_edit_metrics_match_hand_computation():
    df = _metrics()
    assert _value(df, "target_change_rate", 0.0) == 0.0
    assert _value(df, "target_change_rate", 1.0) == 0.5
    assert _value(df, "latent_target_change_rate", 1.0) == 1.0
    # kept attributes: has_0, has_1 (count_1 and count_2 are named by the definition); has_0 flips on 1 of 4
    assert _value(df, "attribute_preservation", 1.0) == pytest.approx((0.75 + 1.0) / 2)
    assert _value(df, "attribute_agreement", 1.0, "has_0") == 0.75
    assert _value(df, "identity", 0.0) == pytest.approx(1.0)
    assert _value(df, "identity", 1.0) == pytest.approx(1 / 3)
    assert _value(df, "latent_attribute_preservation", 1.0) == 1.0
    # rescoring: every attribute's change of judged probability, P(edited) − P(reconstruction)
    assert _value(df, "rescoring", 1.0, "count_2") == pytest.approx(0.45)
    assert _value(df, "rescoring", 1.0, "count_1") == pytest.approx(-0.8)
    assert _value(df, "rescoring", 1.0, "has_0") == pytest.approx(0.225)
    assert _value(df, "rescoring", 0.0, "has_1") == 0.0
    assert set(df.columns) == {"method", "edit", "attribute", "alpha", "metric", "value", "ci_low", "ci_high"}


def test_slot_metrics_count_kept_digits_and_clean_edits():
    e = 10  # empty slot
    slots = np.array([[[3, e, e, e], [3, e, e, e], [4, e, e, e], [e, e, e, e]],  # α = 0: reconstructions
                      [[3, 5, e, e],  # image 0 gains a 5 and keeps its 3 (a target change: clean)
                       [8, 5, e, e],  # image 1 gains a digit but its 3 became an 8 (a target change, not clean)
                       [e, 4, e, e],  # image 2: its 4 moved to another slot (no target change, not kept)
                       [1, e, e, e]]])  # image 3 had no digit: nothing to keep
    df = _metrics(edited_slots=slots, empty_slot=e)
    assert _value(df, "slots_kept", 0.0) == 1.0
    assert _value(df, "slots_kept", 1.0) == 0.5  # images 0 and 3
    assert _value(df, "clean_edit_rate", 1.0) == 0.25  # image 0 only (image 3 does not reach count_2)
    assert "slots_kept" not in set(_metrics()["metric"])  # judges without parts (faces) write no slot rows
    with pytest.raises(ValueError, match="empty_slot"):
        _metrics(edited_slots=slots)


def test_edit_metric_intervals_bracket_the_values():
    df = _metrics()
    assert (df["ci_low"] <= df["value"] + 1e-12).all() and (df["value"] <= df["ci_high"] + 1e-12).all()
    rate = df[(df["metric"] == "target_change_rate") & (df["alpha"] == 1.0)].iloc[0]
    assert rate["ci_low"] < 0.5 < rate["ci_high"]  # 2 of 4 images: a wide interval
    constant = df[(df["metric"] == "latent_target_change_rate") & (df["alpha"] == 1.0)].iloc[0]
    assert constant["ci_low"] == constant["ci_high"] == 1.0  # every image the same: no spread


def test_edit_metrics_need_the_reconstruction_first_and_matching_shapes():
    with pytest.raises(ValueError, match="alphas\\[0\\]"):
        _metrics(alphas=[0.5, 1.0])
    with pytest.raises(ValueError, match="shapes"):
        _metrics(latent_logits=np.zeros((2, 3, 4)))


# ---------------------------------------------------------------------------------------------------------------
# Aggregation


def test_flatten_and_history_rows():
    assert flatten({"a": {"b": 1, "c": "x"}, "d": True, "e": float("nan")}) == {"a.b": 1.0, "d": 1.0}
    h = pd.DataFrame({"epoch": [-1, 0, 1], "val_loss": [3.0, 2.0, 2.5], "best": [True, True, False]})
    rows = history_rows("lw", "e", 0, h)
    got = {(r.metric, r.step): r.value for r in rows.itertuples()}
    assert got == {("final.val_loss", 1.0): 2.5, ("best.val_loss", 0.0): 2.0}


def test_collect_and_summary_table():
    from latentedit.evaluation.edit_metrics import latent_distance_rows

    metrics = pd.concat([_metrics(), latent_distance_rows(
        method="lw", edit="add", attribute="count_2", alphas=[0.0, 1.0],
        latent_sinkhorn={"alphas": [0.0, 1.0], "values": [9.0, 2.0], "floor": [1.5, 2.5], "n_floor": 4})])
    cal = pd.DataFrame([{"method": "lw", "edit": "add", "attribute": "count_2", "alpha": np.nan,
                         "metric": "calibration.d", "value": 1.0}])
    df = collect([pd.concat([metrics, cal]).assign(seed=0)],
                 {("lw", "add", 0): pd.DataFrame({"epoch": [0], "loss": [1.0]})},
                 {"dlsgan_quality": {"psnr_real": 21.0}}, {"config_hash": "abc", "generator_hash": "g"},
                 world="digits", created="2026-01-01T00:00:00+00:00")
    assert list(df.columns)[:12] == ["world", "source", "method", "edit", "seed", "attribute", "alpha", "step",
                                     "metric", "value", "ci_low", "ci_high"]
    assert set(df["source"]) == {"edit_metrics", "edit_training", "dlsgan_quality"}
    assert (df["config_hash"] == "abc").all() and (df["world"] == "digits").all()
    assert df.loc[df["metric"] == "psnr_real", "value"].item() == 21.0
    assert df["seed"].isna().sum() == (df["source"] == "dlsgan_quality").sum()  # stage rows have no seed
    summary = summary_table(df, {("lw", "add", 0): {"d": 1.0, "reached": True, "n_images": 4}})
    row = summary.iloc[0]
    assert row["target_change_rate"] == 0.5 and row["latent_target_change_rate"] == 1.0
    assert row["target_change_rate_ci_low"] < 0.5 < row["target_change_rate_ci_high"]
    assert row["calibrated"] and row["n_images"] == 4 and row["seed"] == 0
    assert row["latent_sinkhorn_to_target"] == 2.0  # at α = d
    assert row["latent_sinkhorn_floor"] == 2.0 and row["latent_sinkhorn_floor_ci_low"] < 2.0  # one per edit, no α


def test_seed_summary_reports_mean_and_std_across_seeds():
    rows = []
    for seed, rate in enumerate([0.6, 0.7, 0.8]):
        rows.append({"edit": "add", "method": "lw", "seed": seed, "d": 1.0 + seed, "calibrated": True,
                     "n_images": 300, **{f"{m}{s}": np.nan for m in SUMMARY_METRICS for s in ("", "_ci_low",
                                                                                             "_ci_high")},
                     "target_change_rate": rate, "target_change_rate_ci_low": rate - 0.05,
                     "target_change_rate_ci_high": rate + 0.05})
    out = seed_summary(pd.DataFrame(rows)).iloc[0]
    assert out["n_seeds"] == 3 and out["d"] == pytest.approx(2.0)
    assert out["target_change_rate"] == pytest.approx(0.7)
    assert out["target_change_rate_std"] == pytest.approx(0.1)  # sample std (ddof = 1)
    assert out["target_change_rate_ci_low"] == pytest.approx(0.65)
    cells = summary_markdown(seed_summary(pd.DataFrame(rows)), ["target_change_rate", "identity"]).iloc[0]
    assert cells["target_change_rate"] == "0.700 ± 0.100 [0.650, 0.750]" and cells["identity"] == ""
    one = summary_markdown(seed_summary(pd.DataFrame(rows[:1])), ["target_change_rate"]).iloc[0]
    assert one["target_change_rate"] == "0.600 [0.550, 0.650]"  # one seed: no std


def test_collect_round_trips_through_parquet(tmp_path):
    df = collect([_metrics()], {}, {}, {}, world="digits")
    df.to_parquet(tmp_path / "t.parquet", index=False)
    back = pd.read_parquet(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(back, df)


def test_latent_distance_rows_sit_on_the_render_grid():
    from latentedit.evaluation.edit_metrics import latent_distance_rows

    grid = np.array([0.0, 0.1234567891234, 0.2469135782468])  # float64, as the render store keeps it
    rows = latent_distance_rows(method="lw", edit="add", attribute="count_2", alphas=grid,
                                latent_sinkhorn={"alphas": list(grid), "values": [3.0, 1.0, 2.0]})
    assert rows["alpha"].tolist() == grid.tolist() and rows["value"].tolist() == [3.0, 1.0, 2.0]
    with pytest.raises(ValueError, match="render"):
        latent_distance_rows(method="lw", edit="add", attribute="count_2", alphas=grid[:2],
                             latent_sinkhorn={"alphas": list(grid), "values": [3.0, 1.0, 2.0]})
    rows = latent_distance_rows(method="lw", edit="add", attribute="count_2", alphas=grid,
                                latent_sinkhorn={"alphas": list(grid), "values": [3.0, 1.0, 2.0],
                                                 "floor": [1.0, 1.2, 1.4], "n_floor": 100})
    floor = rows[rows["metric"] == "latent_sinkhorn_floor"].iloc[0]
    assert len(rows) == 4 and np.isnan(floor["alpha"]) and floor["value"] == pytest.approx(1.2)
    assert (floor["ci_low"], floor["ci_high"]) == pytest.approx((1.2 - 1.96 * 0.2, 1.2 + 1.96 * 0.2))
