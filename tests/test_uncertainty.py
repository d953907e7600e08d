"""Bootstrap intervals over images, spread over seeds, and the realism rows (latentedit.evaluation.uncertainty,
latentedit.evaluation.realism, the latent distance to the target)."""

import numpy as np
import pytest
import torch

from latentedit.evaluation.latent_distance import sinkhorn_to_target
from latentedit.edits.model import direction_parameters
from latentedit.evaluation.realism import kid_resampled, realism_rows
from latentedit.evaluation.uncertainty import bootstrap_counts, bootstrap_mean_interval, normal_interval, seed_spread
from latentedit.metrics import FrechetReference, frechet_distance, polynomial_kernel


def kid(x, y):
    """The full unbiased U-statistic realism_rows reports (no resampling)."""
    return kid_resampled(polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y),
                         np.ones((1, len(x))))[0]


@pytest.mark.parametrize("n", [30, 400])  # fewer and more images than feature dimensions
def test_frechet_reference_matches_the_direct_formula_and_resamples(n):
    from scipy import linalg

    rng = np.random.default_rng(4)
    x, r = rng.normal(size=(n, 50)) * 1.5 + 0.2, rng.normal(size=(200, 50))
    mu_x, mu_r, cov_x, cov_r = x.mean(0), r.mean(0), np.cov(x, rowvar=False), np.cov(r, rowvar=False)
    direct = ((mu_x - mu_r) ** 2).sum() + np.trace(cov_x + cov_r - 2 * linalg.sqrtm(cov_x @ cov_r).real)
    assert frechet_distance(x, r) == pytest.approx(direct, rel=1e-6)
    counts = bootstrap_counts(n, 1, seed=1)[0]
    xs = np.repeat(x, counts.astype(int), axis=0)
    assert FrechetReference(r).distance(x, counts) == pytest.approx(frechet_distance(xs, r), rel=1e-6)


def test_bootstrap_counts_are_resamples_of_all_items():
    c = bootstrap_counts(7, n_boot=50, seed=1)
    assert c.shape == (50, 7) and (c.sum(1) == 7).all() and (c >= 0).all()
    np.testing.assert_array_equal(c, bootstrap_counts(7, n_boot=50, seed=1))


@pytest.mark.parametrize("p", [0.5, 0.8, 0.95])
def test_bootstrap_interval_covers_the_true_rate_at_the_nominal_level(p):
    """Simulation: 400 test sets of 300 Bernoulli(p) images; the 95 % percentile interval must cover p in
    95 % ± 3.5 % of them (≈ 3.2 binomial standard errors of the coverage estimate at 400 trials)."""
    rng = np.random.default_rng(0)
    trials, n = 400, 300
    values = (rng.random((trials, n)) < p).astype(float)  # (trials, N): one test set per row
    low, high = bootstrap_mean_interval(values, bootstrap_counts(n, 1000, seed=2), axis=1)
    coverage = float(((low <= p) & (p <= high)).mean())
    assert abs(coverage - 0.95) < 0.035, coverage
    half_width = float((high - low).mean() / 2)
    assert half_width == pytest.approx(1.96 * np.sqrt(p * (1 - p) / n), rel=0.15)  # the binomial half-width


def test_bootstrap_interval_is_vectorised_over_other_axes():
    rng = np.random.default_rng(3)
    v = rng.random((3, 50, 4))  # (A, N, L)
    counts = bootstrap_counts(50, 200, seed=0)
    low, high = bootstrap_mean_interval(v, counts, axis=1)
    assert low.shape == high.shape == (3, 4)
    one_low, one_high = bootstrap_mean_interval(v[1, :, 2], counts)
    assert low[1, 2] == pytest.approx(one_low) and high[1, 2] == pytest.approx(one_high)
    with pytest.raises(ValueError, match="finite"):
        bootstrap_mean_interval(np.array([0.0, np.nan]), bootstrap_counts(2, 10))


def test_normal_interval_is_centred_on_the_estimate():
    low, high = normal_interval(10.0, [11.0, 12.0, 13.0])  # biased resamples: the interval stays on the estimate
    assert (low + high) / 2 == pytest.approx(10.0) and high - low == pytest.approx(2 * 1.959964 * 1.0, rel=1e-5)


def test_seed_spread():
    assert seed_spread([0.6, 0.7, 0.8]) == (pytest.approx(0.7), pytest.approx(0.1), 3)
    mean, std, n = seed_spread([0.5])
    assert mean == 0.5 and np.isnan(std) and n == 1


def test_kid_resampled_equals_the_u_statistic_on_the_resampled_set():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 5)), rng.normal(size=(15, 5))
    counts = bootstrap_counts(12, 4, seed=5)
    got = kid_resampled(polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y), counts)
    for b in range(4):
        xs = np.repeat(x, counts[b].astype(int), axis=0)  # the resampled multiset
        k = polynomial_kernel(xs, xs)
        n, m = len(xs), len(y)
        ky = polynomial_kernel(y, y)
        want = ((k.sum() - np.trace(k)) / (n * (n - 1)) + (ky.sum() - np.trace(ky)) / (m * (m - 1))
                - 2 * polynomial_kernel(xs, y).mean())
        assert got[b] == pytest.approx(want)


