"""The results store at scale: compact records, cached table parts, and tables equal to the
straightforward construction (one dict per row, pandas), frame for frame and schema for schema."""

from __future__ import annotations

import json
import math
import pickle
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from harness.store import (
    Records,
    TableCache,
    TrialState,
    read_states,
    save_tables,
    write_state,
    write_tables,
)
from harness.suite import expand, load_suite

ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------ the reference: dicts -> pandas
def _reference_setting(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, sort_keys=True)


def _reference_missing(value):
    return value is None or (isinstance(value, float) and math.isnan(value))


def reference_results(trials, states, benchmark):
    """results.parquet's frame built the plain way: one dict per (trial, step), then pandas."""
    from harness.stats.normalize import normalized_score

    leading = ["trial_id", "suite", "algo", "base_algo", "task", "seed", "step", "score", "normalized_score",
               "entropy", "wall_time_s"]
    rows = []
    for trial in trials:
        by_step = {int(r["step"]): r for r in states[trial.trial_id].records}
        for step in sorted(by_step):
            record = by_step[step]
            row = {"trial_id": trial.trial_id, "suite": trial.suite, "algo": trial.variant,
                   "base_algo": trial.base_algo, "task": trial.spec.task, "seed": trial.spec.seed,
                   "step": step, "score": float(record["score"]), "normalized_score": math.nan,
                   "entropy": float(record["entropy"]), "wall_time_s": float(record["wall_time_s"])}
            row.update({k: v for k, v in record.items() if k not in row})
            row["unit"] = trial.unit
            row["budget"] = trial.spec.budget
            row.update({f"setting.{k}": _reference_setting(v) for k, v in trial.spec.settings.items()})
            rows.append(row)
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype="float64" if c in ("score", "normalized_score", "entropy",
                                                                  "wall_time_s") else "object") for c in leading})
    frame = pd.DataFrame(rows)
    settings = [c for c in frame.columns if c.startswith("setting.")]
    metrics = [c for c in frame.columns if c not in leading and c not in settings and c not in ("unit", "budget")]
    frame = frame[leading + metrics + ["unit", "budget"] + settings]
    normalized = pd.Series(math.nan, index=frame.index, dtype="float64")
    for task, index in frame.groupby("task").groups.items():
        normalized.loc[index] = normalized_score(benchmark, task, frame.loc[index, "score"].to_numpy())
    frame["normalized_score"] = normalized
    frame["seed"] = frame["seed"].astype("int64")
    frame["step"] = frame["step"].astype("int64")
    for column in settings:
        kinds = {type(v) for v in frame[column] if not _reference_missing(v)}
        if len(kinds) > 1 and not kinds <= {int, float}:
            frame[column] = [None if _reference_missing(v) else (v if isinstance(v, str) else json.dumps(v))
                             for v in frame[column]]
    return frame


def _iso(stamp):
    import time

    return None if stamp is None else time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(stamp))


def reference_trials(trials, states):
    rows = []
    for trial in trials:
        state = states[trial.trial_id]
        env = state.environment or {}
        records = list(state.records)
        rows.append({
            "trial_id": trial.trial_id, "suite": trial.suite, "algo": trial.variant,
            "base_algo": trial.base_algo, "task": trial.spec.task, "seed": trial.spec.seed,
            "status": state.status if state.status in ("done", "failed", "pending") else "pending",
            "error": state.error, "traceback": state.traceback,
            "evaluations": len(records), "last_step": int(records[-1]["step"]) if records else None,
            "budget": trial.spec.budget, "unit": trial.unit,
            "failures": state.failures, "config_hash": trial.config_hash,
            "code_version": state.code_version, "packages": json.dumps(env.get("packages", {}), sort_keys=True),
            "hostname": env.get("hostname"), "device": env.get("device"),
            "settings": json.dumps(dict(trial.spec.settings), sort_keys=True),
            "sweep": json.dumps(dict(trial.sweep), sort_keys=True),
            "resources": json.dumps(trial.resources.plain()),
            "checkpoint": state.checkpoint,
            "started_at": _iso(state.started_at), "finished_at": _iso(state.finished_at),
        })
    frame = pd.DataFrame(rows)
    frame["last_step"] = frame["last_step"].astype("Int64")
    return frame


