"""A search sample's objective: an aggregate of its trials' final scores over seeds x tasks.

The final score of a trial is its last evaluation, normalized on the suite's benchmark where the
task has reference scores (a suite that searches over one task without references uses its raw
score; a search over several tasks needs references, checked when the suite loads). The aggregate
is rliable's: ``iqm`` (the interquartile mean over every run and task, the default) or ``mean``
(the mean of the per-task means).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from harness.store import TrialState
from harness.suite import Trial

__all__ = ["final_matrix", "aggregate", "AGGREGATES"]

AGGREGATES = ("iqm", "mean")


def _final(trial: Trial, state: TrialState, benchmark: str) -> float:
    from harness.stats.normalize import has_reference, normalized_score

    score = float(state.records.value(-1, "score"))
    task = trial.spec.task
    return normalized_score(benchmark, task, score) if has_reference(benchmark, task) else score


def final_matrix(trials: Sequence[Trial], states: Mapping[str, TrialState], benchmark: str) -> np.ndarray | None:
    """``(seeds, tasks)`` final scores of one sample's trials, or ``None`` unless every one is done."""
    if not trials or any(states[t.trial_id].status != "done" or not states[t.trial_id].records for t in trials):
        return None
    tasks = sorted({t.spec.task for t in trials})
    seeds = sorted({t.spec.seed for t in trials})
    matrix = np.full((len(seeds), len(tasks)), np.nan)
    for trial in trials:
        matrix[seeds.index(trial.spec.seed), tasks.index(trial.spec.task)] = _final(
            trial, states[trial.trial_id], benchmark)
    return matrix


def aggregate(matrix: np.ndarray, objective: str) -> float | None:
    """rliable's ``aggregate_iqm`` or ``aggregate_mean`` of ``matrix``; ``None`` if it is NaN."""
    from rliable import metrics

    value = float(metrics.aggregate_iqm(matrix) if objective == "iqm" else metrics.aggregate_mean(matrix))
    return value if math.isfinite(value) else None
