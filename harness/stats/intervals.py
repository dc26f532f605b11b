"""Aggregate statistics over (runs x tasks) score matrices, with rliable (Agarwal et al. 2021).

Pure functions: tables in, arrays and numbers out; drawing lives in ``harness.report.plots``. Every
uncertainty estimate goes through :func:`interval_estimates`, the single place that bootstraps:
``bootstrap="vectorized"`` (the default, :mod:`harness.stats.bootstrap`: all repetitions at once, seeded by
an explicit generator) or ``bootstrap="rliable"`` (rliable's own routine, to cross-check). Point
estimates always come from rliable's metric functions.

rliable 1.2.0 ignores its ``random_state`` argument (its stratified bootstrap draws with
``np.random.choice``), so :func:`interval_estimates` seeds numpy's global generator around each
call and restores its state afterwards (:func:`seeded_global_numpy`).

NaN scores (a run whose evaluation diverged) are kept, not dropped: every statistic is then what
rliable gives, under either bootstrap. Aggregates and the probability of improvement are NaN (point
and interval), sample-efficiency curves are NaN at the steps holding one, and performance profiles
count a NaN as below every threshold.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from adapters.errors import ConfigError, unknown_name
from harness.stats.bootstrap import (
    BOOTSTRAPS,
    BatchedStatistic,
    batched_aggregates,
    batched_iqm_curve,
    batched_probability_of_improvement,
    batched_score_distributions,
    percentile_intervals,
    stratified_bootstrap,
)

__all__ = [
    "BOOTSTRAPS",
    "METRICS",
    "aggregate_estimates",
    "common_tasks",
    "final_scores",
    "interval_estimates",
    "key_seed",
    "parse_final",
    "performance_profiles",
    "probability_of_improvement",
    "sample_efficiency",
    "score_matrices",
    "seeded_global_numpy",
    "step_matrices",
    "tau_grid",
]


Estimate = tuple[float, float, float]  # (point, ci low, ci high)


def _metrics() -> dict[str, Callable[[np.ndarray], float]]:
    from rliable import metrics

    return {
        "iqm": metrics.aggregate_iqm,
        "mean": metrics.aggregate_mean,
        "median": metrics.aggregate_median,
        "optimality_gap": metrics.aggregate_optimality_gap,
    }


#: aggregate metric names, in report order (rliable's aggregate_* functions)
METRICS = ("iqm", "mean", "median", "optimality_gap")


# ----------------------------------------------------------------------------- final scores


def parse_final(final: str) -> int:
    """How many last evaluations make a run's final score: ``last`` -> 1, ``mean:K`` -> K."""
    text = str(final).strip().lower()
    if text == "last":
        return 1
    head, sep, count = text.partition(":")
    if head == "mean" and sep and count.isdigit() and int(count) >= 1:
        return int(count)
    raise ConfigError(
        f"unknown final-score rule {final!r}: use 'last' (the last evaluation) or 'mean:K' "
        f"(the mean of the last K evaluations, K >= 1)"
    )


def final_scores(
    results: pd.DataFrame, columns: Sequence[str] = ("score", "normalized_score"), final: str = "last"
) -> pd.DataFrame:
    """One row per trial: the mean of ``columns`` over its last K evaluations (by step).

    ``results`` has one row per evaluation with ``trial_id, algo, task, seed, step`` and
    ``columns``. Returns ``trial_id, algo, task, seed, step`` (the last step), ``evaluations``
    (how many were averaged) and ``columns``, sorted by ``algo, task, seed, trial_id``. A NaN among
    the last K evaluations makes the final score NaN, as numpy's mean does (pandas' mean would skip
    it and average the others).
    """
    k = parse_final(final)
    keys = ["trial_id", "algo", "task", "seed"]
    if results.empty:
        return pd.DataFrame(columns=[*keys, "step", "evaluations", *columns])
    ordered = results.sort_values([*keys, "step"], kind="mergesort")
    tail = ordered.groupby("trial_id", sort=False).tail(k)
    grouped = tail.groupby(keys, sort=True)
    has_nan = tail[list(columns)].isna().groupby([tail[key] for key in keys], sort=True).any()
    out = grouped[list(columns)].mean().mask(has_nan)
    out["step"] = grouped["step"].max()
    out["evaluations"] = grouped["step"].size()
    out = out.reset_index()
    return out[[*keys, "step", "evaluations", *columns]].sort_values(
        ["algo", "task", "seed", "trial_id"], kind="mergesort"
    ).reset_index(drop=True)


