"""`era run --wandb / --mlflow` for real, offline: W&B in offline mode, MLflow in a folder store.

The runs use the session's local Ray (tests/conftest.py), which started before these tests set any
``WANDB_*`` variable: that the runs are logged offline, into the results folder, shows that the
driver's variables reach W&B's logging actors. Nothing here logs in or reaches the network.
"""

from __future__ import annotations

import struct
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from harness.cli import main
from test_runner import TINY_PPO, write_suite

pytest.importorskip("wandb")
pytest.importorskip("mlflow")

SUITE = f"""\
    name: tracked
    algorithms:
      ppo: {{settings: {TINY_PPO}}}
      ppo-era: {{settings: {TINY_PPO}}}
    tasks: [gym:Pendulum-v1]
    seeds: 1
    budget: 128
    eval: {{every: 64, episodes: 1}}
    """
LABELS = {"ppo gym:Pendulum-v1 seed 0", "ppo-era gym:Pendulum-v1 seed 0"}


@pytest.fixture
def tracker_env(tmp_path, monkeypatch):
    """W&B offline and silent, with none of the user's settings; MLflow's process-wide tracking URI
    (set by Ray's callback) and file-store opt-in put back afterwards."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    # what a test does not look at, and costs seconds on a busy machine: system metrics, git,
    # code, pip freeze, console capture
    for name, value in (("WANDB_X_DISABLE_STATS", "true"), ("WANDB_X_DISABLE_META", "true"),
                        ("WANDB_DISABLE_GIT", "true"), ("WANDB_DISABLE_CODE", "true"),
                        ("WANDB_X_SAVE_REQUIREMENTS", "false"), ("WANDB_CONSOLE", "off")):
        monkeypatch.setenv(name, value)
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home"))
    for name in ("WANDB_DIR", "WANDB_API_KEY", "WANDB_PROJECT_NAME", "WANDB_GROUP_NAME", "MLFLOW_ALLOW_FILE_STORE",
                 "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.setenv(name, "")  # recorded, so that teardown restores what was there before
        monkeypatch.delenv(name)
    yield
    import mlflow

    mlflow.set_tracking_uri(None)


# ------------------------------------------------------------------ W&B's offline transaction log
_BLOCK, _HEADER = 32 * 1024, 7  # the LevelDB log format W&B writes its .wandb files in


def wandb_records(path: Path) -> list:
    """The records of a ``.wandb`` file, parsed with W&B's own protobuf schema (wandb 0.31 has no
    Python reader of its own any more: its Go core writes the file)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    records, parts, pos = [], [], _HEADER
    while len(data) - pos >= _HEADER:
        left = _BLOCK - pos % _BLOCK
        length, kind = struct.unpack("<HB", data[pos + 4:pos + _HEADER])
        if left < _HEADER or kind == 0:  # the zero padding at a block's end
            pos += left
            continue
        parts.append(data[pos + _HEADER:pos + _HEADER + length])
        pos += _HEADER + length
        if kind in (1, 4):  # a whole record, or the last part of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(parts))
            records.append(record)
            parts = []
    return records


def wandb_run(folder: Path) -> dict:
    """One offline run: its run record, each logged row (``history``) and how it exited."""
    (log,) = folder.glob("*.wandb")
    run, history, exit_code = None, [], None
    for record in wandb_records(log):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
        elif kind == "history":
            history.append({item.key or "/".join(item.nested_key): float(item.value_json)
                            for item in record.history.item})
        elif kind == "exit":
            exit_code = record.exit.exit_code
    return {"run": run, "history": history, "exit_code": exit_code}


