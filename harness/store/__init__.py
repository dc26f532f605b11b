"""Results on disk (``provenance`` records where each came from): every file is written atomically (temp file + ``os.replace``).

A suite's results folder::

    DIR/suite.json            the validated suite as plain data
    DIR/results.parquet       one row per (trial_id, step): trial_id, suite, algo, base_algo, task,
                              seed, step, score, normalized_score, entropy, wall_time_s, the family's
                              extra metrics, unit, budget and one setting.<key> column per setting
    DIR/trials.parquet        one row per trial: status (done | failed | pending), error (one line:
                              the exception's type and first line), traceback, config hash, code
                              version, package versions (JSON), ...
    DIR/trials/<id>.json      the driver's state of each trial: status, error, the pointer to its last
                              checkpoint, and the records of that checkpoint (the source of both tables)
    DIR/tune/                 Ray Tune's storage (checkpoints, TensorBoard logs), unless --storage

Records come from each trial's last checkpoint (the adapters keep the history inside it), so a
step that Tune re-runs after a restore replaces the earlier row instead of adding one.

The driver holds every trial's state while it runs and rewrites both tables from them every few
seconds, so both stay cheap at a cluster's 10,000 trials and more: ``TrialState.records`` is kept
column by column (:class:`~harness.store.records.Records`, read like the list of dicts it was
made from), and :mod:`harness.store.tables` builds results.parquet from a part per trial that a
:class:`~harness.store.tables.TableCache` keeps from one write to the next, rebuilding only the
trials whose records changed, and writes it a row group at a time. The tables are the same,
column for column and type for type, as pandas makes of one dict per row.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from harness.errors import ResultsDirError
from harness.store.records import Records
from harness.store.tables import (
    RESULT_COLUMNS,
    STATUSES,
    TableCache,
    results_table,
    trials_frame,
    trials_table,
    write_results,
)

if TYPE_CHECKING:
    from harness.suite import Suite, Trial

__all__ = [
    "write_atomic",
    "write_parquet_atomic",
    "write_json_atomic",
    "TrialState",
    "read_states",
    "write_state",
    "check_results_dir",
    "saved_suite_name",
    "read_json_file",
    "corrupt_file",
    "results_frame",
    "trials_frame",
    "trials_table",
    "write_tables",
    "save_tables",
    "write_trial_tables",
    "Records",
    "TableCache",
    "RESULT_COLUMNS",
    "STATUSES",
]


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Write ``path`` so that readers see the old file or the new one, never a part: ``write``
    fills a temporary file beside it, which is fsynced and renamed over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_parquet_atomic(frame: pd.DataFrame | pa.Table, path: str | Path) -> Path:
    """:func:`write_atomic` of a parquet table: a pandas frame as ``frame.to_parquet(index=False)``
    writes it, a pyarrow table as pandas writes the frame it came from (snappy)."""
    if isinstance(frame, pa.Table):
        import pyarrow.parquet as pq

        return write_atomic(path, lambda tmp: pq.write_table(frame, tmp, compression="snappy"))
    return write_atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))


def write_json_atomic(data: Any, path: str | Path) -> Path:
    """:func:`write_atomic` of a JSON document."""
    return write_atomic(path, lambda tmp: tmp.write_text(json.dumps(data, indent=1, default=str)))


@dataclass
class TrialState:
    """What the driver knows about one trial; ``status`` is ``pending``, ``running``, ``done`` or
    ``failed`` (``running`` is shown as ``pending`` in the tables: it is unfinished).

    ``records`` reads like a list of dicts; a list given or assigned is kept as :class:`Records`
    (compact, never changed in place: assign new records to change them)."""

    trial_id: str
    status: str = "pending"
    records: Records = field(default_factory=Records)
    checkpoint: str | None = None
    error: str | None = None
    traceback: str | None = None
    failures: int = 0
    runs: list[str] = field(default_factory=list)
    code_version: str | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    started_at: float | None = None
    finished_at: float | None = None

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "records" and not isinstance(value, Records):
            value = Records(value)
        object.__setattr__(self, name, value)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "TrialState":
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_json(self) -> dict[str, Any]:
        """The state as plain data (what its state file holds)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["records"] = self.records.to_list()
        return data

    @property
    def last_step(self) -> int | None:
        return int(self.records.value(-1, "step")) if self.records else None


