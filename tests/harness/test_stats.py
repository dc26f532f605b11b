"""Aggregates against independent numpy computations; intervals, seeding and edge cases."""

import numpy as np

from harness.stats.bootstrap import batched_aggregates
import pandas as pd
import pytest

from adapters.errors import ConfigError, UnknownNameError
from harness import stats

REPS = 100

# a fixed (4 runs x 3 tasks) matrix; 12 values, so the IQM keeps the middle 6
X = np.array([
    [0.10, 0.90, 1.30],
    [0.20, 0.70, 0.40],
    [0.35, 0.85, 1.10],
    [0.05, 0.60, 0.95],
])
Y = np.array([
    [0.15, 0.50, 0.90],
    [0.25, 0.55, 0.30],
    [0.05, 0.65, 0.80],
])


def _iqm(scores):
    values = np.sort(scores, axis=None)
    cut = len(values) // 4
    return values[cut:len(values) - cut].mean()


def _poi(x, y):
    per_task = []
    for t in range(x.shape[1]):
        greater = (x[:, t][:, None] > y[:, t][None, :]).sum()
        ties = (x[:, t][:, None] == y[:, t][None, :]).sum()
        per_task.append((greater + 0.5 * ties) / (x.shape[0] * y.shape[0]))
    return np.mean(per_task)


def test_aggregates_equal_independent_numpy():
    out = stats.aggregate_estimates({"x": X}, reps=REPS, seed=0)["x"]
    assert out["iqm"][0] == pytest.approx(_iqm(X))
    assert out["iqm"][0] == pytest.approx(np.mean([0.35, 0.40, 0.60, 0.70, 0.85, 0.90]))
    assert out["mean"][0] == pytest.approx(X.mean(axis=0).mean())
    assert out["median"][0] == pytest.approx(np.median(X.mean(axis=0)))
    assert out["optimality_gap"][0] == pytest.approx(1 - np.minimum(X, 1).mean())


def test_every_interval_contains_its_point_estimate():
    out = stats.aggregate_estimates({"x": X, "y": Y}, reps=REPS, seed=3)
    for algo in out.values():
        for point, low, high in algo.values():
            assert low <= point <= high and low < high
    poi = stats.probability_of_improvement({"x vs y": (X, Y)}, reps=REPS, seed=3)["x vs y"]
    assert poi[1] <= poi[0] <= poi[2]


def test_probability_of_improvement_equals_mann_whitney_by_hand():
    point = stats.probability_of_improvement({"x vs y": (X, Y), "y vs x": (Y, X)}, reps=20, seed=0)
    assert point["x vs y"][0] == pytest.approx(_poi(X, Y))
    assert point["x vs y"][0] + point["y vs x"][0] == pytest.approx(1.0)
    same = stats.probability_of_improvement({"x vs x": (X, X)}, reps=20, seed=0)["x vs x"]
    assert same[0] == pytest.approx(0.5)


def test_intervals_are_rliables_under_the_documented_seed():
    from rliable import library as rly
    from rliable import metrics

    def iqm(scores):
        return np.array([metrics.aggregate_iqm(scores)])

    ours_points, ours = stats.interval_estimates({"x": X, "y": Y}, iqm, batched=batched_aggregates(["iqm"]),
                                                 reps=REPS, seed=7, bootstrap="rliable")
    for name, scores in (("x", X), ("y", Y)):
        np.random.seed(stats.key_seed(7, name))
        points, theirs = rly.get_interval_estimates({name: scores}, iqm, reps=REPS)
        np.testing.assert_array_equal(ours[name], theirs[name])
        np.testing.assert_array_equal(ours_points[name], points[name])


