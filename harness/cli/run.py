"""``era run SUITE``: run a suite with Ray Tune, store its results, then write its report.

Exit codes: 0 every trial done; 1 a trial failed (or the report failed); 2 bad input (suite,
options, a locked, foreign or corrupt results folder, missing package): nothing started or written;
130 stopped by Ctrl-C with nothing failed (``--resume`` continues it; no report is written).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, command_error

__all__ = ["add_parser", "run_command"]


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "run",
        help="run a suite with Ray Tune (local or on a cluster) into DIR/results.parquet, then report",
        description=(
            "Run every trial of SUITE with Ray Tune: on a Ray started here (all cores) or on the "
            "cluster at --address. Results go to DIR (default results/<suite>/). Re-running into the "
            "same DIR, or --resume, runs only what is unfinished; each trial continues from its last "
            "checkpoint. TensorBoard: tensorboard --logdir DIR/tune"
        ),
    )
    parser.add_argument("suite", type=Path, metavar="SUITE", help="a suite file, e.g. suites/smoke.yaml")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="results folder (default results/<suite name>/)")
    parser.add_argument("--address", default=None, metavar="ADDR",
                        help="a Ray cluster (e.g. 10.0.0.1:6379 or auto); default: start Ray here")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in DIR (an error if DIR holds none); re-running into DIR "
                             "does the same")
    parser.add_argument("--max-concurrent", type=int, default=None, metavar="N",
                        help="run at most N trials at once (default: the suite's max_concurrent, else "
                             "as many as fit)")
    parser.add_argument("--num-cpus", type=int, default=None, metavar="N",
                        help="CPUs of the Ray started here (default: all cores)")
    parser.add_argument("--storage", default=None, metavar="URI",
                        help="Ray Tune storage for checkpoints and logs (default DIR/tune); on a "
                             "multi-node cluster use shared storage (NFS path or s3://...)")
    parser.add_argument("--wandb", default=None, metavar="PROJECT",
                        help="also log every trial to Weights & Biases project PROJECT, one run per trial "
                             "grouped by suite (WANDB_MODE=offline: to DIR/wandb, upload later with wandb "
                             "sync; needs: pip install 'era-harness[trackers]')")
    parser.add_argument("--mlflow", default=None, metavar="URI",
                        help="also log every trial to MLflow at URI (a server, sqlite:///mlflow.db, or a "
                             "folder such as ./mlruns), one run per trial in an experiment named by the "
                             "suite (needs: pip install 'era-harness[trackers]')")
    parser.add_argument("--report-dir", type=Path, default=None, metavar="DIR",
                        help="where the report goes (default reports/<suite name>/)")
    parser.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    parser.add_argument("--dashboard", action="store_true",
                        help="start Ray's dashboard with the local Ray (http://127.0.0.1:8265); off by default, "
                             "as a local run does not need it (a cluster has its own)")
    parser.add_argument("--progress-every", type=float, default=30.0, metavar="S",
                        help="print a progress summary every S seconds (default 30)")
    parser.set_defaults(handler=run_command)


def _write_report(out: Path, report_dir: Path) -> int:
    from harness.report import write_report

    try:
        path = write_report(out, report_dir)
    except Exception as error:  # noqa: BLE001 - results stay valid; say how to retry
        return command_error("run", f"the report failed ({type(error).__name__}: {error}); the results are "
                                    f"complete, retry with: era report {out}", EXIT_FAILED)
    print(f"report: {path}")
    return EXIT_OK


def run_command(args: argparse.Namespace) -> int:
    from adapters.errors import ConfigError, MissingDependencyError
    from harness.suite import load_and_expand

    if args.max_concurrent is not None and args.max_concurrent < 1:
        return command_error("run", f"--max-concurrent must be at least 1, got {args.max_concurrent}")
    if args.num_cpus is not None and args.num_cpus < 1:
        return command_error("run", f"--num-cpus must be at least 1, got {args.num_cpus}")
    if args.num_cpus is not None and args.address:
        return command_error("run", "--num-cpus sizes the Ray started here; a cluster (--address) has its own")
    if args.dashboard and args.address:
        return command_error("run", "--dashboard starts the dashboard of the Ray started here; a cluster "
                                    "(--address) serves its own (ray dashboard, or port 8265 on its head)")
    try:
        suite, trials = load_and_expand(args.suite)
    except (ConfigError, MissingDependencyError) as error:
        return command_error("run", error)

    from harness.run.progress import format_elapsed
    from harness.run.runner import RunOptions, run_suite

    out = args.out or Path("results") / suite.name
    options = RunOptions(
        out=out, address=args.address, resume=args.resume, max_concurrent=args.max_concurrent,
        num_cpus=args.num_cpus, storage=args.storage, wandb_project=args.wandb, mlflow_uri=args.mlflow,
        progress_interval_s=args.progress_every, dashboard=args.dashboard,
    )
    resume = f"era run {args.suite} --out {Path(out).resolve()} --resume"
    try:
        if suite.search is not None:
            return _search(suite, trials, options, args, resume)
        summary = run_suite(suite, trials, options)
    except (ConfigError, MissingDependencyError) as error:
        return command_error("run", error)
    except KeyboardInterrupt:  # a Ctrl-C while the run was being set up or wound down
        print(f"era run: interrupted; resume with: {resume}", file=sys.stderr)
        return EXIT_INTERRUPTED

    print(f"{suite.name}: {len(summary.done)}/{summary.total} trials done, {len(summary.failed)} failed, "
          f"{len(summary.unfinished)} unfinished; {summary.rows} evaluations in "
          f"{summary.out / 'results.parquet'} ({format_elapsed(summary.elapsed_s)})")
    if summary.fit_s:
        print(f"timing: Ray start {summary.ray_start_s:.1f} s, trials under Tune {summary.fit_s:.1f} s, "
              f"total {summary.elapsed_s:.1f} s")
    code = 0
    for label, error in summary.failed:
        print(f"  failed: {label}: {error}", file=sys.stderr)
        code = 1
    if summary.interrupted and summary.unfinished and not summary.failed:
        print(f"era run: interrupted: {len(summary.unfinished)} trial(s) unfinished, none failed; resume with: "
              f"{resume}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if summary.unfinished:
        print(f"  unfinished: {len(summary.unfinished)} trial(s); continue with: {resume}", file=sys.stderr)
        code = 1
    if summary.failed:
        print(f"  each error's traceback is in {summary.out / 'trials.parquet'}; re-running retries the "
              f"failed trials from their last checkpoint", file=sys.stderr)
    if not args.no_report and summary.rows and not summary.interrupted:
        report_code = _write_report(summary.out, args.report_dir or Path("reports") / suite.name)
        code = code or report_code
    return code


def _search(suite, fixed, options, args: argparse.Namespace, resume: str) -> int:
    """``era run`` of a suite with a ``search:`` block (harness.search)."""
    from harness.search import run_search

    result = run_search(suite, fixed, options)
    evaluated = sum(v is not None for v in result.objectives)
    print(f"{suite.name}: search {len(result.samples)}/{suite.search.samples} samples, {evaluated} evaluated"
          + (f"; best sample {result.best + 1}: {result.samples[result.best].settings}" if result.best is not None
             else ""))
    if result.interrupted:
        print(f"era run: interrupted; resume with: {resume}", file=sys.stderr)
        return EXIT_INTERRUPTED
    code = EXIT_OK
    failed = [*result.failed, *(result.run.failed if result.run else [])]
    for label, error in failed:
        print(f"  failed: {label}: {error}", file=sys.stderr)
        code = EXIT_FAILED
    if result.run is not None and result.run.unfinished:
        print(f"  unfinished: {len(result.run.unfinished)} trial(s); continue with: {resume}", file=sys.stderr)
        code = EXIT_FAILED
    if not args.no_report and result.best is not None:
        code = code or _write_report(options.out, args.report_dir or Path("reports") / suite.name)
    return code
