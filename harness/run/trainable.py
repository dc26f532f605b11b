"""The Ray Tune trainable: one trial of a suite, run by the adapters' plain trial function.

It runs on a Ray worker. The trial's ``TrialCheckpoint`` lives in a worker-local folder; after every
evaluation (the family has just saved its state and the records so far there) that folder goes to
Tune as the trial's checkpoint, so:

- a retry inside a run starts from ``tune.get_checkpoint()`` (Tune's ``max_failures``);
- a later ``era run`` into the same results folder starts from ``config["trial"]["resume_from"]``,
  the last checkpoint the driver recorded (docs/harness.md: the history lives in the checkpoint, so re-run steps
  replace rows instead of adding them).

Tune retries every exception a trainable raises (``FailureConfig.max_failures``) and has no way to
mark one as final, but a ``ConfigError`` is bad input that no retry can fix. So the trainable does not
raise it: it reports it as its last result (:data:`CONFIG_ERROR`) and returns, and the driver's
callbacks record the trial as failed (:func:`config_error_of`).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["run_suite_trial", "metrics_of", "config_error_of", "ENVIRONMENT_FILE", "CONFIG_ERROR"]

#: written next to the trial's ``current/`` checkpoint: the worker's host, device and package versions
ENVIRONMENT_FILE = "environment.json"
#: the result key of a trial that ended on a ``ConfigError``: ``"ConfigError: <message>"``
CONFIG_ERROR = "config_error"

#: keys Tune fills in itself; a family metric with one of these names is reported as ``era/<name>``
_TUNE_KEYS = frozenset({
    "done", "training_iteration", "trial_id", "experiment_id", "date", "timestamp", "time_this_iter_s",
    "time_total_s", "pid", "hostname", "node_ip", "config", "time_since_restore",
    "iterations_since_restore", "checkpoint_dir_name", "should_checkpoint", "timesteps_total",
    "episodes_total", "experiment_tag",
})


def metrics_of(row: Mapping[str, float]) -> dict[str, float]:
    """A record's row as Tune metrics (what TensorBoard, W&B and MLflow see)."""
    return {(f"era/{k}" if k in _TUNE_KEYS else k): float(v) for k, v in row.items()}


def config_error_of(result: Mapping[str, Any]) -> str | None:
    """The error of a trial's result if the trial ended on a ``ConfigError`` (see the module docstring)."""
    error = result.get(CONFIG_ERROR)
    return error if isinstance(error, str) else None


def run_suite_trial(config: dict[str, Any]) -> None:
    """Tune function trainable: ``config = {"trial": {**Trial.to_dict(), "resume_from": str | None}}``."""
    from ray import tune

    from adapters.errors import ConfigError
    from adapters.trial import run_trial
    from harness.store.provenance import environment
    from harness.suite import Trial

    trial = Trial.from_dict(config["trial"])
    workdir = Path(tempfile.mkdtemp(prefix=f"era-{trial.trial_id}-"))
    try:
        source = tune.get_checkpoint()  # set when Tune retries this trial within the run
        if source is None and config["trial"].get("resume_from"):
            source = tune.Checkpoint(config["trial"]["resume_from"])
        if source is not None:
            source.to_directory(str(workdir))
        (workdir / ENVIRONMENT_FILE).write_text(json.dumps(environment(trial.spec.task, trial.spec.device)))
        for record in run_trial(trial.spec, workdir, validate=False):  # the driver validated it (check_trials)
            tune.report(metrics_of(record.as_row()), checkpoint=tune.Checkpoint.from_directory(str(workdir)))
    except ConfigError as error:  # found only by running (e.g. a task's action space): final, not retried
        tune.report({CONFIG_ERROR: f"{type(error).__name__}: {error}"})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