def test_default_vectorized_intervals_agree_with_rliable_and_points_are_exact():
    from rliable import library as rly
    from rliable import metrics

    funcs = [metrics.aggregate_iqm, metrics.aggregate_mean, metrics.aggregate_median,
             metrics.aggregate_optimality_gap]
    ours = stats.aggregate_estimates({"x": X}, reps=20_000, seed=3)["x"]
    np.random.seed(0)
    points, theirs = rly.get_interval_estimates({"x": X}, lambda s: np.array([f(s) for f in funcs]), reps=20_000)
    for i, name in enumerate(("iqm", "mean", "median", "optimality_gap")):
        assert ours[name][0] == points["x"][i]  # rliable's own metric functions: exactly equal
        assert ours[name][1] == pytest.approx(theirs["x"][0, i], abs=0.01)
        assert ours[name][2] == pytest.approx(theirs["x"][1, i], abs=0.01)


def test_same_seed_same_intervals_and_global_state_restored():
    np.random.seed(123)
    expected_next = np.random.random()
    np.random.seed(123)
    first = stats.aggregate_estimates({"x": X, "y": Y}, reps=REPS, seed=1)
    assert np.random.random() == expected_next  # the caller's stream is untouched
    second = stats.aggregate_estimates({"y": Y, "x": X}, reps=REPS, seed=1)  # order does not matter
    assert first == second
    other = stats.aggregate_estimates({"x": X}, reps=REPS, seed=2)
    assert other["x"]["iqm"] != first["x"]["iqm"]  # the seed is used


def test_single_run_gives_zero_width_intervals():
    out = stats.aggregate_estimates({"x": X[:1]}, reps=20, seed=0)["x"]
    for point, low, high in out.values():
        assert low == point == high


def test_performance_profile_point_is_fraction_above_tau():
    taus = stats.tau_grid({"x": X, "y": Y}, points=11)
    assert taus[0] == 0.0 and taus[-1] == pytest.approx(1.3)
    profiles, intervals = stats.performance_profiles({"x": X}, taus, reps=REPS, seed=0)
    np.testing.assert_allclose(profiles["x"], [(X > t).mean() for t in taus])
    assert intervals["x"].shape == (2, 11)
    assert np.all(intervals["x"][0] <= profiles["x"] + 1e-12) and np.all(profiles["x"] <= intervals["x"][1] + 1e-12)


def test_sample_efficiency_is_iqm_per_step():
    curves = np.stack([X, X + 0.1, X + 0.2], axis=-1)  # (runs, tasks, steps)
    points, intervals = stats.sample_efficiency({"x": curves}, reps=REPS, seed=0)
    np.testing.assert_allclose(points["x"], [_iqm(X), _iqm(X) + 0.1, _iqm(X) + 0.2])
    assert intervals["x"].shape == (2, 3)



# X with a fourth task, and with a NaN final score (a run whose last evaluation diverged); 4 tasks,
# so that the IQM's trimmed quarter (4 of 16 cells) can hold every resampled copy of the NaN cell
WIDE = np.hstack([X, Y[[0, 1, 2, 0], :1]])
X_NAN = WIDE.copy()
X_NAN[1, 1] = np.nan


def _same_nans_and_points(ours, theirs, atol):
    """Points and intervals of two ``interval_estimates`` results: NaN at the same places, finite
    points exactly equal, finite interval end-points within ``atol``."""
    for name in theirs[0]:
        np.testing.assert_array_equal(ours[0][name], theirs[0][name])  # NaN == NaN here
        np.testing.assert_array_equal(np.isnan(ours[1][name]), np.isnan(theirs[1][name]))
        np.testing.assert_allclose(ours[1][name], theirs[1][name], rtol=0, atol=atol)


def test_nan_scores_give_rliables_nans_in_every_statistic():
    reps = 2_000
    both = {b: stats.aggregate_estimates({"x": X_NAN, "y": WIDE}, reps=reps, seed=0, bootstrap=b)
            for b in stats.BOOTSTRAPS}
    for metric in stats.METRICS:
        assert all(np.isnan(both[b]["x"][metric]).all() for b in both)  # point and both ends
        assert all(np.isfinite(both[b]["y"][metric]).all() for b in both)
    pairs = {"x vs y": (X_NAN, WIDE[:3]), "y vs x": (WIDE[:3], X_NAN), "x vs x": (X_NAN, X_NAN)}
    poi = {b: stats.probability_of_improvement(pairs, reps=200, seed=0, bootstrap=b) for b in stats.BOOTSTRAPS}
    assert all(np.isnan(poi[b][k]).all() for b in poi for k in pairs)


