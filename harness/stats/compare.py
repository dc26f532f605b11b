"""ERA against its baseline: the difference of IQM with its interval, and the verdict rule.

The verdict is a fixed rule on the probability of improvement (docs/reports.md, "The verdict rule"),
written down before any run was read, so that no report words its result after seeing it:

- ``not computable``: P(ERA > baseline) is NaN (a NaN score went into it);
- ``too few runs``: either side has fewer than :data:`MIN_RUNS` runs on some task: with so few, the
  bootstrap has a handful of distinct resamples and its intervals are too narrow to trust;
- ``ERA better``: the 95% interval of P(ERA > baseline) lies above 0.5;
- ``ERA worse``: it lies below 0.5;
- ``no clear difference``: it contains 0.5 (an end at exactly 0.5 counts as containing it).

The difference of IQM is the size of the effect, on the scores' own scale; it does not enter the
verdict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from harness.stats.bootstrap import batched_aggregates
from harness.stats.intervals import Estimate, interval_estimates

__all__ = ["MIN_RUNS", "VERDICTS", "iqm_difference", "verdict"]

#: fewest runs per task, on each side, that a verdict rests on
MIN_RUNS = 3

#: every verdict :func:`verdict` gives, in the order the docs list them
VERDICTS = ("ERA better", "ERA worse", "no clear difference", "too few runs", "not computable")


def iqm_difference(
    pairs: Mapping[str, tuple[np.ndarray, np.ndarray]], *, reps: int, seed: int, confidence: float = 0.95,
    bootstrap: str = "vectorized",
) -> dict[str, Estimate]:
    """``{name: (IQM(x) - IQM(y), low, high)}`` for ``{name: (scores_x, scores_y)}``.

    ``scores_x`` (runs_x, tasks) and ``scores_y`` (runs_y, tasks) share the task order. The two are
    resampled independently, each within its tasks, as for the probability of improvement, so the
    interval is that of a difference between two independent groups of runs.
    """
    from rliable import metrics

    def func(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(x) - metrics.aggregate_iqm(y)])

    iqm = batched_aggregates(("iqm",))

    def batched(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return iqm(x) - iqm(y)

    points, intervals = interval_estimates(pairs, func, batched=batched, reps=reps, seed=seed, confidence=confidence,
                                           bootstrap=bootstrap)
    return {k: (float(points[k][0]), float(intervals[k][0, 0]), float(intervals[k][1, 0])) for k in pairs}


def verdict(poi: tuple[float | None, float | None, float | None], runs: tuple[int, int]) -> str:
    """The verdict on ERA against its baseline (module docstring) from P(ERA > baseline) as
    ``(point, low, high)`` and the fewest runs per task of each side ``(era, baseline)``."""
    point, low, high = (math.nan if v is None else float(v) for v in poi)
    if not all(math.isfinite(v) for v in (point, low, high)):
        return "not computable"
    if min(runs) < MIN_RUNS:
        return "too few runs"
    if low > 0.5:
        return "ERA better"
    if high < 0.5:
        return "ERA worse"
    return "no clear difference"
