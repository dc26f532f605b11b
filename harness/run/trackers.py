"""Experiment trackers for ``era run --wandb PROJECT`` and ``--mlflow URI``: Ray Tune's own logger
callbacks, set up so that runs carry the suite's names and a tracker can never cost a run its results.

- Every trial is one tracker run, named by the trial's label (``ppo-era gym:Pendulum-v1 seed 0``,
  through Tune's ``trial_name_creator``); a W&B run's group, and the MLflow experiment, is the suite.
- Both are set up before Ray starts, so a missing package, a W&B that is not logged in or an MLflow
  store that cannot be opened is a one-line error (exit 2) and nothing is written.
- Tune ends the whole run when a callback raises; here a tracker that fails mid-run (a server gone,
  a full disk) stops logging with a warning, and the trials and their results go on (``_Guarded``).
- W&B logs from Ray actors (one per trial), whose environment is the one Ray started with. The
  driver's ``WANDB_*`` variables (``WANDB_MODE=offline``, ``WANDB_DIR``, ``WANDB_API_KEY``, ...) are
  passed on to them, so they take effect also on a Ray started elsewhere (a cluster, or the tests').
  Without ``WANDB_DIR`` its files go to the results folder (``DIR/wandb/``), not to Ray's
  temporary folder of the trial where Ray's callback would leave them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray.tune import Callback

from adapters.errors import MissingDependencyError
from harness.errors import TrackerError, error_line

if TYPE_CHECKING:
    from harness.suite import Suite

__all__ = ["tracker_callbacks", "trial_name", "INSTALL_HINT"]

#: how to install both trackers' packages
INSTALL_HINT = "pip install 'era-harness[trackers]'"


def trial_name(tune_trial: Any) -> str:
    """Tune's name for a trial (``TuneConfig.trial_name_creator``), which trackers name runs by: its label."""
    from harness.run.recorder import trial_of

    return trial_of(tune_trial).label


def _require(package: str, option: str) -> None:
    try:
        __import__(package)
    except ImportError:
        raise MissingDependencyError(f"{option} needs the {package} package: {INSTALL_HINT}") from None


def _wandb_env(out: Path) -> dict[str, str]:
    """The driver's ``WANDB_*`` variables; ``WANDB_DIR`` made absolute (the actors work in Ray's
    folder of the trial, under Ray's temporary directory), and the results folder where it is unset."""
    env = {key: value for key, value in os.environ.items() if key.startswith("WANDB_")}
    env["WANDB_DIR"] = os.path.abspath(env.get("WANDB_DIR") or out)
    return env


def _wandb_callback(project: str, group: str, out: Path) -> Callback:
    from ray.air.integrations.wandb import WandbLoggerCallback, _WandbLoggingActor

    class _EraWandbLogger(_WandbLoggingActor):
        """Ray's W&B logging actor, in the driver's ``WANDB_*`` environment."""

        def __init__(self, *args: Any, era_env: dict[str, str], **kwargs: Any) -> None:
            os.environ.update(era_env)  # this actor's own process: it logs one trial, then is killed
            super().__init__(*args, **kwargs)

    class _WandbCallback(WandbLoggerCallback):
        _logger_actor_cls = _EraWandbLogger

    # keyword arguments Ray does not know go to the actor (and from there to wandb.init, which
    # never sees era_env: the actor takes it)
    return _WandbCallback(project=project, group=group, era_env=_wandb_env(out))


def _mlflow_callback(uri: str, experiment: str) -> Callback:
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    class _MLflowCallback(MLflowLoggerCallback):
        """Ray's MLflow callback, with a metric's history over environment steps (the results'
        ``step``), not over Tune's iterations; and without the trial's config as metrics at every
        result (the run's parameters hold it once)."""

        def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
            metrics = {key: value for key, value in result.items() if key != "config"}
            if "step" in metrics:  # the step MLflow logs at (Tune's timesteps_total)
                metrics["timesteps_total"] = int(metrics["step"])
            super().log_trial_result(iteration, trial, metrics)

    return _MLflowCallback(tracking_uri=uri, experiment_name=experiment)


