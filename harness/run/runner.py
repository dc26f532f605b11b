"""Run a suite's trials with Ray Tune, on an embedded local Ray or on a cluster.

One fresh Tune experiment per ``era run`` (named ``<suite>-<time>`` under the storage path) runs
only the trials the results folder does not hold as done; each resumes from the last checkpoint
the driver recorded for it. So re-running, after a kill or after adding seeds, never runs a
finished trial again, and Tune's own retries (``max_failures``) resume from the trial's latest
checkpoint within a run. We do not use ``Tuner.restore``: its experiment state reaches storage only
every ~10 s, so it re-runs finished work (docs/harness.md), and it cannot take a changed suite.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness import project_root
from harness.cluster.jobs import CODE_SHIPPED
from harness.errors import ClusterError, ResultsDirError, error_line
from harness.store.provenance import code_version
from harness.store import TableCache, TrialState, check_results_dir, read_states, save_tables
from harness.suite import Suite, Trial

__all__ = ["RunOptions", "RunSummary", "TrialSource", "run_suite", "holding", "plan_run"]

#: what a cluster's workers should not receive when the code is shipped as the working dir
_SHIP_EXCLUDES = [".venv", ".git", "results", "runs", "reports", "**/__pycache__", "*.parquet"]


@dataclass(frozen=True)
class RunOptions:
    """How to run a suite; ``None`` fields take the suite's or Ray's defaults."""

    out: Path
    address: str | None = None
    resume: bool = False
    max_concurrent: int | None = None
    num_cpus: int | None = None
    storage: str | None = None
    wandb_project: str | None = None
    mlflow_uri: str | None = None
    progress_interval_s: float = 30.0
    #: start Ray's dashboard with a local Ray (a cluster, ``address``, serves its own)
    dashboard: bool = False


@dataclass
class RunSummary:
    """How a run ended, trial by trial (labels: ``variant task seed N``)."""

    suite: str
    out: Path
    total: int
    done_before: int
    done: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)
    rows: int = 0
    elapsed_s: float = 0.0
    ray_start_s: float = 0.0
    fit_s: float = 0.0
    #: stopped by Ctrl-C (SIGINT): the unfinished trials resume with ``era run --resume``
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not self.failed and not self.unfinished


def plan_run(suite: Suite, trials: Sequence[Trial], options: RunOptions) -> dict[str, TrialState]:
    """Check the results folder (nothing is written) and load what earlier runs left there; a
    corrupt state file raises ``ResultsDirError`` naming it."""
    check_results_dir(options.out, suite, options.resume)
    return read_states(options.out, [t.trial_id for t in trials])


def _dirname(tune_trial) -> str:
    from harness.run.recorder import trial_of

    trial = trial_of(tune_trial)
    slug = re.sub(r"[^A-Za-z0-9_.=-]+", "_", f"{trial.variant}_{trial.spec.task}")[:80]
    return f"{slug}_s{trial.spec.seed}_{trial.trial_id}"


def _resources(config: dict) -> dict[str, float]:
    return Trial.from_dict(config["trial"]).resources.tune()


def _export_worker_env() -> None:
    """Local workers inherit the driver's environment, not its ``sys.path`` (docs/harness.md)."""
    root = project_root()
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root is not None and str(root) not in paths:  # a source checkout
        os.environ["PYTHONPATH"] = os.pathsep.join([str(root), *paths])
    # keep the driver's working directory in trials, so relative data paths mean the same thing
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # num_to_keep forces Tune to snapshot its experiment state often; we never restore from that
    # state (the driver keeps its own, see the module docstring), so its warning is noise here
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Tune's newer console output prints its banner even at verbose=0; ProgressPrinter reports instead
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


def _cluster_runtime_env() -> dict[str, Any] | None:
    """What ``ray.init`` ships to a cluster's workers: nothing inside a Ray Job (the job's own
    runtime env, code included, reaches every worker), else this checkout's code."""
    if os.environ.get(CODE_SHIPPED):
        return None
    env: dict[str, Any] = {"env_vars": {"RAY_CHDIR_TO_TRIAL_DIR": "0"}}
    root = project_root()
    if root is not None:
        env["working_dir"] = str(root)  # ship this checkout's code to the cluster's workers
        env["excludes"] = list(_SHIP_EXCLUDES)
    return env