def test_frechet_and_kid_are_zero_on_one_law_and_grow_with_a_shift():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(400, 8))
    same = rng.normal(size=(400, 8))
    assert frechet_distance(real, real) == pytest.approx(0.0, abs=1e-8)
    assert abs(kid(same, real)) < 0.02  # unbiased: around 0, either sign
    fds = [frechet_distance(same + shift, real) for shift in (0.0, 0.5, 1.0)]
    kids = [kid(same + shift, real) for shift in (0.0, 0.5, 1.0)]
    assert fds[0] < fds[1] < fds[2] and kids[0] < kids[1] < kids[2]
    assert fds[2] == pytest.approx(8 * 1.0 + fds[0], abs=0.5)  # ‖Δμ‖² = 8 for a unit shift in 8 dimensions


def test_realism_rows_values_and_intervals():
    rng = np.random.default_rng(2)
    target = rng.normal(size=(300, 6))
    source = rng.normal(size=(120, 6)) + 2.0
    edited = np.stack([source, rng.normal(size=(120, 6)) + 0.1, rng.normal(size=(120, 6))])  # α = 0, d, 1.5d
    df = realism_rows(method="lw", edit="add", attribute="count_2", alphas=[0.0, 1.0, 1.5], edited_features=edited,
                      target_features=target, source_features=source, n_boot=200, fd_boot=50)
    fd = df[df["metric"] == "realism_fd"].set_index("alpha")
    assert fd.loc[0.0, "value"] == pytest.approx(frechet_distance(source, target))
    assert fd.loc[1.0, "value"] < fd.loc[0.0, "value"] / 10  # the edit moved onto the target law
    assert fd.loc[1.0, "ci_low"] <= fd.loc[1.0, "value"] <= fd.loc[1.0, "ci_high"]
    assert np.isnan(fd.loc[1.5, "ci_low"]) and np.isnan(fd.loc[0.0, "ci_low"])  # Fréchet intervals at α = d only
    k = df[df["metric"] == "realism_kid"].set_index("alpha")
    assert (k["ci_low"] <= k["value"] + 1e-12).all() and (k["value"] <= k["ci_high"] + 1e-12).all()
    source_row = df[df["metric"] == "realism_fd_source"]
    assert len(source_row) == 1 and source_row["alpha"].isna().all()
    with pytest.raises(ValueError, match="realism"):
        realism_rows(method="lw", edit="add", attribute="a", alphas=[0.0], edited_features=edited,
                     target_features=target, source_features=source)


def test_sinkhorn_to_target_falls_when_the_edit_lands_on_the_target():
    g = torch.Generator().manual_seed(0)
    source = torch.randn(200, 4, generator=g)
    target = torch.randn(200, 4, generator=g) + torch.tensor([3.0, 0, 0, 0])
    model = {"method": "ifg", "edit": "e", "attribute": "a", "attribute_index": 0, "target_value": 1,
             "definition": {}, "attribute_names": ["a"], **direction_parameters(np.array([1.0, 0, 0, 0]), 0.0)}
    out = sinkhorn_to_target(model, source, target, [0.0, 1.5, 3.0, 6.0])
    v = out["values"]
    assert v[0] > v[1] > v[2] and v[3] > v[2]  # closest when the shift matches the target's
    assert v[2] < 0.1 * v[0] and out["n_source"] == out["n_target"] == 200 and out["blur"] > 0
    assert "floor" not in out  # no reference codes, no floor


def test_the_floor_is_where_real_target_codes_sit():
    """The floor: real codes of the target law (another split) against the test targets. The edit that lands on the
    target scores like them; a reference from another law would not be a floor at all."""
    g = torch.Generator().manual_seed(0)
    shift = torch.tensor([3.0, 0, 0, 0])
    source, target = torch.randn(150, 4, generator=g), torch.randn(200, 4, generator=g) + shift
    reference = torch.randn(400, 4, generator=g) + shift  # the "validation" targets: more codes than the source
    model = {"method": "ifg", "edit": "e", "attribute": "a", "attribute_index": 0, "target_value": 1,
             "definition": {}, "attribute_names": ["a"], **direction_parameters(np.array([1.0, 0, 0, 0]), 0.0)}
    out = sinkhorn_to_target(model, source, target, [0.0, 3.0], reference=reference, n_draws=4)
    floor = np.array(out["floor"])
    assert out["n_floor"] == 150 and floor.shape == (4,) and len(set(floor.tolist())) == 4  # four different draws
    assert 0 < floor.mean() < 0.1 * out["values"][0]
    assert out["values"][1] < floor.max() + 3 * floor.std()  # the shift that matches the target is at the floor
    again = sinkhorn_to_target(model, source, target, [0.0, 3.0], reference=reference, n_draws=4)
    assert again["floor"] == out["floor"]  # seeded draws: every method's job measures the same floor
    elsewhere = sinkhorn_to_target(model, source, target, [0.0], reference=reference - shift, n_draws=2)
    assert min(elsewhere["floor"]) > 10 * floor.max()