def _is_file_store(uri: str) -> bool:
    """Whether MLflow opens ``uri`` as its folder store (a path, or ``file:``)."""
    from urllib.parse import urlparse

    return urlparse(uri).scheme in ("", "file")


class _Guarded(Callback):
    """A tracker's callback whose first error turns it off, with a warning, instead of ending the run.

    Every hook is passed on (Tune's metaclass checks that for a container); ``on_experiment_end``
    also after a failure, so that W&B's actors are stopped.
    """

    IS_CALLBACK_CONTAINER = True

    def __init__(self, name: str, callback: Callback, write: Callable[[str], None]) -> None:
        self.name = name
        self.callback = callback
        self.write = write
        self.failed = False

    def _call(self, hook: str, **info: Any) -> None:
        if self.failed and hook != "on_experiment_end":
            return
        try:
            getattr(self.callback, hook)(**info)
        except Exception as error:  # noqa: BLE001 - any tracker error: the run goes on without it
            if not self.failed:
                self.failed = True
                self.write(f"warning: {self.name} stopped logging ({error_line(error)}); the trials and "
                           f"their results go on, only the tracker misses the rest of this run")

    def setup(self, **info: Any) -> None:
        self._call("setup", **info)

    def on_step_begin(self, **info: Any) -> None:
        self._call("on_step_begin", **info)

    def on_step_end(self, **info: Any) -> None:
        self._call("on_step_end", **info)

    def on_trial_start(self, **info: Any) -> None:
        self._call("on_trial_start", **info)

    def on_trial_restore(self, **info: Any) -> None:
        self._call("on_trial_restore", **info)

    def on_trial_save(self, **info: Any) -> None:
        self._call("on_trial_save", **info)

    def on_trial_result(self, **info: Any) -> None:
        self._call("on_trial_result", **info)

    def on_trial_complete(self, **info: Any) -> None:
        self._call("on_trial_complete", **info)

    def on_trial_recover(self, **info: Any) -> None:
        self._call("on_trial_recover", **info)

    def on_trial_error(self, **info: Any) -> None:
        self._call("on_trial_error", **info)

    def on_checkpoint(self, **info: Any) -> None:
        self._call("on_checkpoint", **info)

    def on_experiment_end(self, **info: Any) -> None:
        self._call("on_experiment_end", **info)


def tracker_callbacks(suite: "Suite", wandb_project: str | None, mlflow_uri: str | None, out: Path,
                      write: Callable[[str], None] | None = None) -> list[Callback]:
    """The W&B / MLflow callbacks asked for, set up already; raises ``MissingDependencyError`` (a
    package is missing) or ``TrackerError`` (W&B not logged in, an MLflow store that cannot be opened).

    W&B's local files go to ``WANDB_DIR``, else to ``out`` (the results folder: ``out/wandb/``).
    ``write`` prints the warning of a tracker that fails later. TensorBoard needs nothing: Tune
    writes every trial's metrics with its default TBX logger.
    """
    write = write or (lambda line: print(line, flush=True))
    callbacks: list[Callback] = []
    if wandb_project:
        _require("wandb", "--wandb")
        callback = _wandb_callback(wandb_project, suite.name, out)
        try:
            callback.setup()  # no network: looks for the API key unless WANDB_MODE is offline or disabled
        except ValueError:  # the only one it raises with a project given
            raise TrackerError("--wandb: no W&B API key found: run wandb login, or set WANDB_API_KEY, or log "
                               "offline with WANDB_MODE=offline (then upload with wandb sync)") from None
        callbacks.append(_Guarded("W&B", callback, write))
    if mlflow_uri:
        _require("mlflow", "--mlflow")
        if _is_file_store(mlflow_uri):  # asked for by name: MLflow 3 refuses it unless allowed
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        callback = _mlflow_callback(mlflow_uri, suite.name)
        try:
            callback.setup()  # opens the store (or reaches the server) and creates the experiment
        except Exception as error:  # noqa: BLE001 - MLflow raises many kinds for a store it cannot use
            raise TrackerError(f"--mlflow {mlflow_uri}: {error_line(error)}; give a reachable tracking "
                               f"server, or a local folder such as ./mlruns") from None
        callbacks.append(_Guarded("MLflow", callback, write))
    return callbacks