# ------------------------------------------------------------------ a suite with every awkward case
@pytest.fixture()
def mixed(tmp_path):
    path = tmp_path / "mixed.yaml"
    path.write_text(textwrap.dedent("""\
        name: mixed
        benchmark: gym_mujoco
        algorithms:
          ppo: {settings: {n_steps: 64, policy_kwargs: {net_arch: [8]}, normalize: true}}
          ppo-era:
            settings: {n_steps: 64}
            sweep: {entropy_per_dim: [0.25, auto-ish], n_epochs: [1, 2.5]}
        tasks: [gym:Hopper-v5, gym:Pendulum-v1]
        seeds: 1
        budget: 128
        """))
    suite = load_suite(path)
    return suite, expand(suite)


def _record(step, score, **metrics):
    return {"step": step, "score": score, "entropy": 0.5, "wall_time_s": step / 100.0, **metrics}


def _states(trials):
    """Ten trials, each awkward in its own way; the rest have no records."""
    states = {t.trial_id: TrialState(t.trial_id) for t in trials}
    ids = [t.trial_id for t in trials]
    env = {"packages": {"numpy": "2.0", "torch": "2.5"}, "hostname": "node-1", "device": "cpu"}
    cases = [
        # done; a step re-run after a restore (its last values win), a NaN value
        TrialState(ids[0], "done", [_record(64, 1.0, entropy_min=0.1), _record(128, 2.0, entropy_min=math.nan),
                                    _record(64, 3.0, entropy_min=0.3)], checkpoint="/ck/0", environment=env,
                   code_version="abc", started_at=1.7e9, finished_at=1.7e9 + 60),
        # failed; other metric keys, an int metric on every row
        TrialState(ids[1], "failed", [_record(64, 5.0, target_entropy=-1.0, delta=0.1, sim_steps=64),
                                      _record(128, 6.0, target_entropy=-1.0, delta=0.2, sim_steps=128)],
                   error="RuntimeError: boom", traceback="Traceback...\nRuntimeError: boom", failures=2),
        # pending, never ran
        TrialState(ids[2], "pending"),
        # running (shown as pending); keys in another order, a metric missing from one record
        TrialState(ids[3], "running", [{"score": 1.5, "step": 32, "wall_time_s": 1.0, "entropy": 0.2, "delta": 0.3},
                                       _record(96, 2.5)], environment=env),
        # an int metric here and a float one there (as after a restore), and a float step
        TrialState(ids[4], "done", [_record(64.0, 1.0, sim_steps=64), _record(128, 2.0, sim_steps=128.0)]),
        # metrics that are not numbers: a boolean, a None
        TrialState(ids[5], "done", [_record(64, 1.0, converged=False, spare=None),
                                    _record(128, 2.0, converged=True, spare=0.5)]),
        # steps out of order, unsorted and repeated more than once
        TrialState(ids[6], "done", [_record(300, 3.0), _record(100, 1.0), _record(200, 2.0), _record(100, 1.5),
                                    _record(300, 3.5)]),
    ]
    for state in cases:
        states[state.trial_id] = state
    return states


def _assert_tables_equal(out, trials, states, benchmark, returned=None):
    results, table = reference_results(trials, states, benchmark), reference_trials(trials, states)
    reference_dir = out.parent / f"{out.name}-reference"
    reference_dir.mkdir(exist_ok=True)
    results.to_parquet(reference_dir / "results.parquet", index=False)
    table.to_parquet(reference_dir / "trials.parquet", index=False)
    for name in ("results.parquet", "trials.parquet"):
        ours, theirs = pq.read_schema(out / name), pq.read_schema(reference_dir / name)
        assert ours.equals(theirs, check_metadata=True), (name, ours, theirs)
        # the footer's own metadata too, in order (results.parquet writes it itself: see write_results)
        footer = lambda path: list(pq.read_metadata(path).metadata.items())  # noqa: E731
        assert footer(out / name) == footer(reference_dir / name), name
        pd.testing.assert_frame_equal(pd.read_parquet(out / name), pd.read_parquet(reference_dir / name))
    if returned is not None:
        pd.testing.assert_frame_equal(returned[0], pd.read_parquet(reference_dir / "results.parquet"))
        pd.testing.assert_frame_equal(returned[1], table)


