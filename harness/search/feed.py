"""The Ray Tune ``Searcher`` that runs a whole search as one Tune experiment.

Tune asks it for a trial whenever it has room. It hands out, in order: the trials to run first (an
earlier run's unfinished samples, the baseline on the held-out seeds), then each new sample's
trials (its seeds x tasks) as the sample is drawn, then, once every sample is evaluated, the best
sample's trials on the held-out seeds. It answers ``None`` (Tune asks again) while it waits for
results, and ``FINISHED`` when nothing is left. A sample's objective is read from the trials' saved
states (the store), once all of them have ended, and told to the sampling searcher.

Tune's trials stay ordinary trials of the store, and the workers are reused from one sample to the
next, as in any suite run.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from ray.tune.search import Searcher

from harness.search.searchers import Searcher as Sampling
from harness.search.state import Sample, SearchState, write_search_state
from harness.store import TrialState
from harness.suite import Suite, Trial

__all__ = ["SampleSearcher"]

#: states of a trial that has ended for this run (done, or failed after its retries)
_ENDED = ("done", "failed")


class SampleSearcher(Searcher):
    """Hands Tune a search's trials (module docstring)."""

    def __init__(self, *, suite: Suite, state: SearchState, sampling: Sampling, first: list[dict],
                 register: Callable[[Trial], dict], sample_trials: Callable[[Sample], list[Trial]],
                 final_trials: Callable[[Sample], list[Trial]], states: Mapping[str, TrialState],
                 objective: Callable[[list[Trial]], float | None], objectives: dict[int, float | None],
                 pending: list[Sample], concurrent: int, out: Any, write: Callable[[str], None]) -> None:
        super().__init__()
        self.suite, self.state, self.sampling = suite, state, sampling
        self.queue: deque[dict] = deque()
        self.register, self.sample_trials, self.final_trials = register, sample_trials, final_trials
        self.states, self.objective, self.objectives = states, objective, objectives
        self.concurrent, self.out, self.write = concurrent, out, write
        self.asked: set[int] = set()  # drawn by this run's sampling searcher (others are replayed)
        self.handed: set[str] = set()  # trial ids queued so far: each is handed to Tune once
        # an earlier run's unfinished samples (their trials are among ``first``), waiting for their objective
        self.in_flight: dict[int, list[Trial]] = {s.index: self.sample_trials(s) for s in pending}
        self._enqueue(first)
        self.final_queued = state.best is not None and self._queue_final()

    # -- what Tune calls
    def suggest(self, trial_id: str) -> dict | str | None:
        self._collect()
        if not self.queue:
            self._draw()
        if not self.queue and not self.final_queued and len(self.objectives) >= self.suite.search.samples:
            self.final_queued = self._choose_best()
        if self.queue:
            return {"trial": self.queue.popleft()}  # the shape of a suite run's configs (runner._tuner)
        return Searcher.FINISHED if self.final_queued or self._all_failed() else None

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Nothing to do here: objectives are read from the store's states, which the recorder has
        updated by the next ``suggest``."""

    def save(self, checkpoint_path: str) -> None:
        """``search.json`` is the search's state; Tune's own snapshot of the searcher is not needed."""

    def restore(self, checkpoint_path: str) -> None:  # pragma: no cover - never restored (see save)
        pass

    # -- the search
    def _collect(self) -> None:
        """Tell the sampling searcher the objective of every sample whose trials have all ended."""
        for index, trials in list(self.in_flight.items()):
            if not all(self.states[t.trial_id].status in _ENDED for t in trials):
                continue
            del self.in_flight[index]
            value = self.objective(trials)
            self.objectives[index] = value
            sample = self.state.samples[index]
            if index in self.asked:
                self.sampling.tell(index, value)
            else:  # drawn by an earlier run, which did not finish it
                self.sampling.replay(sample.settings, value)
            best = _best(self.objectives)
            self.write(f"{self.suite.name}: sample {index + 1}/{self.suite.search.samples} {sample.settings}: "
                       f"{self.suite.search.objective} {_fmt(value)}; best so far: sample "
                       f"{best + 1 if best is not None else '-'} ({_fmt(self.objectives.get(best))})")

    def _draw(self) -> None:
        """A new sample, if the search needs one and fewer than ``concurrent`` are running; recorded
        in ``search.json`` before any of its trials is handed out."""
        if len(self.state.samples) >= self.suite.search.samples or len(self.in_flight) >= self.concurrent:
            return
        index = len(self.state.samples)
        sample = Sample(index, self.sampling.suggest(index))
        self.asked.add(index)
        self.state.samples.append(sample)
        write_search_state(self.out, self.state)
        self.in_flight[index] = trials = self.sample_trials(sample)
        self._enqueue(self.register(t) for t in trials)
        self.write(f"{self.suite.name}: sample {index + 1}/{self.suite.search.samples} drawn: {sample.settings}")

    def _choose_best(self) -> bool:
        best = _best(self.objectives)
        if best is None:
            return False
        self.state.best = best
        write_search_state(self.out, self.state)
        sample = self.state.samples[best]
        self.write(f"{self.suite.name}: best sample {best + 1} {sample.settings} ({self.suite.search.objective} "
                   f"{_fmt(self.objectives[best])}); now with {self.suite.search.baseline} on the held-out seeds "
                   f"{list(self.suite.seeds)}")
        return self._queue_final()

    def _queue_final(self) -> bool:
        self._enqueue(self.register(t) for t in self.final_trials(self.state.samples[self.state.best]))
        return True

    def _enqueue(self, configs) -> None:
        for config in configs:
            if config["trial_id"] not in self.handed and self.states[config["trial_id"]].status != "done":
                self.handed.add(config["trial_id"])
                self.queue.append(config)

    def _all_failed(self) -> bool:
        return len(self.objectives) >= self.suite.search.samples and _best(self.objectives) is None


def _fmt(value: float | None) -> str:
    return "failed" if value is None else f"{value:.4g}"


def _best(objectives: Mapping[int, float | None]) -> int | None:
    """The sample with the highest objective (the earliest among equals); ``None`` if none has one."""
    scored = [(value, -index) for index, value in objectives.items() if value is not None]
    return -max(scored)[1] if scored else None