def test_nan_scores_profiles_and_curves_match_rliable():
    taus = np.linspace(0.0, 1.3, 6)
    profiles = {b: stats.performance_profiles({"x": X_NAN}, taus, reps=5_000, seed=0, bootstrap=b)
                for b in stats.BOOTSTRAPS}
    assert np.all(np.isfinite(profiles["rliable"][1]["x"]))  # rliable counts a NaN as below every tau
    _same_nans_and_points(profiles["vectorized"], profiles["rliable"], atol=1 / X_NAN.size)
    curves = np.stack([WIDE, X_NAN, WIDE + 0.1], axis=-1)  # a NaN evaluation at the middle step
    curve = {b: stats.sample_efficiency({"x": curves}, reps=5_000, seed=0, bootstrap=b) for b in stats.BOOTSTRAPS}
    np.testing.assert_array_equal(np.isnan(curve["rliable"][1]["x"]).any(axis=0), [False, True, False])
    _same_nans_and_points(curve["vectorized"], curve["rliable"], atol=0.02)


def test_tau_grid_spans_the_finite_scores():
    taus = stats.tau_grid({"x": X_NAN * 2, "y": Y}, points=5)
    assert taus[0] == 0.0 and taus[-1] == pytest.approx(2.6)  # twice X's largest score
    np.testing.assert_array_equal(stats.tau_grid({"x": np.full((2, 2), np.nan)}, points=3), [0.0, 0.5, 1.0])


def _results(rows):
    return pd.DataFrame(rows, columns=["trial_id", "algo", "task", "seed", "step", "score", "normalized_score"])


def test_final_scores_last_and_mean_of_last_k():
    rows = []
    for seed, scores in ((0, [1.0, 2.0, 4.0]), (1, [3.0, 5.0, 9.0])):
        for step, score in zip((300, 100, 200), scores):  # out of order on purpose
            rows.append((f"t{seed}", "sac", "gym:Hopper-v5", seed, step, score, score / 10))
    results = _results(rows)
    last = stats.final_scores(results, final="last")
    assert list(last["score"]) == [1.0, 3.0] and list(last["step"]) == [300, 300]
    mean2 = stats.final_scores(results, final="mean:2")
    assert list(mean2["score"]) == [2.5, 6.0] and list(mean2["evaluations"]) == [2, 2]
    assert list(mean2["normalized_score"]) == pytest.approx([0.25, 0.6])
    assert list(stats.final_scores(results, final="mean:10")["score"]) == pytest.approx([7 / 3, 17 / 3])


def test_a_nan_among_the_last_k_evaluations_makes_the_final_score_nan():
    rows = [("t0", "sac", "gym:Hopper-v5", 0, step, score, score / 10)
            for step, score in ((100, 1.0), (200, 2.0), (300, np.nan))]
    results = _results(rows)
    for final in ("last", "mean:2", "mean:3"):
        finals = stats.final_scores(results, final=final)
        assert np.isnan(finals["score"][0]) and np.isnan(finals["normalized_score"][0])  # as numpy's mean
    assert stats.final_scores(results.iloc[:2], final="mean:2")["score"][0] == 1.5


@pytest.mark.parametrize("bad", ["first", "mean:0", "mean:x", "mean"])
def test_bad_final_rule_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="'last'.*'mean:K'"):
        stats.parse_final(bad)