@pytest.mark.parametrize("rows_per_group", [1 << 17, 3, 1], ids=["one-group", "groups-of-3", "a-group-per-trial"])
def test_tables_equal_the_plain_construction(mixed, tmp_path, monkeypatch, rows_per_group):
    import harness.store.tables

    monkeypatch.setattr(harness.store.tables, "ROWS_PER_GROUP", rows_per_group)
    suite, trials = mixed
    assert len(trials) >= 7
    states = _states(trials)
    out = tmp_path / "out"
    returned = write_tables(out, suite, trials, states)
    _assert_tables_equal(out, trials, states, suite.benchmark, returned)
    frame = pd.read_parquet(out / "results.parquet")
    # the awkward cases came through: re-run step replaced, mixed settings as text, a bool metric
    first = frame[frame.trial_id == trials[0].trial_id]
    assert first[["step", "score"]].values.tolist() == [[64, 3.0], [128, 2.0]]
    assert sorted(frame["setting.entropy_per_dim"].dropna().unique()) == ["0.25", "auto-ish"]
    assert frame["sim_steps"].dtype == "float64" and frame["converged"].dropna().tolist() == [False, True]
    assert not list(out.glob(".*tmp*"))
    groups = pq.ParquetFile(out / "results.parquet").metadata.num_row_groups
    with_rows = len([s for s in states.values() if s.records])
    assert groups == {1 << 17: 1, 3: groups, 1: with_rows}[rows_per_group] and (groups > 1) == (rows_per_group < 100)


def test_an_int_metric_on_every_row_stays_int64(mixed, tmp_path):
    suite, trials = mixed
    rows = [_record(64, 1.0, sim_steps=64), _record(128, 2.0, sim_steps=128)]
    states = {t.trial_id: TrialState(t.trial_id, "done", rows) for t in trials}
    out = tmp_path / "out"
    write_tables(out, suite, trials, states)
    assert pd.read_parquet(out / "results.parquet")["sim_steps"].dtype == "int64"
    _assert_tables_equal(out, trials, states, suite.benchmark)


def test_no_records_at_all(mixed, tmp_path):
    suite, trials = mixed
    states = {t.trial_id: TrialState(t.trial_id) for t in trials}
    out = tmp_path / "out"
    write_tables(out, suite, trials, states)
    _assert_tables_equal(out, trials, states, suite.benchmark)


def test_the_cache_rebuilds_changed_trials_and_serves_no_stale_rows(mixed, tmp_path):
    suite, trials = mixed
    states = _states(trials)
    out = tmp_path / "out"
    cache = TableCache()
    save_tables(out, suite, trials, states, cache)
    _assert_tables_equal(out, trials, states, suite.benchmark)
    unchanged = trials[1]
    kept = cache.rows(unchanged, states[unchanged.trial_id].records)

    # trial 0 reports again: same number of records, other values; trial 2 gets its first ones;
    # trial 5 loses its bool metric, so that column's type changes; statuses change
    states[trials[0].trial_id].records = [_record(64, 9.0, entropy_min=0.9), _record(128, 8.0, entropy_min=0.8),
                                          _record(192, 7.0, entropy_min=0.7)]
    states[trials[2].trial_id].records = [_record(64, 4.0, delta=1.0)]
    states[trials[2].trial_id].status = "running"
    states[trials[5].trial_id].records = [_record(64, 1.0)]
    states[trials[1].trial_id].status = "done"
    states[trials[0].trial_id].environment = {"packages": {"numpy": "2.1"}}
    save_tables(out, suite, trials, states, cache)
    _assert_tables_equal(out, trials, states, suite.benchmark)
    assert cache.rows(unchanged, states[unchanged.trial_id].records) is kept
    frame = pd.read_parquet(out / "results.parquet")
    assert frame[frame.trial_id == trials[0].trial_id].score.tolist() == [9.0, 8.0, 7.0]
    assert "converged" not in frame

    # a trial's records replaced by an equal list still reads right; so does dropping them all
    states[trials[3].trial_id].records = list(states[trials[3].trial_id].records)
    states[trials[6].trial_id].records = []
    save_tables(out, suite, trials, states, cache)
    _assert_tables_equal(out, trials, states, suite.benchmark)