def _state_path(out: Path, trial_id: str) -> Path:
    return Path(out) / "trials" / f"{trial_id}.json"


def corrupt_file(path: str | Path, problem: str, fix: str) -> ResultsDirError:
    """The error for a state file that cannot be used: it names the file, what is wrong, and
    ``fix``; one line (a parser's message is folded onto it)."""
    problem = " ".join(str(problem).split())
    return ResultsDirError(f"{path} is corrupt ({problem}; cut short by a crash or a full disk?): {fix}")


def read_json_file(path: str | Path, fix: str) -> Any:
    """A JSON state file's content; ``ResultsDirError`` naming the file and ``fix`` if it is not JSON."""
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.read().decode("utf-8"))
    except UnicodeDecodeError:
        raise corrupt_file(path, "not UTF-8 text", fix) from None
    except json.JSONDecodeError as error:
        raise corrupt_file(path, f"not valid JSON: {error}", fix) from None
    except OSError as error:
        raise ResultsDirError(f"cannot read {path} ({error.strerror or error}): check its permissions") from None


def _state_problem(data: Any, trial_id: str, records_checked: bool = False) -> str | None:
    """What makes ``data`` no trial state of ``trial_id``, or ``None`` (``records_checked``: its
    records are known to be evaluations with a step)."""
    if not isinstance(data, dict):
        return f"a JSON {type(data).__name__}, not an object"
    if data.get("trial_id", trial_id) != trial_id:
        return f"it is the state of trial {data.get('trial_id')!r}"
    if not isinstance(data.get("status", "pending"), str):
        return "its status is not text"
    records = data.get("records", [])
    if not records_checked and (not isinstance(records, list) or not all(
            isinstance(r, dict) and isinstance(r.get("step"), (int, float)) for r in records)):
        return "its records are not a list of evaluations with a step"
    for name in ("checkpoint", "error", "traceback"):
        if not isinstance(data.get(name), (str, type(None))):
            return f"its {name} is not text"
    return None


def read_states(out: str | Path, trial_ids: Iterable[str]) -> dict[str, TrialState]:
    """The saved state of each trial (a fresh ``pending`` one where there is none).

    Raises ``ResultsDirError`` (exit 2) naming a state file that is not a trial state, and the fix.
    """
    states = {}
    folder = str(Path(out) / "trials")  # then os.path, not pathlib: a resume reads 10,000s of these
    for trial_id in trial_ids:
        path = os.path.join(folder, f"{trial_id}.json")
        if not os.path.exists(path):
            states[trial_id] = TrialState(trial_id)
            continue
        fix = (f"delete it and run again; trial {trial_id} then starts over (the other trials keep their "
               f"results)")
        data = read_json_file(path, fix)
        # the usual records (a dict of the same numbers each) are checked by making them compact
        records = Records.uniform(data["records"]) if isinstance(data, dict) and type(data.get("records")) is list \
            else None
        checked = records is not None and (not records or "step" in records.keys)
        problem = _state_problem(data, trial_id, checked)
        if problem is not None:
            raise corrupt_file(path, problem, fix)
        if checked:
            data = {**data, "records": records}
        states[trial_id] = TrialState.from_json({"trial_id": trial_id, **data})
    return states


def write_state(out: str | Path, state: TrialState) -> None:
    write_json_atomic(state.to_json(), _state_path(Path(out), state.trial_id))


def _name_in_trials_table(out: Path) -> str | None:
    """The one suite ``trials.parquet`` names, if it is readable and names one."""
    try:
        names = pd.read_parquet(out / "trials.parquet", columns=["suite"])["suite"].dropna().unique()
    except (OSError, ValueError, KeyError):  # pyarrow's errors are OSError or ValueError subclasses
        return None
    return str(names[0]) if len(names) == 1 else None


def saved_suite_name(out: str | Path) -> str | None:
    """The name of the suite whose results ``out`` holds: from ``suite.json``, or, where that is
    missing, from ``trials.parquet``; ``None`` if neither is there. A ``suite.json`` that is not a
    JSON object with a name raises ``ResultsDirError`` naming it and the fix."""
    out = Path(out)
    saved = out / "suite.json"
    if not saved.exists():
        return _name_in_trials_table(out) if (out / "trials.parquet").exists() else None
    if _name_in_trials_table(out) is not None:
        fix = "delete it and run again: era run rewrites it (trials.parquet names the suite meanwhile)"
    else:
        fix = "restore it from a copy, or choose another --out (trials.parquet cannot stand in for it)"
    data = read_json_file(saved, fix)
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise corrupt_file(saved, "not a JSON object with the suite's name", fix)
    return data["name"]


