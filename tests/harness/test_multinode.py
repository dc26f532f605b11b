"""`era submit / status / logs / stop / report` against a real Ray cluster started here, and a suite
that survives losing a worker node mid-run (tests/local_cluster.py: `ray start` processes on
127.0.0.1 with token authentication, stopped by PID afterwards).

The CLI runs as subprocesses, as a user runs it, with the cluster's token in its environment.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from harness.cli import main
from local_cluster import LocalCluster

ROOT = Path(__file__).resolve().parents[2]
ERA = [sys.executable, "-m", "harness.cli"]
TINY_PPO = "{n_steps: 64, batch_size: 32, n_epochs: 1, policy_kwargs: {net_arch: [16]}}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head node with the Jobs server (1 CPU); tests add worker nodes. Torn down by PID, and the
    teardown checks that nothing it started is left."""
    local = LocalCluster(tmp_path_factory.mktemp("cluster"))
    try:
        local.start_head(num_cpus=1)
        yield local
    finally:
        local.shutdown()
        left = local.own_processes()
        shutil.rmtree(local.temp_dir, ignore_errors=True)
        assert not left, f"processes left behind: {[p.pid for p in left]}"


def era(cluster: LocalCluster, *args: str, token: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*ERA, *args], env=cluster.env(with_token=token), cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def write_suite(folder: Path, name: str, budget: int, every: int, seeds: int = 1, **extra: str) -> Path:
    path = folder / f"{name}.yaml"
    lines = "".join(f"{k}: {v}\n" for k, v in extra.items())
    path.write_text(textwrap.dedent(f"""\
        name: {name}
        algorithms:
          ppo: {{settings: {TINY_PPO}}}
          ppo-era: {{settings: {TINY_PPO}}}
        tasks: [gym:Pendulum-v1]
        seeds: {seeds}
        budget: {budget}
        eval: {{every: {every}, episodes: 1}}
        """) + lines)
    return path


def job_id_of(stdout: str) -> str:
    first = stdout.splitlines()[0]
    assert " as job " in first, stdout
    return first.rsplit(" as job ", 1)[1].strip()


def wait_for(condition, timeout_s: float, what: str, poll_s: float = 0.25):
    deadline = time.monotonic() + timeout_s
    while not (found := condition()):
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        time.sleep(poll_s)
    return found


# ------------------------------------------------------------------ the job commands on a local head
@pytest.fixture
def as_client(cluster, monkeypatch):
    """This process as a client of the cluster (in-process `era ...` calls): its token exported."""
    for name in ("RAY_ADDRESS", "RAY_JOBS_ADDRESS", "RAY_AUTH_TOKEN_PATH", "ERA_STORAGE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN", cluster.token)
    return cluster


def test_submit_status_logs_report_and_stop_against_a_local_head(as_client, tmp_path, capsys):
    cluster = as_client
    address = ["--address", cluster.jobs_address]
    store = tmp_path / "store"
    # a job that waits for a GPU this cluster will never have: running, but using no CPU
    waiting = write_suite(tmp_path, "gpuwait", budget=64, every=64, resources="{cpus: 1, gpus: 1}")
    assert main(["submit", str(waiting), *address, "--storage", str(store)]) == 0
    waiting_id = job_id_of(capsys.readouterr().out)

    # object-storage flavour (file:// goes through the same pyarrow code as s3://): Tune writes its
    # checkpoints to the URI, the results folder lives on the head and is synced there at the end
    suite = write_suite(tmp_path, "tiny", budget=128, every=64)
    started = time.monotonic()
    code = main(["submit", str(suite), *address, "--storage", f"file://{store}", "--out", str(tmp_path / "on-head"),
                 "--wait"])
    submit_s = time.monotonic() - started
    out = capsys.readouterr().out
    assert code == 0, out
    job_id = job_id_of(out)
    assert f"era logs {job_id} --follow --address {cluster.jobs_address}" in out
    assert "2/2 trials done, 0 failed" in out and f"job {job_id}: SUCCEEDED" in out
    print(f"era submit --wait of 2 tiny trials: {submit_s:.1f} s", file=sys.stderr)

    published = store / "tiny"
    results = pd.read_parquet(published / "results.parquet")
    assert sorted(zip(results.algo, results.step)) == [("ppo", 64), ("ppo", 128), ("ppo-era", 64), ("ppo-era", 128)]
    assert (pd.read_parquet(published / "trials.parquet").status == "done").all()
    assert (published / "report" / "report.md").is_file()
    assert list((published / "tune").glob("tiny-*/*/checkpoint_*"))  # Tune wrote to the URI itself
    assert not (published / ".era-run.lock").exists()

    # the address from the environment, as Ray users set it
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_ADDRESS", cluster.jobs_address)
        assert main(["status", job_id]) == 0
        out = capsys.readouterr().out
        assert f"job {job_id}: SUCCEEDED" in out and f"results: file://{published}" in out
        assert main(["status"]) == 0
        listed = capsys.readouterr().out
    assert f"{job_id}  SUCCEEDED" in listed and f"{waiting_id}  RUNNING" in listed

    assert main(["logs", job_id, *address]) == 0
    logs = capsys.readouterr().out
    assert "2/2 trials done" in logs and "copied" in logs  # the run, then era sync to storage

    # the report, from "another machine": only the storage URI
    report_dir = tmp_path / "pulled-report"
    assert main(["report", f"file://{published}", "--out", str(report_dir), "--reps", "200"]) == 0
    assert "ppo-era" in (report_dir / "report.md").read_text()

    # without the token the cluster refuses, and the error says what to export
    refused = era(cluster, "status", job_id, *address, token=False)
    assert refused.returncode == 2 and "RAY_AUTH_TOKEN" in refused.stderr and "Traceback" not in refused.stderr
    wrong = subprocess.run([*ERA, "status", job_id, *address], cwd=ROOT, capture_output=True, text=True,
                           env={**cluster.env(with_token=False), "RAY_AUTH_TOKEN": "not-the-token"})
    assert wrong.returncode == 2 and "refused the token" in wrong.stderr

    # the waiting job: it said why it waits; stop it
    assert main(["logs", waiting_id, *address]) == 0
    assert "it will wait until the cluster scales up" in capsys.readouterr().out
    assert main(["stop", waiting_id, *address]) == 0
    assert f"job {waiting_id}: STOPPED" in capsys.readouterr().out
    assert main(["logs", "no-such-job", *address]) == 2
    assert "no job 'no-such-job'" in capsys.readouterr().err


