"""Progress of a suite run on the console: one line per trial event and a periodic summary.

Tune's own table is switched off (``verbose=0``); this callback prints what a person watching a
suite wants: trials done / running / failed / pending and the elapsed time.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from ray.tune import Callback

from harness.run.recorder import error_of, trial_of
from harness.run.trainable import config_error_of

__all__ = ["ProgressPrinter", "format_elapsed"]


def format_elapsed(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _label(trial) -> str:
    return trial_of(trial).label


class ProgressPrinter(Callback):
    """Prints trial events and, every ``interval_s``, the counts of done / running / failed trials.

    ``total`` counts the suite's trials; ``done_before`` those finished by earlier runs.
    """

    def __init__(self, total: int, done_before: int, max_failures: int, interval_s: float = 30.0,
                 write: Callable[[str], None] | None = None) -> None:
        self.total = total
        self.done_before = done_before
        self.max_failures = max_failures
        self.interval_s = interval_s
        self.write = write or (lambda line: print(line, file=sys.stdout, flush=True))
        self.started = time.monotonic()
        self._last_summary = self.started
        self._last: dict[str, tuple[int, float]] = {}
        self._finished: set[str] = set()  # Tune still lists a trial as RUNNING in its end callbacks
        self._done = self._failed = 0

    def _line(self, text: str) -> None:
        self.write(f"[{format_elapsed(time.monotonic() - self.started)}] {text}")

    def summary(self, trials) -> str:
        running = sum(1 for t in trials if t.status == "RUNNING" and t.trial_id not in self._finished)
        done = self.done_before + self._done
        pending = self.total - done - running - self._failed
        return f"{done}/{self.total} done, {running} running, {self._failed} failed, {pending} pending"

    def on_trial_start(self, iteration, trials, trial, **info):
        self._line(f"start  {_label(trial)}")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._last[trial.trial_id] = (int(result.get("step", 0)), float(result.get("score", float("nan"))))

    def on_trial_recover(self, iteration, trials, trial, **info):
        short, _ = error_of(trial)
        self._line(f"retry  {_label(trial)} (failure {trial.num_failures} of at most "
                   f"{self.max_failures + 1} tries; resumes from its last checkpoint): {short}")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._failed += 1
        self._finished.add(trial.trial_id)
        short, _ = error_of(trial)
        self._line(f"FAILED {_label(trial)}: {short} | {self.summary(trials)}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finished.add(trial.trial_id)
        error = config_error_of(trial.last_result or {})
        if error is not None:  # ended on a ConfigError, which Tune was not given to retry
            self._failed += 1
            self._line(f"FAILED {_label(trial)}: {error} (bad input: not retried) | {self.summary(trials)}")
            return
        self._done += 1
        step, score = self._last.get(trial.trial_id, (None, None))
        last = f" score {score:.4g} at {step}" if step is not None else ""
        self._line(f"done   {_label(trial)}{last} | {self.summary(trials)}")

    def on_step_end(self, iteration, trials, **info):
        now = time.monotonic()
        if now - self._last_summary >= self.interval_s:
            self._last_summary = now
            running = [f"{_label(t)} at {self._last[t.trial_id][0]}" for t in trials
                       if t.status == "RUNNING" and t.trial_id in self._last and t.trial_id not in self._finished]
            detail = f" ({'; '.join(running)})" if running else ""
            self._line(self.summary(trials) + detail)