def _start_ray(options: RunOptions) -> str | None:
    """Start (or join) Ray; returns the dashboard's URL when this call started a local Ray with it."""
    import ray

    if ray.is_initialized():
        return None
    try:
        if options.address:
            ray.init(address=options.address, runtime_env=_cluster_runtime_env(), log_to_driver=False,
                     logging_level=logging.WARNING)
            return None
        # only what a local run needs: no dashboard unless asked for (token authentication stays on)
        context = ray.init(address="local", num_cpus=options.num_cpus, include_dashboard=options.dashboard,
                           log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, ValueError, RuntimeError, TimeoutError) as error:
        where = f"the Ray cluster at {options.address}" if options.address else "a local Ray"
        raise ClusterError(
            f"could not start or reach {where}: {error}. Check the address (ray status), and that "
            f"RAY_AUTH_MODE / RAY_AUTH_TOKEN match the cluster's"
        ) from None
    return (context.dashboard_url or None) if options.dashboard else None


def _tensorboard_writer_without_torch() -> None:
    """Import tensorboardX, which Tune's default TensorBoard logger uses, without torch.

    tensorboardX imports torch when it can, only to accept torch tensors; the driver logs plain
    numbers, and importing torch there costs seconds before the first trial starts. A ``None`` in
    ``sys.modules`` makes that one optional import fail as if torch were absent; torch itself is
    untouched (workers import it as usual).
    """
    import sys

    if "tensorboardX" in sys.modules or "torch" in sys.modules:
        return
    sys.modules["torch"] = None  # type: ignore[assignment]
    try:
        import tensorboardX  # noqa: F401
    except ImportError:  # not installed: Tune then skips its TensorBoard logger by itself
        pass
    finally:
        del sys.modules["torch"]


