"""The results store: rows from trial states, re-run steps replaced, atomic writes, resume pointers."""

from __future__ import annotations

import dataclasses
import json
import math
import textwrap

import pandas as pd
import pytest

from harness.errors import ResultsDirError
from harness.run.recorder import read_checkpoint, resume_point
from harness.store import (
    RESULT_COLUMNS,
    TrialState,
    check_results_dir,
    read_states,
    results_frame,
    write_state,
    write_tables,
)
from harness.suite import expand, load_suite


@pytest.fixture()
def suite_and_trials(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent("""\
        name: store
        benchmark: gym_mujoco
        algorithms:
          ppo: {settings: {n_steps: 64, policy_kwargs: {net_arch: [8]}}}
          ppo-era:
            settings: {n_steps: 64}
            sweep: {entropy_per_dim: [0.25, auto-ish]}
        tasks: [gym:Hopper-v5]
        seeds: 1
        budget: 128
        """))
    suite = load_suite(path)
    return suite, expand(suite)


def _record(step, score):
    return {"step": step, "score": score, "entropy": 0.5, "wall_time_s": step / 100.0}


def test_rows_come_from_states_with_rerun_steps_replaced(suite_and_trials):
    suite, trials = suite_and_trials
    first = trials[0]
    states = {t.trial_id: TrialState(t.trial_id) for t in trials}
    # a restore re-ran step 64: the later value wins, nothing is duplicated
    states[first.trial_id].records = [_record(64, 1.0), _record(128, 2.0), _record(64, 3.0)]
    frame = results_frame(trials, states, suite.benchmark)
    assert list(frame.columns[: len(RESULT_COLUMNS)]) == RESULT_COLUMNS
    assert frame[["step", "score"]].values.tolist() == [[64, 3.0], [128, 2.0]]
    # normalized against the shipped Hopper reference, computed here from the table itself
    from harness.stats.normalize import reference

    ref = reference("gym_mujoco", "gym:Hopper-v5")
    assert frame.normalized_score.tolist() == pytest.approx([(3.0 - ref.low) / (ref.high - ref.low),
                                                            (2.0 - ref.low) / (ref.high - ref.low)])
    assert frame["setting.policy_kwargs"].iloc[0] == json.dumps({"net_arch": [8]})


def test_setting_columns_with_mixed_types_become_text(suite_and_trials, tmp_path):
    suite, trials = suite_and_trials
    states = {t.trial_id: TrialState(t.trial_id, records=[_record(128, 1.0)]) for t in trials}
    results, table = write_tables(tmp_path / "out", suite, trials, states)
    again = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert sorted(again["setting.entropy_per_dim"].dropna()) == ["0.25", "auto-ish"]
    assert set(table.status) == {"pending"} and len(table) == len(trials) == 3
    assert not list((tmp_path / "out").glob(".*tmp*"))  # no temp file left behind


def test_benchmark_none_leaves_scores_unnormalized(suite_and_trials):
    suite, trials = suite_and_trials
    states = {t.trial_id: TrialState(t.trial_id, records=[_record(128, 1.0)]) for t in trials}
    frame = results_frame(trials, states, "none")
    assert frame.normalized_score.map(math.isnan).all()


def test_states_round_trip_and_results_dir_checks(suite_and_trials, tmp_path):
    suite, trials = suite_and_trials
    out = tmp_path / "out"
    assert check_results_dir(out, suite, resume=False) is False
    with pytest.raises(ResultsDirError, match="nothing to resume"):
        check_results_dir(out, suite, resume=True)
    state = TrialState(trials[0].trial_id, status="failed", error="boom", failures=2, records=[_record(64, 1.0)])
    write_state(out, state)
    assert read_states(out, [trials[0].trial_id])[trials[0].trial_id] == state
    with pytest.raises(ResultsDirError, match="not the results folder of a suite"):
        check_results_dir(out, suite, resume=False)
    write_tables(out, suite, trials, {t.trial_id: TrialState(t.trial_id) for t in trials})
    assert check_results_dir(out, suite, resume=True) is True


def test_resume_point_falls_back_to_the_newest_readable_checkpoint(tmp_path):
    import pyarrow.fs

    trial_dir = tmp_path / "run" / "trial"
    for index, steps in ((0, [64]), (1, [64, 128])):
        current = trial_dir / f"checkpoint_00000{index}" / "current"
        current.mkdir(parents=True)
        (current / "progress.json").write_text(json.dumps({"records": [_record(s, 1.0) for s in steps]}))
    newest = str(trial_dir / "checkpoint_000001")
    assert resume_point(newest) == newest
    gone = str(trial_dir / "checkpoint_000002")  # Tune replaced the one the driver saw last
    assert resume_point(gone) == newest
    assert resume_point(None) is None
    records, environment = read_checkpoint(pyarrow.fs.LocalFileSystem(), newest)
    assert [r["step"] for r in records] == [64, 128] and environment == {}