# ------------------------------------------------------------------ losing a node mid-run
def _states(out: Path) -> list[dict]:
    states = []
    for path in (out / "trials").glob("*.json"):
        try:
            states.append(json.loads(path.read_text()))
        except ValueError:  # pragma: no cover - files are replaced atomically
            continue
    return states


def test_suite_survives_losing_a_worker_node(cluster, tmp_path):
    from harness.cluster import jobs

    worker = cluster.add_worker(num_cpus=1)
    cluster.wait_for_nodes(2)
    # two trials, one per node (1 CPU each); each evaluates (and checkpoints) every 512 steps
    suite = write_suite(tmp_path, "lossy", budget=8192, every=512, max_failures=2)
    store = tmp_path / "store"
    started = time.monotonic()
    submitted = era(cluster, "submit", str(suite), "--address", cluster.jobs_address, "--storage", str(store))
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    job_id = job_id_of(submitted.stdout)
    out = store / "lossy"

    client = _client(cluster)

    def both_running_with_a_checkpoint() -> bool:
        if str(client.get_job_status(job_id)) in jobs.TERMINAL:
            pytest.fail("the job ended before the node could be lost:\n" + client.get_job_logs(job_id))
        states = _states(out)
        if any(s["status"] == "done" for s in states):
            pytest.fail("a trial finished before both had checkpointed: make the trials longer")
        return (len(states) == 2 and all(s["status"] == "running" and s["records"] for s in states)
                and any("ImplicitFunc" in " ".join(p.cmdline()) for p in worker.processes()[1:]))

    wait_for(both_running_with_a_checkpoint, 180, "both trials to run and checkpoint")
    lost_at = time.monotonic() - started
    killed = cluster.kill_node(worker)  # the raylet, the trial's worker process, the node's agents
    assert killed and worker.raylet() is None

    info = jobs.wait(client, cluster.jobs_address, job_id, timeout_s=240)
    total_s = time.monotonic() - started
    logs = client.get_job_logs(job_id)
    assert str(info.status) == "SUCCEEDED", logs
    print(f"lost the worker node at {lost_at:.1f} s; the suite finished at {total_s:.1f} s", file=sys.stderr)

    results = pd.read_parquet(out / "results.parquet")
    assert not results.duplicated(["trial_id", "step"]).any()
    expected = list(range(512, 8192 + 1, 512))
    assert results.groupby("trial_id").step.apply(list).map(lambda steps: steps == expected).all()
    assert results.trial_id.nunique() == 2 and (results.step == 8192).sum() == 2  # each final result once
    trials = pd.read_parquet(out / "trials.parquet")
    assert (trials.status == "done").all()
    assert trials.failures.sum() >= 1, logs  # the lost node's trial failed and Tune retried it
    assert "retry" in logs


def _client(cluster: LocalCluster):
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(cluster.jobs_address, headers={"Authorization": f"Bearer {cluster.token}"})