def test_a_different_trial_list_or_benchmark_is_not_served_from_the_cache(mixed, tmp_path):
    suite, trials = mixed
    states = _states(trials)
    cache = TableCache()
    out = tmp_path / "out"
    save_tables(out, suite, trials, states, cache)
    fewer = trials[::2]
    save_tables(out, suite, fewer, states, cache)
    _assert_tables_equal(out, fewer, states, suite.benchmark)
    from harness.store.tables import results_table

    for benchmark in ("none", "gym_mujoco"):
        table = results_table(trials, states, benchmark, cache).to_pandas()
        reference = reference_results(trials, states, benchmark)
        np.testing.assert_array_equal(table.normalized_score.to_numpy(), reference.normalized_score.to_numpy())


def test_a_cache_pickles_empty_and_a_recorder_with_its_states(mixed, tmp_path):
    """Tune pickles its callbacks with the experiment (tuner.pkl): the Recorder's cache is left out."""
    from harness.run.recorder import Recorder

    suite, trials = mixed
    states = _states(trials)
    recorder = Recorder(tmp_path / "out", suite, trials, states, "run", "code")
    recorder.write_tables()
    assert recorder.cache._rows
    again = pickle.loads(pickle.dumps(recorder))
    assert again.cache._rows == {}
    as_text = lambda states: {k: json.dumps(v.to_json()) for k, v in states.items()}  # noqa: E731 (NaN != NaN)
    assert as_text(again.states) == as_text(recorder.states)


# ------------------------------------------------------------------ compact records
def test_records_read_back_as_the_dicts_they_were():
    rows = [
        {"step": 64, "score": 1.0, "entropy": 0.5, "wall_time_s": 0.1, "sim_steps": 64},
        {"score": 2.0, "step": 128, "entropy": math.inf, "wall_time_s": -0.0, "extra": "text", "flag": True},
        {"step": 2**60, "score": 3, "entropy": None, "wall_time_s": 1e-300},
    ]
    records = Records(rows)
    assert len(records) == 3 and records == rows and records.to_list() == rows
    for got, want in zip(records, rows):
        assert list(got) == list(want)
        assert [type(v) for v in got.values()] == [type(v) for v in want.values()]
    assert records[-1] == rows[-1] and records[1:] == rows[1:]
    assert math.copysign(1.0, records[1]["wall_time_s"]) == -1.0
    nan = Records([{"step": 1, "score": math.nan}])
    assert math.isnan(nan[0]["score"]) and type(nan[0]["step"]) is int
    assert list(Records([{"step": 1.9}, {"step": -1.5}]).steps()) == [1, -1]


def test_uniform_records_take_the_compact_path_and_compare_equal():
    rows = [{"step": 10 * i, "score": float(i), "entropy": 0.1, "wall_time_s": 0.5} for i in range(100)]
    records = Records(rows)
    assert records._layout_of is None and records._objects is None and records._numbers.shape == (4, 100)
    assert records == Records(list(rows)) and records != rows[:-1]
    assert pickle.loads(pickle.dumps(records)) == rows
    assert Records() == [] and not Records() and Records(records) == rows
    with pytest.raises(IndexError):
        records[100]


