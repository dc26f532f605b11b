"""The driver's record of a suite run: a Tune callback that keeps ``DIR/trials/<id>.json`` current.

After each checkpoint it reads the records the adapters keep inside it (through
``adapters.trial.checkpoint``, which owns that format) and the worker's environment, and remembers where the checkpoint is, so that a later run resumes
from it. Statuses come from Tune's trial events. Tables are rewritten at most every few seconds
and at the end.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray.tune import Callback

from adapters.trial.checkpoint import PROGRESS_PATHS, parse_progress
from harness.errors import error_line, strip_ansi
from harness.run.trainable import ENVIRONMENT_FILE, config_error_of
from harness.store import TableCache, TrialState, save_tables, write_state

if TYPE_CHECKING:
    from ray.tune import Checkpoint
    from ray.tune.experiment import Trial as TuneTrial

    from harness.suite import Suite, Trial

__all__ = ["Recorder", "read_checkpoint", "checkpoint_pointer", "resume_point", "error_of", "trial_of"]


def checkpoint_pointer(checkpoint: "Checkpoint") -> str:
    """A string another process can open the checkpoint from: a local path or a URI."""
    kind = checkpoint.filesystem.type_name
    return checkpoint.path if kind == "local" else f"{kind}://{checkpoint.path}"


def _open(pointer: str):
    import pyarrow.fs

    if "://" in pointer:
        return pyarrow.fs.FileSystem.from_uri(pointer)
    return pyarrow.fs.LocalFileSystem(), pointer


def _read(fs, path: str) -> bytes | None:
    try:
        with fs.open_input_stream(path) as stream:
            return stream.readall()
    except (FileNotFoundError, OSError):
        return None


def read_checkpoint(fs, path: str) -> tuple[list[dict[str, float]], dict[str, Any]] | None:
    """The records and worker environment inside one checkpoint, or ``None`` if it is unreadable."""
    for relative in PROGRESS_PATHS:
        text = _read(fs, f"{path}/{relative}")
        if text is None:
            continue
        try:
            progress = parse_progress(text)
        except ValueError:
            continue
        environment = _read(fs, f"{path}/{ENVIRONMENT_FILE}")
        try:
            return progress.rows, json.loads(environment) if environment else {}
        except ValueError:
            return progress.rows, {}
    return None


def resume_point(pointer: str | None) -> str | None:
    """The checkpoint to resume from: ``pointer`` if it is still there, else the newest readable
    sibling (Tune keeps two per trial and may have replaced the one the driver saw last)."""
    if pointer is None:
        return None
    import pyarrow.fs

    fs, path = _open(pointer)
    if read_checkpoint(fs, path) is not None:
        return pointer
    parent = path.rstrip("/").rsplit("/", 1)[0]
    try:
        infos = fs.get_file_info(pyarrow.fs.FileSelector(parent, allow_not_found=True))
    except OSError:
        return None
    best: tuple[int, str] | None = None
    for info in infos:
        if info.type != pyarrow.fs.FileType.Directory or not info.base_name.startswith("checkpoint_"):
            continue
        found = read_checkpoint(fs, info.path)
        if found and found[0]:
            step = int(found[0][-1]["step"])
            if best is None or step > best[0]:
                best = (step, info.path)
    if best is None:
        return None
    return best[1] if "://" not in pointer else pointer.split("://", 1)[0] + "://" + best[1]


def _latest_error(trial: "TuneTrial") -> BaseException | str | None:
    """The latest error, as the exception when it unpickles here, else as text. Tune writes it next
    to the trial's driver-side artifacts first (the copy in storage arrives only with the next
    sync), as a pickled exception and as text."""
    import ray.cloudpickle as cloudpickle

    for path, read in ((trial.pickled_error_file, cloudpickle.load),
                       (trial.error_file, lambda f: f.read().decode())):
        if path and os.path.exists(path):
            try:
                with open(path, "rb") as handle:
                    return read(handle)
            except Exception:  # noqa: BLE001 - an unpicklable error still has its text file
                continue
    for get in (trial.get_pickled_error, trial.get_error):
        try:
            error = get()
        except Exception:  # noqa: BLE001
            continue
        if error is not None:
            return error
    return None


def error_of(trial: "TuneTrial") -> tuple[str, str]:
    """(one line, full text with the worker's traceback) of a trial's latest error; the line is the
    final exception's type and first line (:func:`harness.errors.error_line`)."""
    error = _latest_error(trial)
    if error is None:
        error = "the trial failed without an error message (its worker died?)"
    return error_line(error), strip_ansi(str(error)).strip()


def trial_of(trial: "TuneTrial") -> "Trial":
    """The suite's trial behind one of Tune's (the harness's config is ``{"trial": Trial.to_dict()
    plus "resume_from"}``)."""
    from harness.suite import Trial

    return Trial.from_dict(trial.config["trial"])


def trial_key(trial: "TuneTrial") -> str:
    return trial_of(trial).trial_id


class Recorder(Callback):
    """Keeps each trial's state file and the results tables current while Tune runs."""

    def __init__(self, out: Path, suite: "Suite", trials: Sequence["Trial"],
                 states: Mapping[str, TrialState], run_name: str, code_version: str,
                 table_interval_s: float = 5.0, cache: TableCache | None = None) -> None:
        self.out = Path(out)
        self.suite = suite
        self.trials = list(trials)
        self.states = dict(states)
        self.run_name = run_name
        self.code_version = code_version
        self.table_interval_s = table_interval_s
        #: the tables' parts from the last write: only trials whose records changed are rebuilt
        self.cache = cache if cache is not None else TableCache()
        self._dirty = False
        self._last_tables = 0.0

    def add(self, trial: "Trial", state: TrialState) -> None:
        """A trial that joined the run while it goes on (a search's sample)."""
        self.trials.append(trial)
        self.states[trial.trial_id] = state
        self._dirty = True

    # -- state changes
    def _save(self, state: TrialState) -> None:
        write_state(self.out, state)
        self._dirty = True

    def on_trial_start(self, iteration, trials, trial, **info):
        state = self.states[trial_key(trial)]
        state.status = "running"
        state.started_at = state.started_at or time.time()
        state.code_version = self.code_version
        if self.run_name not in state.runs:
            state.runs.append(self.run_name)
        self._save(state)

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        state = self.states[trial_key(trial)]
        found = read_checkpoint(checkpoint.filesystem, checkpoint.path)
        if found is None:
            return
        state.records, environment = found
        state.environment = environment or state.environment
        state.checkpoint = checkpoint_pointer(checkpoint)
        self._save(state)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        error = config_error_of(result)
        if error is None:
            return
        state = self.states[trial_key(trial)]  # the trial returns next: a config error is not retried
        state.status, state.error, state.traceback = "failed", error, error
        state.failures += 1
        state.finished_at = time.time()
        self._save(state)

    def on_trial_recover(self, iteration, trials, trial, **info):
        state = self.states[trial_key(trial)]
        state.failures += 1
        state.error, state.traceback = error_of(trial)
        self._save(state)

    def on_trial_error(self, iteration, trials, trial, **info):
        state = self.states[trial_key(trial)]
        state.status = "failed"
        state.failures += 1
        state.error, state.traceback = error_of(trial)
        state.finished_at = time.time()
        self._save(state)

    def on_trial_complete(self, iteration, trials, trial, **info):
        state = self.states[trial_key(trial)]
        if config_error_of(trial.last_result or {}) is not None:  # failed, in on_trial_result
            return
        state.status = "done"
        state.error = state.traceback = None
        state.finished_at = time.time()
        self._save(state)

    # -- tables
    def on_step_end(self, iteration, trials, **info):
        if self._dirty and time.monotonic() - self._last_tables >= self.table_interval_s:
            self.write_tables()

    def on_experiment_end(self, trials, **info):
        self.write_tables()

    def write_tables(self) -> None:
        save_tables(self.out, self.suite, self.trials, self.states, self.cache)
        self._dirty = False
        self._last_tables = time.monotonic()