def _processes_with(text: bytes) -> list[int]:
    """Processes whose command line or environment holds ``text``."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if any(text in (proc / part).read_bytes() for part in ("cmdline", "environ")):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def _wait_gone(text: bytes, wait_s: float = 15.0) -> list[int]:
    deadline = time.monotonic() + wait_s
    while (alive := _processes_with(text)) and time.monotonic() < deadline:
        time.sleep(0.25)
    return alive


# ------------------------------------------------------------------ both trackers, one run
def test_wandb_offline_and_mlflow_folder_store_get_one_run_per_trial_named_by_it(
        local_ray, tmp_path, tracker_env, capsys):
    from mlflow.tracking import MlflowClient

    path = write_suite(tmp_path, SUITE)
    out, store = tmp_path / "results", (tmp_path / "mlruns").as_uri()
    assert main(["run", str(path), "--out", str(out), "--no-report", "--progress-every", "600",
                 "--wandb", "era-tests", "--mlflow", store]) == 0
    printed = capsys.readouterr()
    assert "2/2 done" in printed.out and "stopped logging" not in printed.out + printed.err
    results = pd.read_parquet(out / "results.parquet")
    assert len(results) == 4  # two trials, evaluated at steps 64 and 128
    labels = {f"{r.algo} {r.task} seed {r.seed}": r.trial_id for r in results.itertuples()}
    assert set(labels) == LABELS

    def expected(label: str) -> pd.DataFrame:
        return results[results.trial_id == labels[label]].sort_values("step")

    # W&B: one offline run per trial in the results folder (no WANDB_DIR), grouped by the suite,
    # named by the trial
    folders = sorted((out / "wandb").glob("offline-run-*"))
    assert len(folders) == 2
    runs = [wandb_run(folder) for folder in folders]
    assert {r["run"].display_name for r in runs} == LABELS
    for run in runs:
        assert run["run"].run_group == "tracked" and run["run"].project == "era-tests"
        assert run["exit_code"] == 0  # wandb.finish ran: the run is complete on disk
        want = expected(run["run"].display_name)
        assert [row["step"] for row in run["history"]] == want.step.tolist()
        assert [row["score"] for row in run["history"]] == pytest.approx(want.score.tolist(), rel=1e-9)
        assert [row["entropy"] for row in run["history"]] == pytest.approx(want.entropy.tolist(), rel=1e-9)
        assert all("config/trial/spec/seed" not in row for row in run["history"])
    era = next(r for r in runs if r["run"].display_name.startswith("ppo-era"))
    assert [row["entropy"] for row in era["history"]] == pytest.approx([0.25, 0.25], abs=1e-4)  # ERA's pin

    # MLflow: the suite's experiment, one finished run per trial, its history over environment steps
    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("tracked")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == sorted(LABELS)
    for run in runs:
        assert run.info.status == "FINISHED"
        want = expected(run.info.run_name)
        assert run.data.params["trial/trial_id"] == labels[run.info.run_name]
        for metric in ("score", "entropy", "step"):
            history = sorted(client.get_metric_history(run.info.run_id, metric), key=lambda m: m.step)
            assert [m.step for m in history] == want.step.tolist()
            assert [m.value for m in history] == pytest.approx(want[metric].astype(float).tolist(), rel=1e-9)
        assert not any(key.startswith("config/") for key in run.data.metrics)

    # W&B's logging actors and the wandb-core processes they started are gone
    assert _wait_gone(b"ray::_EraWandbLogger") == []
    assert _wait_gone(f"\0WANDB_DIR={out}\0".encode()) == []


# ------------------------------------------------------------------ a tracker failing mid-run
def test_a_tracker_failing_mid_run_stops_logging_and_the_results_are_complete(
        local_ray, tmp_path, tracker_env, monkeypatch, capsys):
    """MLflow told to refuse values over its limits (it truncates them by default) refuses the
    parameter holding the variant's 6004-character name when the trial starts. Without the guard,
    Tune would end the whole run on that error."""
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRUNCATE_LONG_VALUES", "false")
    long = "ppo-" + "x" * 6000  # an explicit (?) YAML key: a plain one may not exceed 1024 characters
    path = write_suite(tmp_path, f"""\
        name: untracked
        algorithms:
          ? {long}
          : {{algo: ppo, settings: {TINY_PPO}}}
        tasks: [gym:Pendulum-v1]
        seeds: 1
        budget: 64
        eval: {{every: 64, episodes: 1}}
        """)
    out, store = tmp_path / "results", (tmp_path / "mlruns").as_uri()
    assert main(["run", str(path), "--out", str(out), "--no-report", "--progress-every", "600",
                 "--mlflow", store]) == 0
    printed = capsys.readouterr().out
    warnings = [line for line in printed.splitlines() if "stopped logging" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: MLflow stopped logging (MlflowException")
    assert "the trials and their results go on" in warnings[0]
    results = pd.read_parquet(out / "results.parquet")
    assert results.step.tolist() == [64] and results.score.notna().all()
    assert (pd.read_parquet(out / "trials.parquet").status == "done").all()
    experiment = MlflowClient(tracking_uri=store).get_experiment_by_name("untracked")
    (run,) = MlflowClient(tracking_uri=store).search_runs([experiment.experiment_id])
    assert "score" not in run.data.metrics  # it logged nothing after the error


# ------------------------------------------------------------------ refused before Ray starts
def test_a_tracker_that_cannot_be_set_up_exits_2_before_anything_is_written(
        tmp_path, tracker_env, monkeypatch, capsys):
    path = write_suite(tmp_path, SUITE)
    out = tmp_path / "results"

    # online W&B without a key: no login here (an empty HOME, no netrc)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_MODE", "online")
    assert main(["run", str(path), "--out", str(out), "--wandb", "era-tests"]) == 2
    # (Ray's check may print wandb's deprecation warning of wandb.api first)
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "era run: error: --wandb: no W&B API key found: run wandb login, or set WANDB_API_KEY, or log "
        "offline with WANDB_MODE=offline (then upload with wandb sync)")
    assert not out.exists()

    # an MLflow store that cannot be created
    assert main(["run", str(path), "--out", str(out), "--mlflow", "file:///dev/null/mlruns"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("era run: error: --mlflow file:///dev/null/mlruns: ") and "./mlruns" in line
    assert not out.exists()

    # a missing package: the extra that installs both
    for module, option in (("wandb", "--wandb"), ("mlflow", "--mlflow")):
        with monkeypatch.context() as patch:
            patch.setitem(sys.modules, module, None)  # import fails as if it were not installed
            assert main(["run", str(path), "--out", str(out), option, "x"]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line == f"era run: error: {option} needs the {module} package: pip install 'era-harness[trackers]'"
        assert not out.exists()