def test_trial_state_keeps_records_compact_and_round_trips(tmp_path):
    rows = [_record(64, 1.0, sim_steps=64), _record(128, 2.0, sim_steps=128.0)]
    state = TrialState("abc", "done", rows)
    assert isinstance(state.records, Records) and state.records == rows and state.last_step == 128
    state.records = rows[:1]
    assert isinstance(state.records, Records) and state.last_step == 64
    state.records = rows
    write_state(tmp_path, state)
    saved = json.loads((tmp_path / "trials" / "abc.json").read_text())
    assert saved["records"] == rows and isinstance(saved["records"][0]["step"], int)
    assert isinstance(saved["records"][1]["sim_steps"], float)
    assert read_states(tmp_path, ["abc"])["abc"] == state


# ------------------------------------------------------------------ the benchmark itself
def test_the_benchmark_runs_at_a_tiny_size():
    command = [sys.executable, str(ROOT / "benchmarks" / "store_scale.py"), "--trials", "20", "--evals", "5"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if re.match(r"\s+20\s+5\s", line))
    trials, evals, rows, *figures = line.split()
    assert (int(trials), int(evals), int(rows)) == (20, 5, 103)
    assert len(figures) == 9 and all(float(f) > 0 for f in figures), line
    assert "load average" in done.stdout and "goal at 10000 trials" in done.stdout


def test_remembered_texts_tell_1_from_true(mixed, tmp_path):
    """Trials of one variant and task share their settings' text only when the settings are the
    same down to their types; packages likewise."""
    import dataclasses

    suite, trials = mixed
    first = trials[0]
    as_int = dataclasses.replace(first, trial_id="a" * 12, spec=dataclasses.replace(first.spec, settings={"x": 1}))
    as_bool = dataclasses.replace(first, trial_id="b" * 12, spec=dataclasses.replace(first.spec, settings={"x": True}))
    both = [as_int, as_bool]
    states = {t.trial_id: TrialState(t.trial_id, "done", [_record(64, 1.0)]) for t in both}
    states[as_int.trial_id].environment = {"packages": {"numpy": 1}}
    states[as_bool.trial_id].environment = {"packages": {"numpy": True}}
    cache = TableCache()
    out = tmp_path / "out"
    save_tables(out, suite, both, states, cache)
    table = pd.read_parquet(out / "trials.parquet")
    assert table.settings.tolist() == ['{"x": 1}', '{"x": true}']
    assert table.packages.tolist() == ['{"numpy": 1}', '{"numpy": true}']
    assert pd.read_parquet(out / "results.parquet")["setting.x"].tolist() == ["1", "true"]
    states[as_int.trial_id].environment = {"packages": {"numpy": "2.0"}}
    save_tables(out, suite, both, states, cache)
    assert pd.read_parquet(out / "trials.parquet").packages.tolist() == ['{"numpy": "2.0"}', '{"numpy": true}']
    _assert_tables_equal(out, both, states, suite.benchmark)


def test_trials_of_unusual_values_go_through_pandas(mixed, tmp_path):
    """A trials.parquet column whose values pyarrow's fast path does not type as pandas would (a
    number where text is usual, a float count) is built by pandas, as before."""
    suite, trials = mixed
    states = _states(trials)
    states[trials[1].trial_id].failures = 1.5
    for state in states.values():
        state.code_version = None
    states[trials[0].trial_id].code_version = 7
    out = tmp_path / "out"
    write_tables(out, suite, trials, states)
    _assert_tables_equal(out, trials, states, suite.benchmark)
    table = pd.read_parquet(out / "trials.parquet")
    assert table.failures.dtype == "float64" and table.code_version.tolist()[0] == 7


def test_uniform_records_without_a_step_are_still_refused(tmp_path):
    from harness.errors import ResultsDirError

    (tmp_path / "trials").mkdir()
    (tmp_path / "trials" / "abc.json").write_text(json.dumps({"records": [{"score": 1.0}, {"score": 2.0}]}))
    with pytest.raises(ResultsDirError, match="records are not a list of evaluations with a step"):
        read_states(tmp_path, ["abc"])
    (tmp_path / "trials" / "abc.json").write_text(json.dumps({"records": [{"step": True, "score": 1.0}]}))
    assert read_states(tmp_path, ["abc"])["abc"].records[0] == {"step": True, "score": 1.0}
