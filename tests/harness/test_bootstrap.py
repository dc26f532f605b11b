"""The vectorized stratified bootstrap against rliable's own (run for real, same repetitions)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from rliable import library as rly
from rliable import metrics

from harness.stats.bootstrap import (
    batched_aggregates,
    batched_iqm_curve,
    batched_probability_of_improvement,
    batched_score_distributions,
    percentile_intervals,
    stratified_bootstrap,
)

METRIC_NAMES = ["median", "iqm", "mean", "optimality_gap"]
RLIABLE_METRICS = [metrics.aggregate_median, metrics.aggregate_iqm, metrics.aggregate_mean,
                   metrics.aggregate_optimality_gap]


@pytest.fixture(scope="module")
def table() -> np.ndarray:
    return np.random.default_rng(7).beta(2.0, 3.0, size=(5, 6)) * 1.2  # some scores above 1


def _rliable(score, func, reps, seed=0):
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        return rly.get_interval_estimates({"x": score}, func, reps=reps)
    finally:
        np.random.set_state(state)


def test_batched_statistics_equal_rliables_on_the_original_data(table):
    ours = batched_aggregates(METRIC_NAMES)(table[None])[0]
    theirs = np.array([f(table) for f in RLIABLE_METRICS])
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    other = np.random.default_rng(8).beta(2.5, 3.0, size=(4, 6))
    assert batched_probability_of_improvement(table[None], other[None])[0, 0] == pytest.approx(
        metrics.probability_of_improvement(table, other), abs=1e-12)
    taus = np.linspace(0, 1.2, 13)
    np.testing.assert_allclose(batched_score_distributions(taus)(table[None])[0],
                               rly.score_distributions(table, taus), atol=1e-12)
    curve = np.random.default_rng(9).random((4, 3, 5))
    np.testing.assert_allclose(batched_iqm_curve(curve[None])[0],
                               [metrics.aggregate_iqm(curve[..., i]) for i in range(5)], atol=1e-12)


def test_independent_computation_of_the_aggregates(table):
    flat = np.sort(table.ravel())
    n = flat.size
    k = int(0.25 * n)
    iqm = flat[k:n - k].mean()  # the 25%-trimmed mean over all runs and tasks
    per_task = table.mean(axis=0)
    expected = [np.median(per_task), iqm, per_task.mean(), 1 - np.minimum(table, 1).mean()]
    np.testing.assert_allclose(batched_aggregates(METRIC_NAMES)(table[None])[0], expected, atol=1e-12)


def test_intervals_match_rliable_at_50000_repetitions(table):
    reps = 50_000
    _, theirs = _rliable(table, lambda s: np.array([f(s) for f in RLIABLE_METRICS]), reps)
    ours = percentile_intervals(
        stratified_bootstrap([table], batched_aggregates(METRIC_NAMES), reps, np.random.default_rng(0)))
    np.testing.assert_allclose(ours, theirs["x"], atol=0.01)


def test_probability_of_improvement_intervals_match_rliable(table):
    # rliable runs scipy's Mann-Whitney test per task and repetition: keep this one small
    mine, other = table[:, :3], np.random.default_rng(3).beta(2.5, 3.0, size=(4, 3))
    reps = 5_000
    _, theirs = _rliable([mine, other], lambda x, y: np.array([metrics.probability_of_improvement(x, y)]), reps)
    ours = percentile_intervals(
        stratified_bootstrap([mine, other], batched_probability_of_improvement, reps, np.random.default_rng(0)))
    np.testing.assert_allclose(ours, theirs["x"], atol=0.02)


def test_curve_intervals_match_rliable():
    curve = np.random.default_rng(4).beta(2, 3, size=(5, 4, 6))
    reps = 10_000
    _, theirs = _rliable(curve, lambda s: np.array([metrics.aggregate_iqm(s[..., i]) for i in range(6)]), reps)
    ours = percentile_intervals(stratified_bootstrap([curve], batched_iqm_curve, reps, np.random.default_rng(0)))
    np.testing.assert_allclose(ours, theirs["x"], atol=0.015)


def test_every_interval_contains_its_point_estimate(table):
    for scores in (table, np.full((3, 4), 0.5), table[:1]):
        stat = batched_aggregates(METRIC_NAMES)
        point = stat(scores[None])[0]
        low, high = percentile_intervals(stratified_bootstrap([scores], stat, 2000, np.random.default_rng(1)))
        assert np.all(low <= point + 1e-12) and np.all(point <= high + 1e-12)


def test_same_seed_same_bytes_different_seed_differs(table):
    stat = batched_aggregates(METRIC_NAMES)
    a = stratified_bootstrap([table], stat, 3000, np.random.default_rng(42))
    b = stratified_bootstrap([table], stat, 3000, np.random.default_rng(42))
    c = stratified_bootstrap([table], stat, 3000, np.random.default_rng(43))
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()


def test_resampling_stays_within_each_task():
    # task t only holds values 10*t + run: any resample must keep each column's values in it
    scores = np.array([[10.0 * t + r for t in range(4)] for r in range(3)])
    seen = []
    stratified_bootstrap([scores], lambda s: (seen.append(s.copy()), s.reshape(len(s), -1))[1],
                         500, np.random.default_rng(0))
    resampled = np.concatenate(seen)
    assert resampled.shape == (500, 3, 4)
    for t in range(4):
        assert set(np.unique(resampled[:, :, t])) <= {10.0 * t + r for r in range(3)}
    # and every run of a task is drawn about equally often (1,500 draws: sd of a share 0.012)
    shares = np.bincount(resampled[:, :, 0].astype(int).ravel(), minlength=3) / resampled[:, :, 0].size
    assert np.all((shares > 0.28) & (shares < 0.39))


def test_memory_stays_bounded_by_the_chunk_size():
    big = np.random.default_rng(0).random((10, 50, 40))  # 20,000 cells; 2,000 reps unchunked ~ 0.7 GB
    stat = batched_iqm_curve
    tracemalloc.start()
    try:
        dist = stratified_bootstrap([big], stat, 2000, np.random.default_rng(0), max_chunk_bytes=8 * 2**20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert dist.shape == (2000, 40)
    assert peak < 64 * 2**20  # far below the ~680 MB an unchunked draw would take


def test_rejects_zero_repetitions(table):
    with pytest.raises(ValueError, match="at least 1"):
        stratified_bootstrap([table], batched_aggregates(["mean"]), 0, np.random.default_rng(0))


# ------------------------------------------------------------------------------ NaN scores
# rliable's aggregates (scipy's trim_mean, numpy's mean, median and minimum) and its probability
# of improvement (scipy's mannwhitneyu) return NaN for any NaN input; its score distributions count
# a NaN as not above any threshold. arch's percentile interval is NaN when any repetition is.

def _with_nan(table: np.ndarray, cells) -> np.ndarray:
    out = table.copy()
    for cell in cells:
        out[cell] = np.nan
    return out


NAN_CELLS = {
    "lowest": lambda t: [np.unravel_index(np.argmin(t), t.shape)],
    "highest": lambda t: [np.unravel_index(np.argmax(t), t.shape)],
    "middle": lambda t: [(2, 3)],
    "whole task": lambda t: [(r, 1) for r in range(t.shape[0])],
    "every cell": lambda t: list(np.ndindex(t.shape)),
}


@pytest.mark.parametrize("where", NAN_CELLS)
def test_batched_statistics_on_nan_equal_rliables(table, where):
    scores = _with_nan(table, NAN_CELLS[where](table))
    ours = batched_aggregates(METRIC_NAMES)(scores[None])[0]
    theirs = np.array([f(scores) for f in RLIABLE_METRICS])
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    assert np.all(np.isnan(theirs))
    taus = np.linspace(0, 1.2, 13)
    np.testing.assert_allclose(batched_score_distributions(taus)(scores[None])[0],
                               rly.score_distributions(scores, taus), rtol=0, atol=1e-12)
    other = np.random.default_rng(8).beta(2.5, 3.0, size=(4, 6))
    for x, y in ((scores, other), (other, scores), (scores, scores)):
        theirs_poi = metrics.probability_of_improvement(x, y)
        ours_poi = batched_probability_of_improvement(x[None], y[None])[0, 0]
        assert np.isnan(theirs_poi) and np.isnan(ours_poi)


def test_batched_iqm_curve_is_nan_exactly_at_the_steps_with_a_nan():
    curve = np.random.default_rng(9).random((4, 3, 5))
    curve[0, 1, 1] = np.nan  # one cell at step 1
    curve[:, :, 3] = np.nan  # every cell at step 3
    ours = batched_iqm_curve(curve[None])[0]
    theirs = np.array([metrics.aggregate_iqm(curve[..., i]) for i in range(5)])
    np.testing.assert_array_equal(np.isnan(theirs), [False, True, False, True, False])
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)  # NaN where theirs is NaN; float32 sort


def test_intervals_on_nan_scores_match_rliable(table):
    scores = _with_nan(table, [(2, 3)])
    reps = 5_000
    points, theirs = _rliable(scores, lambda s: np.array([f(s) for f in RLIABLE_METRICS]), reps)
    assert np.all(np.isnan(points["x"])) and np.all(np.isnan(theirs["x"]))
    ours = percentile_intervals(stratified_bootstrap([scores], batched_aggregates(METRIC_NAMES), reps,
                                                     np.random.default_rng(0)))
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs["x"]))


def test_probability_of_improvement_intervals_on_nan_scores_match_rliable(table):
    mine, other = _with_nan(table[:, :3], [(1, 2)]), np.random.default_rng(3).beta(2.5, 3.0, size=(4, 3))
    reps = 500
    for x, y in ((mine, other), (other, mine)):
        _, theirs = _rliable([x, y], lambda a, b: np.array([metrics.probability_of_improvement(a, b)]), reps)
        assert np.all(np.isnan(theirs["x"]))
        ours = percentile_intervals(stratified_bootstrap([x, y], batched_probability_of_improvement, reps,
                                                         np.random.default_rng(0)))
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs["x"]))


def test_curve_intervals_on_nan_scores_match_rliable():
    curve = np.random.default_rng(4).beta(2, 3, size=(5, 4, 6))
    curve[3, 2, 4] = np.nan
    reps = 10_000
    _, theirs = _rliable(curve, lambda s: np.array([metrics.aggregate_iqm(s[..., i]) for i in range(6)]), reps)
    np.testing.assert_array_equal(np.isnan(theirs["x"]).any(axis=0), [False] * 4 + [True, False])
    ours = percentile_intervals(stratified_bootstrap([curve], batched_iqm_curve, reps, np.random.default_rng(0)))
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs["x"]))
    np.testing.assert_allclose(ours, theirs["x"], atol=0.015)  # NaN == NaN, finite steps as the test above


def test_profile_intervals_on_nan_scores_match_rliable(table):
    scores = _with_nan(table, [(2, 3), (0, 5)])
    taus = np.linspace(0, 1.2, 7)
    reps = 5_000
    points, theirs = _rliable(scores, lambda s: rly.score_distributions(s, taus), reps)
    assert np.all(np.isfinite(points["x"])) and np.all(np.isfinite(theirs["x"]))  # NaN counts as below tau
    ours = percentile_intervals(stratified_bootstrap([scores], batched_score_distributions(taus), reps,
                                                     np.random.default_rng(0)))
    np.testing.assert_allclose(ours, theirs["x"], atol=1 / scores.size)  # fractions move in steps of 1/cells