def check_results_dir(out: str | Path, suite: "Suite", resume: bool) -> bool:
    """Whether ``out`` holds an earlier run of this suite; raises ``ResultsDirError`` if it holds
    another suite's results, if its ``suite.json`` is corrupt, or if ``resume`` asks to continue a
    run that is not there."""
    out = Path(out)
    name = saved_suite_name(out)
    if name is not None:
        if name != suite.name:
            raise ResultsDirError(
                f"{out} holds the results of suite {name!r}, not {suite.name!r}: choose another --out"
            )
        return True
    if out.exists() and any(p for p in out.iterdir() if not p.name.startswith(".")):
        raise ResultsDirError(
            f"{out} exists and is not the results folder of a suite: choose an empty or new --out"
        )
    if resume:
        raise ResultsDirError(
            f"nothing to resume in {out}: it holds no earlier run of {suite.name!r}; drop --resume "
            f"to start one (or give the --out of the run to continue)"
        )
    return False


def results_frame(trials: Sequence["Trial"], states: Mapping[str, TrialState], benchmark: str) -> pd.DataFrame:
    """One row per (trial, step) with the normalized score on ``benchmark``'s table (a suite's
    ``benchmark``: a table, ``auto`` or ``none``; NaN where the task has no reference there); the
    frame ``pd.read_parquet`` reads from results.parquet."""
    return results_table(trials, states, benchmark).to_pandas()


def write_tables(out: str | Path, suite: "Suite", trials: Sequence["Trial"], states: Mapping[str, TrialState],
                 cache: TableCache | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(Re)write ``suite.json``, ``results.parquet`` and ``trials.parquet`` for the suite's trials;
    returns the two tables as pandas frames (as ``pd.read_parquet`` reads them). The driver, which
    rewrites them while trials report, calls :func:`save_tables` instead."""
    cache = cache if cache is not None else TableCache()
    table = save_tables(out, suite, trials, states, cache)
    return results_table(trials, states, suite.benchmark, cache).to_pandas(), table.to_pandas()


def save_tables(out: str | Path, suite: "Suite", trials: Sequence["Trial"], states: Mapping[str, TrialState],
                cache: TableCache | None = None) -> pa.Table:
    """:func:`write_tables` without pandas frames (what the driver calls every few seconds): it
    writes results.parquet a row group at a time; with the same ``cache`` from call to call, only
    the rows of trials whose records changed are built again. Returns the trials table (pyarrow)."""
    out = Path(out)
    plain = suite.plain()
    plain["trials"] = len(trials)
    write_json_atomic(plain, out / "suite.json")
    return _write_frames(out, trials, states, suite.benchmark, cache)


def _write_frames(out: Path, trials: Sequence["Trial"], states: Mapping[str, TrialState], benchmark: str,
                  cache: TableCache | None = None) -> pa.Table:
    cache = cache if cache is not None else TableCache()
    write_atomic(out / "results.parquet", lambda tmp: write_results(tmp, trials, states, benchmark, cache))
    table = trials_table(trials, states, cache)
    write_parquet_atomic(table, out / "trials.parquet")
    return table


def write_trial_tables(out: str | Path, trial: "Trial", state: TrialState) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What ``era trial`` writes: the folder of a one-trial suite, in the schema ``era run`` writes
    (``suite.json``, ``results.parquet``, ``trials.parquet``), so ``era report`` reads both alike."""
    out = Path(out)
    spec = trial.spec
    plain = {
        "name": trial.suite, "description": f"era trial --algo {spec.algo} --task {spec.task} --seed {spec.seed}",
        "benchmark": "auto", "paper": None,
        "variants": [{"algo": trial.variant, "base_algo": trial.base_algo, "label": trial.variant,
                      "settings": dict(spec.settings), "sweep": dict(trial.sweep)}],
        "tasks": [spec.task], "seeds": [spec.seed], "trials": 1,
    }
    write_json_atomic(plain, out / "suite.json")
    cache = TableCache()
    table = _write_frames(out, [trial], {trial.trial_id: state}, "auto", cache)
    return results_table([trial], {trial.trial_id: state}, "auto", cache).to_pandas(), table.to_pandas()
