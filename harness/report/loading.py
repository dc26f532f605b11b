"""Reading a results folder for a report: the store's three files, as they were written."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.errors import ResultsDirError
from harness.store import corrupt_file, read_json_file

__all__ = ["ResultsDir", "load_results", "default_out_dir"]

#: the columns of the store's tables (``harness.store``) a report reads
_RESULT_COLUMNS = ("trial_id", "algo", "base_algo", "task", "seed", "step", "score", "normalized_score", "entropy")
_TRIAL_COLUMNS = ("trial_id", "algo", "base_algo", "task", "seed", "status")


@dataclass
class ResultsDir:
    """The tables of one results directory, as the store wrote them."""

    path: Path
    results: pd.DataFrame
    trials: pd.DataFrame
    suite: dict

    @property
    def name(self) -> str:
        return str(self.suite.get("name") or self.path.resolve().name)


#: how to rewrite a results folder's tables: both commands rebuild them from their saved state
_REWRITE = ("run the `era run` (or `era trial`) that wrote this folder again: it rewrites the tables from "
            "the trials' saved state, without running finished trials again")


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
        raise corrupt_file(path, f"not a readable parquet table: {error}", _REWRITE) from None


def load_results(results_dir: str | Path) -> ResultsDir:
    """Read ``results.parquet``, ``trials.parquet`` and ``suite.json`` of a folder ``era run`` or
    ``era trial`` wrote (``harness.store`` owns their schema; nothing is filled in here).

    Raises ``ResultsDirError`` (a ``ConfigError``: exit code 2) on a folder it cannot use.
    """
    path = Path(results_dir)
    if not path.is_dir():
        raise ResultsDirError(f"results directory {path} does not exist: pass the folder `era run` wrote")
    files = {name: path / name for name in ("results.parquet", "trials.parquet", "suite.json")}
    missing = [name for name, file in files.items() if not file.exists()]
    if missing:
        raise ResultsDirError(
            f"{path} lacks {', '.join(missing)}: pass a folder written by `era run` or `era trial` (an older "
            f"era-harness wrote fewer files: rerun the suite, or the trial, into it to rewrite them)"
        )
    rewrite_suite = f"delete it, then {_REWRITE}"
    suite = read_json_file(files["suite.json"], rewrite_suite)
    if not isinstance(suite, dict):
        raise corrupt_file(files["suite.json"], f"a JSON {type(suite).__name__}, not an object", rewrite_suite)
    results, trials = _read_parquet(files["results.parquet"]), _read_parquet(files["trials.parquet"])
    for file, frame, columns in ((files["results.parquet"], results, _RESULT_COLUMNS),
                                 (files["trials.parquet"], trials, _TRIAL_COLUMNS)):
        lacking = [c for c in columns if c not in frame.columns]
        if lacking:
            raise ResultsDirError(
                f"{file} lacks the column(s) {', '.join(lacking)}: it was not written by `era run` or "
                f"`era trial`; rerun them to rewrite it"
            )
    results = results.copy()
    for column in ("score", "normalized_score", "entropy", "step"):
        results[column] = pd.to_numeric(results[column], errors="coerce")
    return ResultsDir(path=path, results=results, trials=trials, suite=suite)


def default_out_dir(data: ResultsDir) -> Path:
    """``reports/<suite-name>/`` (relative to the working directory)."""
    return Path("reports") / re.sub(r"[^A-Za-z0-9._-]+", "_", data.name)