class _NotTuneRestore(logging.Filter):
    """Drop Tune's advice to resume with ``Tuner.restore`` (``era run --resume`` is the way here)
    and its complaint that never-started trials have no metrics (expected when interrupted)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "Tuner.restore" not in message and "Failed to fetch metrics" not in message


@contextlib.contextmanager
def _quiet_tune_advice():
    loggers = [logging.getLogger(n) for n in ("ray.tune.tune", "ray.tune.analysis.experiment_analysis")]
    quiet = _NotTuneRestore()
    for logger in loggers:
        logger.addFilter(quiet)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(quiet)


#: results folders whose lock this process already holds (:func:`holding`)
_HELD: set[Path] = set()

#: what a search gives :func:`run_suite` to add trials while it runs: called with the Tune configs of the
#: trials to run first, ``register`` (which adds a trial to the run and returns its config) and the run's
#: trial states (kept current by the recorder), it returns a Ray Tune ``Searcher`` that hands Tune those
#: configs, then the ones it registers
TrialSource = Callable[[list[dict], Callable[[Trial], dict], Mapping[str, TrialState]], Any]


@contextlib.contextmanager
def holding(out: Path):
    """Hold ``out``'s lock across more than one step (a search reads and writes its own state around its
    run); :func:`run_suite` inside it does not lock again."""
    out = Path(out).resolve()
    with _exclusive(out):
        _HELD.add(out)
        try:
            yield
        finally:
            _HELD.discard(out)


@contextlib.contextmanager
def _exclusive(out: Path):
    """Hold ``DIR/.era-run.lock`` while running: two runs into one folder would run trials twice.
    ``flock`` is released by the kernel when the process dies, even by SIGKILL.

    The lock file is removed on the way out (while still held), and so are the folders this call
    created if nothing else was written there: a run refused for bad input leaves nothing. A
    process that locked the file as it was being removed sees that the path no longer names the
    file it holds, and tries again.
    """
    import fcntl

    if out in _HELD:  # held by this process already (holding)
        yield
        return
    created = [p for p in (out, *out.parents) if not p.exists()]  # deepest first
    path = out / ".era-run.lock"
    while True:
        out.mkdir(parents=True, exist_ok=True)
        try:
            handle = open(path, "a+")
        except FileNotFoundError:  # the folder was removed in between by a refused run: again
            continue
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise ResultsDirError(
                f"another era run ({holder}) is writing to {out}: wait for it to finish, or use another --out"
            ) from None
        try:
            current = os.stat(path).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(handle.fileno()).st_ino:
            break
        handle.close()  # it was removed after we opened it: lock the file that is there now
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        yield
    finally:
        path.unlink(missing_ok=True)
        for folder in created:
            try:
                folder.rmdir()
            except OSError:  # not empty: the run wrote its results there
                break
        handle.close()


def _check_resources(trials: Sequence[Trial], local: bool, write: Callable[[str], None]) -> None:
    """Every trial must fit on some node, or Tune would wait for it forever."""
    import ray

    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    for trial in trials:
        cpus, gpus = trial.resources.cpus, trial.resources.gpus
        if any(n.get("CPU", 0) >= cpus and n.get("GPU", 0) >= gpus for n in nodes):
            continue
        biggest = max(nodes, key=lambda n: (n.get("GPU", 0), n.get("CPU", 0)), default={})
        message = (
            f"trial {trial.label} asks for {cpus:g} CPU and {gpus:g} GPU, but the largest Ray node has "
            f"{biggest.get('CPU', 0):g} CPU and {biggest.get('GPU', 0):g} GPU"
        )
        if local and gpus > 0 and not any(n.get("GPU", 0) for n in nodes):
            raise ClusterError(f"{message}: the Ray started here found no GPU; set the suite's resources to "
                               f"gpus: 0 (the trials then run on the CPU), or run on a GPU cluster with --address")
        if local:
            raise ClusterError(f"{message}: lower the suite's resources, or run on a cluster with --address")
        write(f"warning: {message}; it will wait until the cluster scales up")
        return


def _run_name(suite: Suite, options: RunOptions) -> str:
    """``<suite>-<time>``, unique under a local storage path (one Tune experiment per run)."""
    name = f"{suite.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    storage = Path(options.storage) if options.storage and "://" not in options.storage else options.out / "tune"
    taken, index = name, 1
    while (storage / taken).exists():
        index += 1
        taken = f"{name}-{index}"
    return taken


def _slots(suite: Suite) -> int:
    """How many of the suite's trials the Ray cluster holds at once (its CPUs and GPUs now)."""
    import ray

    available = ray.cluster_resources()
    need = suite.resources
    fits = [available.get("CPU", 1.0) // need.cpus] + ([available.get("GPU", 0.0) // need.gpus] if need.gpus else [])
    return max(1, int(min(fits)))


def _config(trial: Trial, states: dict[str, TrialState]) -> dict:
    """A trial's Tune config: the trial, and the checkpoint it resumes from."""
    from harness.run.recorder import resume_point

    return {**trial.to_dict(), "resume_from": resume_point(states[trial.trial_id].checkpoint)}


def _tuner(suite: Suite, todo: Sequence[Trial], states: dict[str, TrialState], options: RunOptions,
           run_name: str, callbacks: list[Any], searcher: Any = None):
    """A Tune experiment over the trials to run, each resuming from its recorded checkpoint; with a
    ``searcher``, over the trials it hands out (``num_samples=-1``: until it says it is finished)."""
    from ray import tune

    from harness.run.trackers import trial_name
    from harness.run.trainable import run_suite_trial

    concurrent = options.max_concurrent or suite.max_concurrent
    if searcher is None:
        space: dict[str, Any] = {"trial": tune.grid_search([_config(t, states) for t in todo])}
        trials_from: dict[str, Any] = {}
    else:
        if not concurrent:  # Tune keeps one trial of a searcher pending at a time unless it is limited
            from ray.tune.search import ConcurrencyLimiter

            searcher = ConcurrencyLimiter(searcher, max_concurrent=_slots(suite))
        space, trials_from = {}, {"search_alg": searcher, "num_samples": -1}
    return tune.Tuner(
        tune.with_resources(run_suite_trial, _resources),
        param_space=space,
        tune_config=tune.TuneConfig(
            **trials_from,
            max_concurrent_trials=concurrent,
            reuse_actors=True,  # an actor per trial costs ~2 s (docs/harness.md)
            trial_dirname_creator=_dirname,
            trial_name_creator=trial_name,  # what W&B and MLflow name the trial's run by
        ),
        run_config=tune.RunConfig(
            name=run_name,
            storage_path=options.storage or str(options.out / "tune"),
            failure_config=tune.FailureConfig(max_failures=suite.max_failures),
            # the two newest per trial: resume_point falls back to the older one
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            callbacks=callbacks,
            verbose=0,
        ),
    )


def _summarize(summary: RunSummary, trials: Sequence[Trial], states: dict[str, TrialState]) -> RunSummary:
    for trial in trials:
        state = states[trial.trial_id]
        if state.status == "done":
            summary.done.append(trial.label)
        elif state.status == "failed":
            summary.failed.append((trial.label, error_line(state.traceback or state.error)))
        else:
            summary.unfinished.append(trial.label)
    summary.rows = sum(len(np.unique(states[t.trial_id].records.steps())) for t in trials)
    return summary


class _SigintWatch:
    """Tells whether Tune stopped a run for Ctrl-C.

    Tune installs its own SIGINT handler for the length of ``fit()``: the first Ctrl-C ends the
    run gracefully (``fit()`` returns, trials unfinished) and puts back the handler Tune found.
    So the handler in place while the experiment runs (seen from a callback's ``setup``) differs
    from the one in place after ``fit()`` exactly when Tune saw a Ctrl-C. A Ctrl-C that reaches
    our own handler (outside ``fit()``, or a second one) raises ``KeyboardInterrupt``.
    """

    def __init__(self, summary: RunSummary) -> None:
        self.summary = summary
        self.during_fit: Any = None

    def handle(self, signum: int, frame: Any) -> None:
        self.summary.interrupted = True
        raise KeyboardInterrupt

    def callback(self) -> Any:
        from ray.tune import Callback

        watch = self

        class _Setup(Callback):
            def setup(self, **info: Any) -> None:
                watch.during_fit = signal.getsignal(signal.SIGINT)

        return _Setup()

    def after_fit(self) -> None:
        if self.during_fit is not None and signal.getsignal(signal.SIGINT) is not self.during_fit:
            self.summary.interrupted = True


@contextlib.contextmanager
def _on_sigint(watch: _SigintWatch):
    """Route Ctrl-C to ``watch`` (in the main thread; elsewhere signals cannot be handled)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, watch.handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_suite(suite: Suite, trials: Sequence[Trial], options: RunOptions,
              write: Callable[[str], None] | None = None, source: TrialSource | None = None,
              total: int | None = None) -> RunSummary:
    """Run the trials not yet done in ``options.out`` and write the tables there.

    ``source`` (a search): Tune takes its trials from the searcher it makes, which starts with the
    trials not yet done and adds more as it goes; ``total`` is how many the run will have in all
    (for progress). The summary then covers every trial the run had.

    The folder's lock is taken first, so a second run into it is refused before Ray starts. Raises
    a ``ConfigError`` subclass (exit 2) before writing anything for a locked, foreign or corrupt
    results folder, a missing tracker package or resources Ray cannot offer. Ctrl-C stops the run
    (its tables written, unfinished trials ``pending``) and sets ``RunSummary.interrupted``.
    """
    write = write or (lambda line: print(line, flush=True))
    started = time.monotonic()
    options = RunOptions(**{**options.__dict__, "out": Path(options.out).resolve()})
    trials = list(trials)  # a source adds to it
    summary = RunSummary(suite.name, options.out, total or len(trials), 0)
    states: dict[str, TrialState] = {}
    watch = _SigintWatch(summary)
    with _exclusive(options.out), _on_sigint(watch):  # a second run into DIR is refused before Ray starts
        try:
            _run_locked(suite, trials, options, states, summary, watch, write, source, total)
        except KeyboardInterrupt:  # Ctrl-C outside Tune's fit(), or a second one; the tables are written
            summary.interrupted = True
    for trial in trials:  # interrupted before the states were read: nothing of them changed
        states.setdefault(trial.trial_id, TrialState(trial.trial_id))
    summary.elapsed_s = time.monotonic() - started
    return _summarize(summary, trials, states)


def _run_locked(suite: Suite, trials: Sequence[Trial], options: RunOptions, states: dict[str, TrialState],
                summary: RunSummary, watch: _SigintWatch, write: Callable[[str], None],
                source: TrialSource | None = None, total: int | None = None) -> None:
    """:func:`run_suite` once it holds the folder's lock; fills ``states`` with the trials' states."""
    from harness.run.progress import ProgressPrinter
    from harness.run.recorder import Recorder
    from harness.run.trackers import tracker_callbacks

    out = options.out
    cache = TableCache()  # shared with the Recorder: each table write rebuilds only the trials that changed
    states.update(plan_run(suite, trials, options))
    trackers = tracker_callbacks(suite, options.wandb_project, options.mlflow_uri, out, write)
    todo = [t for t in trials if states[t.trial_id].status != "done"]
    summary.done_before = len(trials) - len(todo)
    if not todo and source is None:
        save_tables(out, suite, trials, states, cache)
        write(f"all {len(trials)} trials of {suite.name} are done already in {out}")
        return

    import ray

    began = time.monotonic()
    _export_worker_env()
    ray_was_up = ray.is_initialized()  # a caller's Ray (tests) is left running
    wrote = False
    try:
        dashboard = _start_ray(options)
        summary.ray_start_s = time.monotonic() - began
        if dashboard:
            write(f"Ray dashboard: http://{dashboard}")
        _check_resources(todo or trials, local=options.address is None, write=write)
        resumed = sum(1 for t in todo if states[t.trial_id].checkpoint)
        write(
            f"{suite.name}: {total or len(trials)} trials, {summary.done_before} done before, "
            f"{(total or len(trials)) - summary.done_before} to run"
            f"{f' ({resumed} resume from a checkpoint)' if resumed else ''}, on "
            f"{'Ray at ' + options.address if options.address else 'a local Ray'} with "
            f"{ray.cluster_resources().get('CPU', 0):g} CPUs; results in {out}"
        )
        write(f"TensorBoard: tensorboard --logdir {options.storage or out / 'tune'}")
        for trial in todo:  # a trial that failed before is tried again, from its checkpoint
            states[trial.trial_id].status = "pending"
        save_tables(out, suite, trials, states, cache)
        wrote = True

        run_name = _run_name(suite, options)
        recorder = Recorder(out, suite, trials, states, run_name, code_version(), cache=cache)
        printer = ProgressPrinter(total or len(trials), summary.done_before, suite.max_failures,
                                  options.progress_interval_s, write)
        _tensorboard_writer_without_torch()
        searcher = None
        if source is not None:
            def register(trial: Trial) -> dict:
                """Add a trial the source made to this run (its saved state, if an earlier run left one)."""
                if trial.trial_id not in states:
                    states.update(read_states(out, [trial.trial_id]))
                    trials.append(trial)
                    recorder.add(trial, states[trial.trial_id])
                return _config(trial, states)

            searcher = source([_config(t, states) for t in todo], register, states)
        tuner = _tuner(suite, todo, states, options, run_name, [watch.callback(), recorder, printer, *trackers],
                       searcher)
        began = time.monotonic()
        with _quiet_tune_advice():
            tuner.fit()
        watch.after_fit()
        summary.fit_s = time.monotonic() - began
    finally:
        for state in states.values():  # a trial Tune did not finish (interrupted) stays unfinished
            if state.status == "running":
                state.status = "pending"
        if wrote:
            save_tables(out, suite, trials, states, cache)
        if not ray_was_up and ray.is_initialized():
            ray.shutdown()
