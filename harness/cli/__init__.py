"""The ``era`` command line.

Exit codes (``harness.errors``): 0 success, 1 a trial failed, 2 bad input (nothing started or written),
130 interrupted by Ctrl-C (``era run``: nothing failed, ``--resume`` continues; ``era submit --wait``:
the job goes on).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from harness import __version__
from harness.errors import EXIT_INTERRUPTED, EXIT_OK

__all__ = ["main", "build_parser"]



def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="era",
        description="Run ERA-vs-baseline trials and suites, and report them with honest statistics.",
    )
    parser.add_argument("--version", action="version", version=f"era-harness {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    from harness.cli import board, listing, report, run, submit, sync, trial

    trial.add_parser(commands)
    listing.add_parser(commands)
    run.add_parser(commands)
    report.add_parser(commands)
    board.add_parser(commands)
    submit.add_parser(commands)
    sync.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``era`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_OK
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:  # before the command could say more (e.g. while importing torch)
        print(f"era {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