def common_tasks(finals: pd.DataFrame, algos: Sequence[str]) -> tuple[list[str], list[str]]:
    """Tasks on which every algorithm in ``algos`` has at least one run, and notes on the others.

    Aggregates compare algorithms on one task set, so a task missing for some algorithm is left
    out of them (and said so) rather than silently biasing one side.
    """
    notes = []
    present = {a: set(finals.loc[finals["algo"] == a, "task"]) for a in algos}
    every = sorted(set().union(*present.values())) if present else []
    common = [t for t in every if all(t in present[a] for a in algos)]
    for task in every:
        if task not in common:
            missing = [a for a in algos if task not in present[a]]
            notes.append(
                f"task {task} is left out of the aggregates: no finished run of "
                f"{', '.join(missing)} on it"
            )
    return common, notes


def score_matrices(
    finals: pd.DataFrame, column: str, tasks: Sequence[str], algos: Sequence[str]
) -> tuple[dict[str, np.ndarray], list[str]]:
    """``{algo: array (runs, tasks)}`` of ``finals[column]``, tasks in the given order.

    rliable needs as many runs on every task; with unequal counts an algorithm keeps the first
    ``n`` seeds of each task (``n`` its smallest count) and a note says so. Rows of one task are
    ordered by seed. Every task must have a run of every algorithm (see :func:`common_tasks`).
    """
    matrices, notes = {}, []
    for algo in algos:
        rows = finals[finals["algo"] == algo]
        columns = [rows.loc[rows["task"] == t].sort_values("seed", kind="mergesort")[column].to_numpy(float)
                   for t in tasks]
        counts = [len(c) for c in columns]
        n = min(counts)
        if len(set(counts)) > 1:
            listed = ", ".join(f"{t}: {c}" for t, c in zip(tasks, counts))
            notes.append(
                f"{algo} has unequal run counts per task ({listed}); its aggregates use the first "
                f"{n} seed(s) of each task"
            )
        matrices[algo] = np.stack([c[:n] for c in columns], axis=1)
    return matrices, notes


def step_matrices(
    results: pd.DataFrame, column: str, tasks: Sequence[str], algos: Sequence[str]
) -> tuple[np.ndarray, dict[str, np.ndarray], list[str]]:
    """``(steps, {algo: array (runs, tasks, steps)})`` of ``column`` at the steps every run shares.

    Evaluations at steps some run lacks are dropped (and a note says so): rliable's curves need
    one array per algorithm. Runs per task are truncated as in :func:`score_matrices`.
    """
    notes: list[str] = []
    runs = results[results["algo"].isin(algos) & results["task"].isin(tasks)]
    step_sets = [set(g["step"]) for _, g in runs.groupby("trial_id")]
    if not step_sets:
        return np.array([], dtype=int), {}, notes
    shared = sorted(set.intersection(*step_sets))
    dropped = sorted(set.union(*step_sets) - set(shared))
    if dropped:
        notes.append(
            f"sample-efficiency curves use the {len(shared)} evaluation step(s) every run has; "
            f"{len(dropped)} other step(s) are left out"
        )
    steps = np.asarray(shared, dtype=np.int64)
    curves = {}
    for algo in algos:
        per_task = []
        for task in tasks:
            trials = runs[(runs["algo"] == algo) & (runs["task"] == task)]
            order = trials.drop_duplicates("trial_id").sort_values(["seed", "trial_id"], kind="mergesort")
            rows = [trials[trials["trial_id"] == tid].set_index("step")[column].reindex(steps).to_numpy(float)
                    for tid in order["trial_id"]]
            per_task.append(rows)
        n = min(len(r) for r in per_task)
        curves[algo] = (np.stack([np.stack(r[:n]) for r in per_task], axis=1) if n
                        else np.empty((0, len(tasks), len(steps))))
    return steps, curves, notes


