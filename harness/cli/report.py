"""``era report RESULTS_DIR``: report.md, report.json and figures for a results directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from adapters.errors import ConfigError
from harness.stats.bootstrap import BOOTSTRAPS, DEFAULT_REPS
from harness.errors import EXIT_OK, command_error

__all__ = ["add_parser", "run_command"]


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "report",
        help="write report.md, report.json and figures for a results directory",
        description=(
            "Aggregate the final scores of every finished trial with rliable (IQM, mean, median, "
            "optimality gap with 95% stratified-bootstrap CIs, probability of improvement of each "
            "ERA variant over its baseline, performance profiles, sample-efficiency curves) and "
            "write report.md, report.json and PNG figures. Same inputs, same report, byte for byte."
        ),
    )
    parser.add_argument("results_dir", metavar="RESULTS_DIR",
                        help="folder written by `era run` (results.parquet, trials.parquet, suite.json), "
                             "or its storage URI (s3://BUCKET/era/<suite>, as `era submit` printed it)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default reports/<suite-name>/)")
    parser.add_argument("--reps", type=int, default=DEFAULT_REPS,
                        help=f"bootstrap repetitions (default {DEFAULT_REPS}, rliable's recommendation)")
    parser.add_argument("--bootstrap", choices=BOOTSTRAPS, default=BOOTSTRAPS[0],
                        help="vectorized (default: all repetitions at once) or rliable (its own, slower "
                             "routine, to cross-check)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--final", default="last",
                        help="a run's final score: 'last' evaluation (default) or 'mean:K' of the last K")
    parser.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    from harness.report import write_report
    from harness.cluster.storage import results_folder

    try:
        with results_folder(args.results_dir) as results_dir:  # a URI: its tables, copied here
            path = write_report(results_dir, args.out, reps=args.reps, seed=args.seed, final=args.final,
                                bootstrap=args.bootstrap)
    except ConfigError as error:
        return command_error("report", error)
    print(f"wrote {path}")
    return EXIT_OK
