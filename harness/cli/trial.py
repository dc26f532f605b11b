"""``era trial``: one trial in-process (no Ray), with progress, resumable; its folder holds the
same tables as ``era run``'s (through ``harness.store``), so ``era report`` reads it alike."""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

import yaml

from adapters.trial.checkpoint import TrialCheckpoint
from adapters.errors import ConfigError, EraError, MissingDependencyError
from adapters.registry import ALGORITHMS, budget_unit, default_eval_episodes
from adapters.trial import TrialSpec, run_trial, validate_trial
from harness.errors import EXIT_FAILED, EXIT_OK, command_error, error_line

__all__ = ["add_parser", "parse_settings"]


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "trial",
        help="run one trial in-process and write DIR/results.parquet (and the tables era run writes)",
        description=(
            "Run one (algorithm, task, seed) trial in this process. Re-running into the same --out "
            "resumes from the trial's last checkpoint."
        ),
    )
    parser.add_argument("--algo", required=True, help=f"one of: {', '.join(ALGORITHMS)}")
    parser.add_argument("--task", required=True, help="task id, e.g. gym:Pendulum-v1, dmc:cartpole-swingup, digits")
    parser.add_argument("--seed", type=int, default=0)
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument("--steps", type=int, help="budget in env steps (RL, LLM)")
    budget.add_argument("--epochs", type=int, help="budget in epochs (vision)")
    parser.add_argument("--eval-every", type=int, default=None, help="evaluate every N steps/epochs")
    parser.add_argument("--eval-episodes", type=int, default=None,
                        help="episodes per evaluation (default: the benchmark's, 10 for hb: tasks, else 5)")
    parser.add_argument(
        "--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
        help="an algorithm setting (value parsed as YAML), e.g. --set entropy_per_dim=0.5; repeatable",
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda[:N]")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default runs/ALGO-TASK-SEED)")
    parser.set_defaults(handler=run_command)


def parse_settings(pairs: list[str]) -> dict:
    """``["a=1", "b=[1, 2]"]`` -> ``{"a": 1, "b": [1, 2]}``; values are parsed as YAML."""
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {pair!r}")
        settings[key.strip()] = yaml.safe_load(value)
    return settings


def _spec_from_args(args: argparse.Namespace) -> TrialSpec:
    unit = budget_unit(args.algo)
    given, amount = ("steps", args.steps) if args.steps is not None else ("epochs", args.epochs)
    if given != unit:
        raise ConfigError(f"{args.algo} counts its budget in {unit}: use --{unit} instead of --{given}")
    if amount <= 0:
        raise ConfigError(f"--{unit} must be positive, got {amount}")
    return TrialSpec(
        algo=args.algo,
        task=args.task,
        seed=args.seed,
        budget=amount,
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes if args.eval_episodes is not None else default_eval_episodes(args.algo, args.task),
        settings=parse_settings(args.settings),
        device=args.device,
    )


def run_command(args: argparse.Namespace) -> int:
    from harness.store import TrialState, write_trial_tables
    from harness.store.provenance import code_version, environment
    from harness.suite import Trial

    try:
        spec = _spec_from_args(args)
        validate_trial(spec)
    except (ConfigError, MissingDependencyError) as error:  # bad input or a missing optional package
        return command_error("trial", error)
    out = args.out or Path("runs") / f"{spec.algo}-{spec.task.replace(':', '_').replace('/', '_')}-{spec.seed}"
    checkpoint = TrialCheckpoint(out / "checkpoint")
    trial = Trial.single(spec, suite=out.resolve().name)
    state = TrialState(trial.trial_id, status="running", code_version=code_version(),
                       environment=environment(spec.task, spec.device), started_at=time.time())
    records = checkpoint.records()
    if records:
        print(f"resuming {spec.algo} on {spec.task} from step {records[-1].step}", flush=True)
    started = time.monotonic()
    try:
        for record in run_trial(spec, checkpoint.directory, validate=False):  # validated above
            records.append(record)
            state.records = [r.as_row() for r in records]
            write_trial_tables(out, trial, state)
            extras = "".join(f" {k}={v:.4g}" for k, v in record.metrics.items())
            print(
                f"[{spec.algo} {spec.task} seed {spec.seed}] {trial.unit[:-1]} {record.step}/{spec.budget} "
                f"score={record.score:.4g} entropy={record.entropy:.4g}{extras} "
                f"({time.monotonic() - started:.0f}s)",
                flush=True,
            )
    except ConfigError as error:  # e.g. the output folder holds another trial's checkpoint
        return command_error("trial", error)
    except EraError as error:
        state.status, state.error, state.finished_at = "failed", error_line(error), time.time()
        state.traceback = "".join(traceback.format_exception(error)).strip()
        state.records = [r.as_row() for r in records]
        write_trial_tables(out, trial, state)
        print(f"era trial: trial failed: {state.error} (the traceback is in {out / 'trials.parquet'})",
              file=sys.stderr)
        return EXIT_FAILED
    if not records:
        print("era trial: the trial produced no evaluation", file=sys.stderr)
        return EXIT_FAILED
    state.status, state.finished_at = "done", time.time()
    state.records = [r.as_row() for r in records]
    write_trial_tables(out, trial, state)
    print(f"wrote {out / 'results.parquet'} ({len(records)} evaluations)")
    return EXIT_OK
