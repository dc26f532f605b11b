"""``era run`` of a suite with a ``search:`` block, as one Ray Tune experiment.

Tune takes its trials from a searcher (:class:`harness.search.feed.SampleSearcher`) that draws
samples from Ray Tune's search algorithms (:mod:`harness.search.searchers`), records each in
``search.json`` before its trials start, and hands Tune each sample's seeds x tasks as ordinary
trials of the store (keyed rows, checkpoints, resume and failures as data hold as for any suite;
workers are reused from sample to sample). When a sample's trials have all ended, its objective
(:mod:`harness.search.objective`) is told to the search algorithm. After ``samples`` samples, the
best one's settings, and the baseline, run on the suite's own (held-out) ``seeds``: the comparison
the report's headline reads.

A restart reads ``search.json``: evaluated samples are told to the new search algorithm, samples
that had not finished run first (their finished trials are not run again), and the search goes on
to the same number of samples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.run.runner import RunOptions, RunSummary, holding, run_suite
from harness.search.objective import aggregate, final_matrix
from harness.search.searchers import make_searcher
from harness.search.state import Sample, read_search_state
from harness.store import check_results_dir, read_states, save_tables
from harness.suite import Suite, Trial
from harness.suite.expansion import sample_trials

__all__ = ["run_search", "SearchSummary", "sample_name", "best_name", "search_trials"]


def sample_name(suite: Suite, index: int) -> str:
    return f"{suite.search.algorithm}[sample={index}]"


def best_name(suite: Suite) -> str:
    return f"{suite.search.algorithm}[best]"


@dataclass
class SearchSummary:
    """How a search ended: each sample's objective (``None``: failed or not evaluated), the best
    sample, and the summary of its run (``None`` when everything was done already)."""

    samples: list[Sample]
    objectives: list[float | None]
    best: int | None
    run: RunSummary | None
    interrupted: bool = False
    failed: list[tuple[str, str]] = field(default_factory=list)
    trials: list[Trial] = field(default_factory=list)


class _Trials:
    """Every trial of the search so far, in order, each once (two samples with the same settings
    share their trials)."""

    def __init__(self, fixed: Sequence[Trial]) -> None:
        self.fixed = list(fixed)
        self.by_sample: dict[int, list[Trial]] = {}
        self.final: list[Trial] = []

    def add_sample(self, suite: Suite, sample: Sample) -> list[Trial]:
        trials = sample_trials(suite, sample_name(suite, sample.index), sample.settings, suite.search.seeds)
        known = {t.trial_id: t for own in self.by_sample.values() for t in own}
        self.by_sample[sample.index] = [known.get(t.trial_id, t) for t in trials]
        return self.by_sample[sample.index]

    def all(self) -> list[Trial]:
        seen: dict[str, Trial] = {}
        for trials in [*self.by_sample.values(), self.final, self.fixed]:
            for trial in trials:
                seen.setdefault(trial.trial_id, trial)
        return list(seen.values())


def search_trials(suite: Suite, fixed: Sequence[Trial], out: Path) -> list[Trial]:
    """The trials a search's results folder holds: every recorded sample's, the best's on the
    held-out seeds (once chosen) and ``fixed`` (the other algorithms on the held-out seeds)."""
    state = read_search_state(out, suite.search)
    trials = _Trials(fixed)
    for sample in state.samples:
        trials.add_sample(suite, sample)
    if state.best is not None:
        trials.final = sample_trials(suite, best_name(suite), state.samples[state.best].settings, suite.seeds)
    return trials.all()


def _objective(suite: Suite, trials: Sequence[Trial], states) -> float | None:
    matrix = final_matrix(trials, states, suite.benchmark)
    return None if matrix is None else aggregate(matrix, suite.search.objective)


def _concurrent(suite: Suite, per_sample: int, options: RunOptions) -> int:
    """Samples at once: the suite's ``concurrent``, else as many as the CPUs fit (at least 1)."""
    if suite.search.concurrent:
        return suite.search.concurrent
    import os

    import ray

    cpus = float(options.num_cpus or os.cpu_count() or 1)
    if ray.is_initialized():  # run_suite has started Ray (or joined the cluster) by the time Tune asks
        cpus = float(ray.cluster_resources().get("CPU", cpus))
    return max(1, int(cpus // (per_sample * max(suite.resources.cpus, 1e-9))))


def run_search(suite: Suite, fixed: Sequence[Trial], options: RunOptions,
               write: Callable[[str], None] | None = None) -> SearchSummary:
    """Run (or continue) the search of ``suite`` into ``options.out`` (module docstring), as one
    Tune experiment.

    ``fixed`` are the suite's other trials (its baseline on the held-out seeds). Raises
    ``ConfigError`` subclasses (exit 2) before running anything for a locked, foreign or corrupt
    results folder or ``search.json``, or a missing package.
    """
    from harness.search.feed import SampleSearcher

    write = write or (lambda line: print(line, flush=True))
    spec = suite.search
    options = RunOptions(**{**options.__dict__, "out": Path(options.out).resolve()})
    out = options.out
    with holding(out):
        check_results_dir(out, suite, options.resume)
        state = read_search_state(out, spec)
        sampling = make_searcher(spec)  # a missing Optuna is refused here, before anything is written
        trials = _Trials(fixed)
        for sample in state.samples:
            trials.add_sample(suite, sample)
        if state.best is not None:
            trials.final = sample_trials(suite, best_name(suite), state.samples[state.best].settings, suite.seeds)
        known = trials.all()
        states = read_states(out, [t.trial_id for t in known])
        objectives: dict[int, float | None] = {}
        pending = []
        for sample in state.samples:  # what an earlier run evaluated is told to this run's searcher
            own = trials.by_sample[sample.index]
            if all(states[t.trial_id].status == "done" for t in own):
                objectives[sample.index] = _objective(suite, own, states)
                sampling.replay(sample.settings, objectives[sample.index])
            else:
                pending.append(sample)
        if state.samples:
            write(f"{suite.name}: search resumes with {len(objectives)} of {spec.samples} samples evaluated"
                  + (f", {len(pending)} to finish" if pending else ""))
        per_sample = len(sample_trials(suite, "per-sample", {}, spec.seeds))
        total = per_sample * spec.samples + len(sample_trials(suite, "best", {}, suite.seeds)) + len(fixed)
        if len(objectives) == spec.samples and state.best is not None and all(
                states[t.trial_id].status == "done" for t in known):
            write(f"the search of {suite.name} is done already in {out}: all {spec.samples} samples, and the "
                  f"best on the held-out seeds")
            save_tables(out, suite, known, states)
            return SearchSummary(state.samples, [objectives[s.index] for s in state.samples], state.best, None,
                                 trials=known)

        def source(first: list[dict], register: Callable[[Trial], dict], run_states) -> SampleSearcher:
            return SampleSearcher(
                suite=suite, state=state, sampling=sampling, first=first, register=register,
                sample_trials=lambda s: trials.add_sample(suite, s),
                final_trials=lambda s: _final(trials, suite, s), states=run_states,
                objective=lambda own: _objective(suite, own, run_states), objectives=objectives,
                pending=pending, concurrent=_concurrent(suite, per_sample, options), out=out, write=write)

        run = run_suite(suite, known, options, write, source=source, total=total)
        summary = SearchSummary(state.samples, [objectives.get(s.index) for s in state.samples], state.best, run,
                                interrupted=run.interrupted, trials=trials.all())
        if not run.interrupted and len(objectives) == spec.samples and state.best is None:
            summary.failed.append((suite.name, "every search sample failed: there is no best to compare"))
    return summary


def _final(trials: _Trials, suite: Suite, best: Sample) -> list[Trial]:
    trials.final = sample_trials(suite, best_name(suite), best.settings, suite.seeds)
    return [*trials.final, *trials.fixed]