def test_one_run_at_a_time_per_results_folder(tmp_path):
    from harness.run.runner import _exclusive

    with _exclusive(tmp_path / "out"):
        with pytest.raises(ResultsDirError, match=r"another era run \(pid \d+\) is writing"):
            with _exclusive(tmp_path / "out"):
                pass
    with _exclusive(tmp_path / "out"):  # released when the first run ends
        pass
    # a run that wrote nothing leaves nothing, not even the folders it created for its lock
    assert not (tmp_path / "out").exists()
    with _exclusive(tmp_path / "a" / "b"):
        (tmp_path / "a" / "b" / "results.parquet").write_text("x")
    assert [p.name for p in (tmp_path / "a" / "b").iterdir()] == ["results.parquet"]
    with _exclusive(tmp_path / "new" / "deeper"):
        pass
    assert not (tmp_path / "new").exists()


# ------------------------------------------------------------------ corrupt state files
def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def valid_suite(tmp_path):
    path = tmp_path / "valid.yaml"
    path.write_text(textwrap.dedent("""\
        name: store
        algorithms: {ppo: {settings: {n_steps: 64, policy_kwargs: {net_arch: [8]}}}}
        tasks: [gym:Pendulum-v1]
        seeds: 2
        budget: 128
        """))
    suite = load_suite(path)
    return suite, expand(suite)


@pytest.fixture()
def earlier_run(valid_suite, tmp_path):
    """A results folder as an interrupted `era run` leaves it: one trial part-way, the others pending."""
    suite, trials = valid_suite
    out = tmp_path / "out"
    states = {t.trial_id: TrialState(t.trial_id) for t in trials}
    states[trials[0].trial_id] = TrialState(trials[0].trial_id, status="running", records=[_record(64, 1.0)])
    for state in states.values():
        write_state(out, state)
    write_tables(out, suite, trials, states)
    return suite.path, out, trials[0].trial_id


def _truncate(path):
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


@pytest.mark.parametrize(("damage", "named", "fix"), [
    (lambda out, tid: _truncate(out / "trials" / f"{tid}.json"), "trials/{tid}.json", "delete it"),
    (lambda out, tid: (out / "trials" / f"{tid}.json").write_text("[1, 2]"), "trials/{tid}.json", "delete it"),
    (lambda out, tid: (out / "trials" / f"{tid}.json").write_text('{"records": "x"}'), "trials/{tid}.json", "delete it"),
    (lambda out, tid: (out / "trials" / f"{tid}.json").write_bytes(b"\xff\xfe\x00garbage"), "trials/{tid}.json", "delete it"),
    (lambda out, tid: _truncate(out / "suite.json"), "suite.json", "delete it"),
    (lambda out, tid: (out / "suite.json").write_text('"a string"'), "suite.json", "delete it"),
], ids=["truncated-state", "state-not-an-object", "state-records-not-a-list", "state-not-text",
        "truncated-suite-json", "suite-json-not-an-object"])
@pytest.mark.parametrize("command", ["run", "list"])
def test_a_corrupt_state_file_is_named_with_the_fix_exit_2_and_nothing_written(earlier_run, capsys, damage, named,
                                                                              fix, command):
    from harness.cli import main

    suite_path, out, trial_id = earlier_run
    damage(out, trial_id)
    before = _snapshot(out)
    extra = ["--resume", "--no-report", "--report-dir", str(out.parent / "report")] if command == "run" else []
    assert main([command, str(suite_path), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert str(out / named.format(tid=trial_id)) in err and fix in err and "Traceback" not in err
    assert _snapshot(out) == before and not (out.parent / "report").exists()


def test_deleting_a_corrupt_suite_json_lets_the_run_continue(earlier_run, valid_suite):
    """The fix the message names works: the suite's name is also in trials.parquet."""
    suite, _ = valid_suite
    _, out, _ = earlier_run
    (out / "suite.json").unlink()
    assert check_results_dir(out, suite, resume=True) is True
    other = dataclasses.replace(suite, name="another")
    with pytest.raises(ResultsDirError, match="holds the results of suite 'store'"):
        check_results_dir(out, other, resume=True)


def test_a_corrupt_state_is_named_by_read_states(earlier_run):
    _, out, trial_id = earlier_run
    _truncate(out / "trials" / f"{trial_id}.json")
    with pytest.raises(ResultsDirError, match=rf"{trial_id}\.json is corrupt .*delete it"):
        read_states(out, [trial_id])
