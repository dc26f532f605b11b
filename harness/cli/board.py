"""``era board [REPORTS_DIR]``: the board of the paper's claims (``REPORTS_DIR/README.md``) from the
committed reports, the suites and the benchmark outputs."""

from __future__ import annotations

import argparse
from pathlib import Path

from adapters.errors import ConfigError
from harness.errors import EXIT_FAILED, EXIT_OK, command_error

__all__ = ["add_parser", "run_command"]


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "board",
        help="write the board of the paper's claims (REPORTS_DIR/README.md) from the committed reports",
        description=(
            "One row per claim of the paper's reference table: the paper's numbers, the suites that reproduce "
            "it, the largest committed run of it (from REPORTS_DIR/*/report.json), its measured effect and the "
            "verdict; the overhead claim from benchmarks/results/. Same files, same board, byte for byte."
        ),
    )
    parser.add_argument("reports_dir", metavar="REPORTS_DIR", nargs="?", type=Path, default=Path("reports"),
                        help="folder of committed reports, one sub-folder each (default reports/)")
    parser.add_argument("--out", type=Path, default=None, help="board file (default REPORTS_DIR/README.md)")
    parser.add_argument("--suites", type=Path, default=None,
                        help="folder of suite files (default: suites/ beside REPORTS_DIR)")
    parser.add_argument("--benchmarks", type=Path, default=None,
                        help="folder of benchmark outputs (default: benchmarks/results/ beside REPORTS_DIR)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when the board file differs from what it would be")
    parser.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    from harness.report.board import build_board, write_board

    reports = args.reports_dir
    if not reports.is_dir():
        return command_error("board", f"reports folder {reports} does not exist: pass the folder that holds "
                                      f"the committed reports (reports/)")
    root = reports.resolve().parent
    suites = args.suites or root / "suites"
    benchmarks = args.benchmarks or root / "benchmarks" / "results"
    out = args.out or reports / "README.md"
    try:
        if args.check:
            current = out.read_text() if out.is_file() else None
            if current != build_board(reports, suites_dir=suites, benchmarks_dir=benchmarks, out=out):
                return command_error("board", f"{out} is out of date: run `era board {reports}` and commit it",
                                     EXIT_FAILED)
            print(f"{out} is up to date")
            return EXIT_OK
        path = write_board(reports, out, suites_dir=suites, benchmarks_dir=benchmarks)
    except ConfigError as error:
        return command_error("board", error)
    print(f"wrote {path}")
    return EXIT_OK