def test_unequal_runs_are_truncated_with_a_note_and_missing_tasks_listed():
    rows = [(f"a{t}{s}", "a", t, s, 1, 0.0, float(s)) for t in ("t1", "t2") for s in range(3 if t == "t1" else 2)]
    rows += [(f"b{s}", "b", "t1", s, 1, 0.0, float(s)) for s in range(2)]
    finals = stats.final_scores(_results(rows))
    tasks, notes = stats.common_tasks(finals, ["a", "b"])
    assert tasks == ["t1"] and "task t2 is left out" in notes[0] and "b" in notes[0]
    matrices, notes = stats.score_matrices(finals, "normalized_score", ["t1", "t2"], ["a"])
    assert matrices["a"].shape == (2, 2) and "unequal run counts" in notes[0]
    np.testing.assert_array_equal(matrices["a"][:, 0], [0.0, 1.0])  # the first seeds kept


def test_step_matrices_keep_shared_steps():
    rows = [("t0", "a", "t1", 0, s, 0.0, s / 10) for s in (1, 2, 3)] + [("t1", "a", "t1", 1, s, 0.0, s) for s in (1, 3)]
    steps, curves, notes = stats.step_matrices(_results(rows), "normalized_score", ["t1"], ["a"])
    assert list(steps) == [1, 3] and curves["a"].shape == (2, 1, 2) and "left out" in notes[0]
    np.testing.assert_allclose(curves["a"][:, 0, :], [[0.1, 0.3], [1.0, 3.0]])


def test_unknown_bootstrap_lists_known():
    with pytest.raises(UnknownNameError, match="rliable"):
        stats.interval_estimates({"x": X}, lambda s: np.array([s.mean()]), batched=batched_aggregates(["mean"]),
                                 reps=10, seed=0, bootstrap="nope")


# ----------------------------------------------------------------------------- ERA against its baseline


def test_iqm_difference_is_rliables_iqm_difference_with_rliables_interval():
    from rliable import library as rly
    from rliable import metrics

    def diff(x, y):
        return np.array([metrics.aggregate_iqm(x) - metrics.aggregate_iqm(y)])

    ours = stats.iqm_difference({"x vs y": (X, Y)}, reps=REPS, seed=5, bootstrap="rliable")["x vs y"]
    assert ours[0] == pytest.approx(_iqm(X) - _iqm(Y))  # by hand: trimmed means of the sorted values
    np.random.seed(stats.key_seed(5, "x vs y"))
    _, theirs = rly.get_interval_estimates({"x vs y": [X, Y]}, diff, reps=REPS)
    assert ours[1:] == pytest.approx(tuple(theirs["x vs y"][:, 0]), abs=1e-12)
    # the vectorized bootstrap draws another stream of the same distribution
    both = {b: stats.iqm_difference({"x vs y": (X, Y)}, reps=500, seed=0, bootstrap=b)["x vs y"]
            for b in stats.BOOTSTRAPS}
    assert both["vectorized"][0] == both["rliable"][0]
    np.testing.assert_allclose(both["vectorized"][1:], both["rliable"][1:], rtol=0, atol=0.05)
    assert stats.iqm_difference({"x vs x": (X, X)}, reps=20, seed=0)["x vs x"][0] == 0.0


@pytest.mark.parametrize(("poi", "runs", "expected"), [
    ((0.69, 0.52, 0.87), (5, 5), "ERA better"),
    ((0.16, 0.00, 0.48), (5, 5), "ERA worse"),
    ((0.55, 0.30, 0.80), (5, 5), "no clear difference"),
    ((0.75, 0.50, 1.00), (5, 5), "no clear difference"),  # an end at 0.5 contains it
    ((0.25, 0.00, 0.50), (5, 5), "no clear difference"),
    ((1.00, 1.00, 1.00), (2, 5), "too few runs"),  # two runs: a handful of distinct resamples
    ((1.00, 1.00, 1.00), (5, 2), "too few runs"),
    ((None, None, None), (5, 5), "not computable"),  # a NaN score went into it (null in report.json)
    ((float("nan"), float("nan"), float("nan")), (1, 1), "not computable"),
])
def test_verdict_follows_the_documented_rule(poi, runs, expected):
    assert stats.verdict(poi, runs) == expected
    assert expected in stats.VERDICTS