# ----------------------------------------------------------------------------- bootstrap


@contextlib.contextmanager
def seeded_global_numpy(seed: int) -> Iterator[None]:
    """Seed numpy's global generator inside the block and restore its previous state afterwards.

    rliable 1.2.0's ``StratifiedBootstrap.update_indices`` calls ``np.random.choice`` and ignores
    ``random_state``; this makes its intervals reproducible without leaking state to the caller.
    """
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def key_seed(seed: int, key: str) -> int:
    """The generator seed for one entry of a score dict: independent of the other entries and of
    their order, so adding an algorithm to a report leaves the others' intervals unchanged."""
    return int(np.random.SeedSequence([int(seed), zlib.crc32(key.encode())]).generate_state(1)[0])


def interval_estimates(
    score_dict: Mapping[str, np.ndarray | tuple[np.ndarray, ...]],
    func: Callable[..., np.ndarray],
    *,
    batched: BatchedStatistic,
    reps: int,
    seed: int,
    confidence: float = 0.95,
    bootstrap: str = "vectorized",
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Point estimates and percentile stratified-bootstrap intervals of ``func`` per entry.

    Args:
        score_dict: ``{name: array (runs, tasks, ...)}``, or ``{name: (x, y, ...)}`` of arrays
            resampled independently (probability of improvement).
        func: maps the array(s) to a 1-D array of statistics (rliable's functions); gives the
            point estimates, and the intervals under ``bootstrap="rliable"``.
        batched: the same statistic on stacked resamples ``(chunk, runs, tasks, ...)`` ->
            ``(chunk, stats)`` (see :mod:`harness.stats.bootstrap`), for ``bootstrap="vectorized"``.
        reps: bootstrap repetitions.
        seed: entry ``name`` is bootstrapped from the seed ``key_seed(seed, name)``: a
            ``numpy.random.Generator`` (vectorized) or numpy's global generator (rliable).
        confidence: coverage of the intervals.
        bootstrap: ``vectorized`` (default) or ``rliable`` (its ``get_interval_estimates``).

    Returns:
        ``({name: array (stats,)}, {name: array (2, stats)})``, lower bounds first, as rliable.
    """
    if bootstrap not in BOOTSTRAPS:
        raise unknown_name("bootstrap", bootstrap, BOOTSTRAPS)
    if reps < 1:
        raise ConfigError(f"bootstrap repetitions must be at least 1, got {reps}")
    from rliable import library as rly

    points, intervals = {}, {}
    for name, scores in score_dict.items():
        arrays = [scores] if isinstance(scores, np.ndarray) else list(scores)
        if bootstrap == "vectorized":
            rng = np.random.default_rng(key_seed(seed, name))
            distribution = stratified_bootstrap(arrays, batched, reps, rng)
            points[name] = np.atleast_1d(np.asarray(func(*arrays), dtype=float))
            intervals[name] = percentile_intervals(distribution, confidence).reshape(2, -1)
            continue
        entry = {name: scores if isinstance(scores, np.ndarray) else list(scores)}
        with seeded_global_numpy(key_seed(seed, name)):
            point, interval = rly.get_interval_estimates(
                entry, func, reps=reps, confidence_interval_size=confidence
            )
        points[name] = np.atleast_1d(np.asarray(point[name], dtype=float))
        intervals[name] = np.asarray(interval[name], dtype=float).reshape(2, -1)
    return points, intervals


# ----------------------------------------------------------------------------- estimates


def aggregate_estimates(
    score_dict: Mapping[str, np.ndarray],
    *,
    metrics: Sequence[str] = METRICS,
    reps: int,
    seed: int,
    confidence: float = 0.95,
    bootstrap: str = "vectorized",
) -> dict[str, dict[str, Estimate]]:
    """``{algo: {metric: (point, low, high)}}`` for rliable's aggregate metrics.

    ``score_dict`` maps an algorithm to its (runs, tasks) normalized scores. Metrics: ``iqm``
    (25%-trimmed mean over all runs and tasks), ``mean`` and ``median`` (of the per-task means),
    ``optimality_gap`` (``1 - mean(min(score, 1))``).
    """
    known = _metrics()
    for name in metrics:
        if name not in known:
            raise unknown_name("metric", name, known)
    funcs = [known[name] for name in metrics]

    def func(scores: np.ndarray) -> np.ndarray:
        return np.array([f(scores) for f in funcs])

    points, intervals = interval_estimates(score_dict, func, batched=batched_aggregates(metrics), reps=reps,
                                           seed=seed, confidence=confidence, bootstrap=bootstrap)
    return {
        algo: {m: (float(points[algo][i]), float(intervals[algo][0, i]), float(intervals[algo][1, i]))
               for i, m in enumerate(metrics)}
        for algo in score_dict
    }


def probability_of_improvement(
    pairs: Mapping[str, tuple[np.ndarray, np.ndarray]], *, reps: int, seed: int, confidence: float = 0.95,
    bootstrap: str = "vectorized",
) -> dict[str, Estimate]:
    """``{name: (P(X > Y), low, high)}`` for ``{name: (scores_x, scores_y)}``.

    ``scores_x`` (runs_x, tasks) and ``scores_y`` (runs_y, tasks) share the task order; the run
    counts may differ. P(X > Y) is the Mann-Whitney U statistic per task, averaged over tasks.
    """
    from rliable import metrics

    def func(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.array([metrics.probability_of_improvement(x, y)])

    points, intervals = interval_estimates(pairs, func, batched=batched_probability_of_improvement, reps=reps,
                                           seed=seed, confidence=confidence, bootstrap=bootstrap)
    return {k: (float(points[k][0]), float(intervals[k][0, 0]), float(intervals[k][1, 0])) for k in pairs}


def tau_grid(score_dict: Mapping[str, np.ndarray], points: int = 81) -> np.ndarray:
    """Thresholds for performance profiles: from min(0, lowest score) to max(1, highest score),
    over the finite scores (a NaN counts as below every threshold, so it does not move the grid)."""
    values = np.concatenate([np.ravel(s) for s in score_dict.values()]) if score_dict else np.zeros(1)
    values = values[np.isfinite(values)]
    if values.size == 0:
        values = np.zeros(1)
    low, high = min(0.0, float(np.min(values))), max(1.0, float(np.max(values)))
    return np.linspace(low, high, points)


def performance_profiles(
    score_dict: Mapping[str, np.ndarray], taus: np.ndarray, *, reps: int, seed: int, confidence: float = 0.95,
    bootstrap: str = "vectorized",
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Score distributions: ``({algo: fraction of runs with score > tau}, {algo: (2, taus)})``.

    The fraction is over all runs and tasks (rliable's ``score_distributions``); a NaN score counts
    as not above any threshold, as there.
    """
    from rliable import library as rly

    taus = np.asarray(taus, dtype=float)

    def func(scores: np.ndarray) -> np.ndarray:
        return rly.score_distributions(scores, taus)

    return interval_estimates(score_dict, func, batched=batched_score_distributions(taus), reps=reps, seed=seed,
                              confidence=confidence, bootstrap=bootstrap)


def sample_efficiency(
    curves: Mapping[str, np.ndarray], *, reps: int, seed: int, confidence: float = 0.95, bootstrap: str = "vectorized"
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """IQM at each evaluation step: ``({algo: (steps,)}, {algo: (2, steps)})``.

    ``curves`` maps an algorithm to an array (runs, tasks, steps); the IQM at a step is taken over
    all runs and tasks at that step; it is NaN, with its interval, at a step holding a NaN score.
    """
    from rliable import metrics

    def func(scores: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(scores[..., i]) for i in range(scores.shape[-1])])

    return interval_estimates(curves, func, batched=batched_iqm_curve, reps=reps, seed=seed, confidence=confidence,
                              bootstrap=bootstrap)
