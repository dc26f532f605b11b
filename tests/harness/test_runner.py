"""`era run` with real Ray Tune (local, 2 CPUs) and real tiny SB3 trials.

In-process runs share the session's local Ray (tests/conftest.py); the kill-and-resume test runs
`era run` as a subprocess, kills it with SIGKILL by its PID, and stops any process it left, by PID
(the resumed run and the uninterrupted one it is compared with run in-process).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

import failing_envs
from conftest import ray_env
from processes import descendants, kill_when, stop_leftovers
from harness.cli import main
from harness.store import RESULT_COLUMNS

ERA = [sys.executable, "-m", "harness.cli"]
TINY_PPO = "{n_steps: 64, batch_size: 32, n_epochs: 1, policy_kwargs: {net_arch: [16]}}"


def write_suite(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def states_in(out: Path) -> dict[str, dict]:
    states = {}
    for path in (out / "trials").glob("*.json"):
        try:
            states[path.stem] = json.loads(path.read_text())
        except ValueError:  # pragma: no cover - files are replaced atomically
            continue
    return states


# ------------------------------------------------------------------ a 2 x 2 x 2 suite
def test_grid_suite_runs_to_completion_with_one_final_evaluation_per_trial(local_ray, tmp_path, capsys):
    path = write_suite(tmp_path, f"""\
        name: grid
        algorithms:
          ppo: {{settings: {TINY_PPO}}}
          ppo-era: {{settings: {TINY_PPO}}}
        tasks: [gym:Pendulum-v1, gym:Hopper-v5]
        seeds: 2
        budget: 64
        eval: {{every: 64, episodes: 1}}
        """)
    out = tmp_path / "results"
    assert main(["run", str(path), "--out", str(out), "--no-report", "--progress-every", "600"]) == 0
    printed = capsys.readouterr().out
    assert "8/8 done, 0 running, 0 failed, 0 pending" in printed

    results = pd.read_parquet(out / "results.parquet")
    assert list(results.columns[: len(RESULT_COLUMNS)]) == RESULT_COLUMNS
    assert len(results) == 8 and results["trial_id"].is_unique
    assert set(zip(results.algo, results.task, results.seed)) == {
        (a, t, s) for a in ("ppo", "ppo-era") for t in ("gym:Pendulum-v1", "gym:Hopper-v5") for s in (0, 1)}
    assert (results.step == 64).all() and (results.suite == "grid").all()
    assert (results["setting.n_steps"] == 64).all() and (results.base_algo == results.algo).all()
    # PPO-ERA pins the policy's entropy at entropy_per_dim * D (docs/era.md, section 1): it really ran in the workers
    era = results[results.algo == "ppo-era"]
    dims = era.task.map({"gym:Pendulum-v1": 1, "gym:Hopper-v5": 3})
    assert era.entropy.to_numpy() == pytest.approx(0.25 * dims.to_numpy(), abs=1e-4)
    # normalized scores: Hopper against its reference scores, Pendulum has none
    from harness.stats.normalize import reference

    hopper = results[results.task == "gym:Hopper-v5"]
    ref = reference(None, "gym:Hopper-v5")
    assert hopper.normalized_score.to_numpy() == pytest.approx((hopper.score.to_numpy() - ref.low) / (ref.high - ref.low))
    assert results[results.task == "gym:Pendulum-v1"].normalized_score.isna().all()

    trials = pd.read_parquet(out / "trials.parquet")
    assert len(trials) == 8 and (trials.status == "done").all() and trials.error.isna().all()
    assert trials.config_hash.str.fullmatch(r"[0-9a-f]{64}").all()
    assert trials.code_version.str.startswith("0.").all()
    assert (trials.device == "cpu").all()  # what each worker ran on: these trials asked for no GPU
    packages = json.loads(trials.packages.iloc[0])
    assert packages["ray"] == "2.60.0" and "torch" in packages and "stable-baselines3" in packages
    suite = json.loads((out / "suite.json").read_text())
    assert suite["name"] == "grid" and suite["seeds"] == [0, 1] and suite["trials"] == 8

    # TensorBoard logs of every trial, through Tune's own logger
    events = list((out / "tune").glob("grid-*/*/events.out.tfevents.*"))
    assert len({p.parent for p in events}) == 8

    # the same trial in-process gives the same evaluation (one thread, as in a 1-CPU Ray worker)
    import torch

    from adapters.trial import run_trial
    from harness.suite import load_and_expand

    _, expanded = load_and_expand(path)
    first = next(t for t in expanded if t.variant == "ppo-era" and t.spec.task == "gym:Pendulum-v1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        (record,) = list(run_trial(first.spec))
    finally:
        torch.set_num_threads(threads)
    row = results.set_index("trial_id").loc[first.trial_id]
    assert record.score == pytest.approx(row.score, rel=1e-6)

    # running it again runs nothing and keeps every row
    assert main(["run", str(path), "--out", str(out), "--no-report"]) == 0
    assert "all 8 trials of grid are done already" in capsys.readouterr().out
    assert pd.read_parquet(out / "results.parquet").equals(results)


# ------------------------------------------------------------------ a failing trial
def test_failing_trial_is_recorded_while_the_others_finish(local_ray, tmp_path, capsys):
    path = write_suite(tmp_path, f"""\
        name: failing
        algorithms:
          ppo: {{settings: {TINY_PPO}}}
          ppo-era: {{settings: {TINY_PPO}, tasks: [gym:Pendulum-v1]}}
        tasks: [gym:Pendulum-v1, gym:{failing_envs.ENV_ID}]
        seeds: [3]
        budget: 64
        eval: {{every: 64, episodes: 1}}
        max_failures: 1
        """)
    out = tmp_path / "results"
    assert main(["run", str(path), "--out", str(out), "--no-report", "--progress-every", "600"]) == 1
    captured = capsys.readouterr()
    assert f"failed: ppo gym:{failing_envs.ENV_ID} seed 3: RuntimeError: {failing_envs.MESSAGE}" in captured.err
    assert "retry  ppo gym:EraFailingStep-v0" in captured.out  # Tune retried it (max_failures 1)

    trials = pd.read_parquet(out / "trials.parquet").set_index("task", append=True)
    failed = trials.xs(f"gym:{failing_envs.ENV_ID}", level="task")
    assert (failed.status == "failed").all() and (failed.failures == 2).all()
    assert failed.error.str.contains(failing_envs.MESSAGE, regex=False).all()
    assert failed.traceback.str.contains("failing_envs.py", regex=False).all()
    assert failed.traceback.str.contains("in step").all() and not failed.traceback.str.contains("\x1b").any()
    done = trials.xs("gym:Pendulum-v1", level="task")
    assert (done.status == "done").all() and done.error.isna().all()
    assert len(failed) == 1 and len(done) == 2
    results = pd.read_parquet(out / "results.parquet")
    assert sorted(results.algo) == ["ppo", "ppo-era"] and (results.task == "gym:Pendulum-v1").all()


def test_a_config_error_inside_a_trial_is_not_retried(local_ray, tmp_path, capsys):
    """Validation does not build environments, so CartPole's discrete actions are found by the trial
    itself: a ConfigError, which no retry can fix. It fails once, without a traceback on the console."""
    path = write_suite(tmp_path, f"""\
        name: discrete
        algorithms: {{ppo: {{settings: {TINY_PPO}}}}}
        tasks: [gym:CartPole-v1, gym:Pendulum-v1]
        seeds: [0]
        budget: 64
        eval: {{every: 64, episodes: 1}}
        max_failures: 2
        """)
    out = tmp_path / "results"
    assert main(["run", str(path), "--out", str(out), "--no-report", "--progress-every", "600"]) == 1
    captured = capsys.readouterr()
    assert "retry" not in captured.out and "Traceback" not in captured.out + captured.err
    assert "FAILED ppo gym:CartPole-v1 seed 0: ConfigError: task 'gym:CartPole-v1' has a Discrete" in captured.out
    assert "failed: ppo gym:CartPole-v1 seed 0: ConfigError: task 'gym:CartPole-v1' has a Discrete" in captured.err
    trials = pd.read_parquet(out / "trials.parquet").set_index("task")
    assert trials.loc["gym:CartPole-v1", "status"] == "failed" and trials.loc["gym:CartPole-v1", "failures"] == 1
    assert "continuous (Box) actions" in trials.loc["gym:CartPole-v1", "error"]
    assert trials.loc["gym:Pendulum-v1", "status"] == "done"
    assert list(pd.read_parquet(out / "results.parquet").task) == ["gym:Pendulum-v1"]


# ------------------------------------------------------------------ bad input that needs Ray
def test_resources_ray_cannot_offer_exit_2_and_write_nothing(local_ray, tmp_path, capsys):
    path = write_suite(tmp_path, f"""\
        name: greedy
        algorithms: {{ppo: {{settings: {TINY_PPO}}}}}
        tasks: [gym:Pendulum-v1]
        seeds: 1
        budget: 64
        resources: {{cpus: 4}}
        """)
    out = tmp_path / "results"
    assert main(["run", str(path), "--out", str(out)]) == 2
    assert "asks for 4 CPU and 0 GPU, but the largest Ray node has 2 CPU" in capsys.readouterr().err
    assert not out.exists()


def test_gpus_on_a_local_ray_without_any_exit_2_at_once_naming_the_fix(local_ray, tmp_path, capsys):
    """Tune would keep such trials pending for ever; era run refuses them before writing anything."""
    if local_ray.cluster_resources().get("GPU", 0) > 0:
        pytest.skip("this machine's Ray has a GPU: the trials would run")
    path = write_suite(tmp_path, f"""\
        name: wants-gpus
        algorithms: {{ppo: {{settings: {TINY_PPO}}}}}
        tasks: [gym:Pendulum-v1]
        seeds: 4
        budget: 64
        resources: {{cpus: 0.5, gpus: 0.25}}
        """)
    out = tmp_path / "results"
    began = time.monotonic()
    assert main(["run", str(path), "--out", str(out)]) == 2
    assert time.monotonic() - began < 60  # no waiting for a GPU (the session's Ray is up already)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("era run: error: trial ppo gym:Pendulum-v1 seed 0 asks for "
                                                   "0.5 CPU and 0.25 GPU, but the largest Ray node has 2 CPU and 0 GPU")
    assert "found no GPU; set the suite's resources to gpus: 0" in lines[0] and "--address" in lines[0]
    assert not out.exists()


def test_results_dir_checks_and_missing_tracker_exit_2(tmp_path, capsys):
    path = write_suite(tmp_path, f"""\
        name: checks
        algorithms: {{ppo: {{settings: {TINY_PPO}}}}}
        tasks: [gym:Pendulum-v1]
        seeds: 1
        budget: 64
        """)
    out = tmp_path / "results"
    assert main(["run", str(path), "--out", str(out), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err and not out.exists()

    other = tmp_path / "other"
    other.mkdir()
    (other / "suite.json").write_text(json.dumps({"name": "someone-else"}))
    assert main(["run", str(path), "--out", str(other)]) == 2
    assert "holds the results of suite 'someone-else'" in capsys.readouterr().err

    try:
        import wandb  # noqa: F401
    except ImportError:
        assert main(["run", str(path), "--out", str(out), "--wandb", "proj"]) == 2
        assert "pip install 'era-harness[trackers]'" in capsys.readouterr().err and not out.exists()


# ------------------------------------------------------------------ SIGKILL, then --resume
def test_killed_run_resumes_and_completes_with_exactly_the_expected_rows(tmp_path, ray_temp_dir, local_ray, capsys):
    path = write_suite(tmp_path, """\
        name: killme
        algorithms:
          ppo: {settings: {n_steps: 128, batch_size: 64, n_epochs: 2}}
          ppo-era: {settings: {n_steps: 128, batch_size: 64, n_epochs: 2}}
        tasks: [gym:Pendulum-v1]
        seeds: 2
        budget: 1280
        eval: {every: 256, episodes: 1}
        """)
    out = tmp_path / "results"
    env = {**os.environ, **ray_env(ray_temp_dir)}
    command = [*ERA, "run", str(path), "--out", str(out), "--no-report", "--progress-every", "5"]
    with open(tmp_path / "first.log", "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        # kill once one trial is done and a later one has checkpointed part of its work

        def ready() -> bool:
            states = states_in(out)
            done = {k for k, s in states.items() if s["status"] == "done"}
            # at most 2 of 5 evaluations: the trial cannot finish in the moment before the kill
            partial = {k: s for k, s in states.items() if s["status"] == "running" and 0 < len(s["records"]) <= 2}
            return bool(done and partial)

        kill_when(process, ready, tmp_path / "first.log", "partial progress to kill")
    killed_at = states_in(out)
    done_before = {k for k, s in killed_at.items() if s["status"] == "done"}
    resumed = {k: int(s["records"][-1]["step"]) for k, s in killed_at.items() if s["status"] != "done" and s["records"]}
    assert done_before and resumed

    # the resumed run, as a user starts it after the crash: a new `era run ... --resume`. It runs
    # in-process on the session's local Ray (the killed run started its own Ray; starting a
    # third and fourth one here would only add their start-up time)
    capsys.readouterr()
    code = main([*command[len(ERA):], "--resume"])
    second = capsys.readouterr()
    assert code == 0, second.out + second.err
    assert f"{len(done_before)} done before" in second.out

    results = pd.read_parquet(out / "results.parquet")
    assert len(results) == 4 * 5
    assert not results.duplicated(["trial_id", "step"]).any()
    assert results.groupby("trial_id").step.apply(list).map(lambda s: s == [256, 512, 768, 1024, 1280]).all()
    trials = pd.read_parquet(out / "trials.parquet")
    assert (trials.status == "done").all()

    # no trial ran twice: the ones done before the kill are not in the second Tune experiment
    first_run, second_run = sorted((out / "tune").glob("killme-*"))
    second_ids = {p.name.rsplit("_", 1)[1] for p in second_run.iterdir() if p.is_dir()}
    assert not second_ids & done_before and set(resumed) <= second_ids
    # and a trial killed mid-way went on from its checkpoint: its first step there is the next one
    for trial_id, last_step in resumed.items():
        if last_step == 1280:  # killed between its last evaluation and Tune's "complete"
            continue
        (trial_dir,) = [p for p in second_run.iterdir() if p.name.endswith(trial_id)]
        steps = [json.loads(line)["step"] for line in (trial_dir / "result.json").read_text().splitlines()]
        assert steps[0] == last_step + 256

    # and every row, resumed or not, is the uninterrupted run's, bit for bit (in-process too)
    reference_out = tmp_path / "uninterrupted"
    code = main(["run", str(path), "--out", str(reference_out), "--no-report", "--progress-every", "600"])
    printed = capsys.readouterr()
    assert code == 0, printed.out + printed.err
    columns = ["trial_id", "step", "score", "entropy"]
    uninterrupted = pd.read_parquet(reference_out / "results.parquet")[columns].sort_values(columns[:2])
    pd.testing.assert_frame_equal(results[columns].sort_values(columns[:2]).reset_index(drop=True),
                                  uninterrupted.reset_index(drop=True), check_exact=True)

# ------------------------------------------------------------------ a multi-line error, shown as one line
def test_a_multi_line_error_is_shown_as_its_type_and_first_line_everywhere(local_ray, tmp_path, capsys):
    """PPO with learning_rate 1e6: torch's ValueError (a message of many lines, ending in
    ``grad_fn=...)``) becomes the adapter's TrainingDivergedError; its type and first line are what
    the console, trials.parquet, report.md and report.json show; the traceback keeps the rest."""
    path = write_suite(tmp_path, f"""\
        name: diverge
        algorithms:
          ppo: {{settings: {{n_steps: 64, batch_size: 32, n_epochs: 5, learning_rate: 1.0e+6,
                            policy_kwargs: {{net_arch: [16]}}}}}}
          ppo-era: {{settings: {TINY_PPO}}}
        tasks: [gym:Pendulum-v1]
        seeds: [0]
        budget: 64
        eval: {{every: 64, episodes: 1}}
        max_failures: 0
        """)
    out, report_dir = tmp_path / "results", tmp_path / "report"
    code = main(["run", str(path), "--out", str(out), "--report-dir", str(report_dir), "--progress-every", "600"])
    captured = capsys.readouterr()
    assert code == 1

    trials = pd.read_parquet(out / "trials.parquet").set_index("algo")
    error, traceback = trials.loc["ppo", "error"], trials.loc["ppo", "traceback"]
    # the message really was many lines: torch's tensor dump, ending in grad_fn=...
    assert "ValueError: Expected parameter" in traceback and "grad_fn=" in traceback
    assert error.startswith("TrainingDivergedError: trial ppo on gym:Pendulum-v1 (seed 0) diverged near step")
    assert "Expected parameter" in error and "\n" not in error and "grad_fn" not in error

    failed_lines = [line for line in captured.err.splitlines() if line.startswith("  failed: ")]
    assert failed_lines == [f"  failed: ppo gym:Pendulum-v1 seed 0: {error}"]
    assert f"FAILED ppo gym:Pendulum-v1 seed 0: {error} | " in captured.out

    report = json.loads((report_dir / "report.json").read_text())
    assert [r["error"] for r in report["failed_trials"]] == [error]
    row = next(line for line in (report_dir / "report.md").read_text().splitlines() if "`ppo`" in line and "|" in line
               and "TrainingDivergedError" in line)
    assert error[:200] in row and "grad_fn" not in row


# ------------------------------------------------------------------ a second run into one folder
def test_a_second_run_into_a_locked_folder_refuses_before_starting_ray(tmp_path):
    import tempfile
    import shutil

    from harness.run.runner import _exclusive

    path = write_suite(tmp_path, f"""\
        name: locked
        algorithms: {{ppo: {{settings: {TINY_PPO}}}}}
        tasks: [gym:Pendulum-v1]
        seeds: 1
        budget: 64
        """)
    out = tmp_path / "results"
    ray_dir = tempfile.mkdtemp(prefix="era-ray-", dir="/tmp")  # short: unix socket paths are limited
    try:
        env = {**os.environ, **ray_env(ray_dir)}
        with _exclusive(out):  # the first run holds the folder
            second = subprocess.run([*ERA, "run", str(path), "--out", str(out), "--no-report"],
                                    env=env, capture_output=True, text=True, timeout=120)
            assert [p.name for p in out.iterdir()] == [".era-run.lock"]  # the second one wrote nothing
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"another era run (pid {os.getpid()}) is writing to {out}" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
        assert not list(Path(ray_dir).rglob("session_*")), "the refused run started Ray"
        assert "local Ray" not in second.stdout
        assert not out.exists()  # the first one created the folder, wrote nothing, and removed it
    finally:
        shutil.rmtree(ray_dir, ignore_errors=True)


# ------------------------------------------------------------------ an unknown task id
def test_an_unknown_gymnasium_id_is_one_short_line_with_close_matches(tmp_path, capsys):
    path = write_suite(tmp_path, f"""\
        name: typo
        algorithms: {{ppo: {{settings: {TINY_PPO}}}}}
        tasks: [gym:Pendulm-v1]
        seeds: 1
        budget: 64
        """)
    assert main(["run", str(path), "--out", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and len(err) < 400, err
    assert "did you mean gym:Pendulum-v1" in err and "pprint_registry" in err
    assert "CartPole-v1" not in err  # not every registered id
    assert not (tmp_path / "results").exists()


# ------------------------------------------------------------------ Ctrl-C
def test_ctrl_c_exits_130_with_how_to_resume_and_nothing_failed(tmp_path, ray_temp_dir):
    path = write_suite(tmp_path, f"""\
        name: ctrlc
        algorithms: {{ppo: {{settings: {TINY_PPO}}}}}
        tasks: [gym:Pendulum-v1]
        seeds: 1
        budget: 102400  # 1600 rollouts of 64: never reached, Ctrl-C comes first
        eval: {{every: 256, episodes: 1}}
        """)
    out = tmp_path / "results"
    env = {**os.environ, **ray_env(ray_temp_dir)}
    command = [*ERA, "run", str(path), "--out", str(out), "--progress-every", "600"]
    with open(tmp_path / "run.log", "w") as log:
        # its own session: the SIGINT below reaches this PID only
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + 90
        while not any(s["status"] == "running" for s in states_in(out).values()):
            assert process.poll() is None, (tmp_path / "run.log").read_text()
            assert time.monotonic() < deadline, "the trial did not start in 90 s"
            time.sleep(0.1)
        processes = descendants(process.pid)
        os.kill(process.pid, signal.SIGINT)
        try:
            code = process.wait(timeout=60)
        finally:
            if process.poll() is None:  # pragma: no cover - it did not stop: the test fails below
                process.kill()
                process.wait(timeout=30)
            stop_leftovers(processes)
    text = (tmp_path / "run.log").read_text()
    assert code == 130, text
    assert f"interrupted: 1 trial(s) unfinished, none failed; resume with: era run {path} --out {out.resolve()} --resume" in text
    trials = pd.read_parquet(out / "trials.parquet")
    assert (trials.status == "pending").all() and trials.error.isna().all()
