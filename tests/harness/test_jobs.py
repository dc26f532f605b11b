"""era submit / status / logs / stop / sync without a cluster: addresses, tokens, what a job runs,
what it ships, storage, bad input, and GPU trials' resources as Tune places them.

The commands against a real cluster are in tests/harness/test_multinode.py.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from harness.cluster import jobs, storage
from harness.cli import main
from harness.errors import ClusterError
from harness.suite import load_and_expand

TINY_PPO = "{n_steps: 64, batch_size: 32, n_epochs: 1, policy_kwargs: {net_arch: [16]}}"


def write_suite(folder: Path, text: str, name: str = "suite.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def tiny_suite(tmp_path) -> Path:
    return write_suite(tmp_path, f"""\
        name: tiny
        algorithms: {{ppo: {{settings: {TINY_PPO}}}}}
        tasks: [gym:Pendulum-v1]
        seeds: 2
        budget: 64
        """)


@pytest.fixture
def dead_address() -> str:
    """An http address where nothing listens (a port just bound and released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def no_cluster_env(monkeypatch):
    for name in (*jobs.ADDRESS_VARIABLES, "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "ERA_STORAGE"):
        monkeypatch.delenv(name, raising=False)


# ------------------------------------------------------------------ address and token
def test_address_comes_from_the_flag_then_ray_jobs_address_then_ray_address():
    env = {"RAY_ADDRESS": "http://b:8265", "RAY_JOBS_ADDRESS": "http://a:8265"}
    assert jobs.resolve_address("http://flag:8265/", env) == "http://flag:8265"
    assert jobs.resolve_address(None, env) == "http://a:8265"
    assert jobs.resolve_address(None, {"RAY_ADDRESS": "10.0.0.5:8265"}) == "http://10.0.0.5:8265"
    assert jobs.resolve_address("auto", {}) == "auto"
    with pytest.raises(ClusterError, match="pass --address http://HEAD:8265"):
        jobs.resolve_address(None, {})


def test_token_header_from_the_variable_or_the_file(tmp_path):
    assert jobs.auth_headers({}) == {}
    assert jobs.auth_headers({"RAY_AUTH_TOKEN": " abc \n"}) == {"Authorization": "Bearer abc"}
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    assert jobs.auth_headers({"RAY_AUTH_TOKEN_PATH": str(token_file)}) == {"Authorization": "Bearer from-file"}
    with pytest.raises(ClusterError, match="RAY_AUTH_TOKEN_PATH=.*cannot be read"):
        jobs.auth_headers({"RAY_AUTH_TOKEN_PATH": str(tmp_path / "missing")})


# ------------------------------------------------------------------ bad input: exit 2, nothing sent
def test_nothing_listening_is_a_clear_error_for_every_command(tiny_suite, dead_address, no_cluster_env, capsys):
    started = time.monotonic()
    for argv in (["submit", str(tiny_suite)], ["status", "some-job"], ["logs", "some-job", "--follow"],
                 ["stop", "some-job"]):
        assert main([*argv, "--address", dead_address]) == 2
        err = capsys.readouterr().err
        assert f"nothing answers at {dead_address} (Connection refused)" in err, err
        assert "ray start --head" in err and "Traceback" not in err
    assert time.monotonic() - started < 30
    # no address at all: say where it comes from
    assert main(["status"]) == 2
    assert "pass --address http://HEAD:8265" in capsys.readouterr().err


def test_something_else_on_the_port_is_not_taken_for_a_dashboard(no_cluster_env, capsys):
    import http.server
    import threading

    # a web server that is not Ray's: every path is 404 (e.g. the GCS port, another service)
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert main(["status", "--address", f"127.0.0.1:{server.server_port}"]) == 2
    finally:
        server.shutdown()
        server.server_close()
    assert "answers, but not as a Ray dashboard" in capsys.readouterr().err


def test_a_bad_suite_is_rejected_before_anything_is_submitted(tmp_path, dead_address, no_cluster_env, capsys):
    bad = write_suite(tmp_path, """\
        name: bad
        algorithms: [ppo-eraa]
        tasks: [gym:Pendulum-v1]
        seeds: 1
        budget: 64
        """)
    assert main(["submit", str(bad), "--address", dead_address]) == 2
    err = capsys.readouterr().err
    assert "unknown algorithm 'ppo-eraa' (did you mean 'ppo-era'?)" in err
    assert "nothing answers" not in err  # it never tried the cluster


@pytest.mark.parametrize("flags, message", [
    (["--storage", "ftp://host/era"], "storage scheme 'ftp' is not supported"),
    (["--storage", "s3:/bucket/era"], "is not a URI: write SCHEME://BUCKET/PATH"),
    (["--storage", "s3://"], "names no bucket or folder"),
    (["--out", "relative/dir"], "--out 'relative/dir' is relative"),
    (["--max-concurrent", "0"], "--max-concurrent must be at least 1"),
])
def test_bad_storage_and_options_exit_2_before_connecting(tiny_suite, dead_address, no_cluster_env, capsys,
                                                          flags, message):
    assert main(["submit", str(tiny_suite), "--address", dead_address, *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "nothing answers" not in err


# ------------------------------------------------------------------ what the job runs
def test_a_shared_path_holds_results_tune_and_report(tiny_suite, tmp_path):
    suite, _ = load_and_expand(tiny_suite)
    shared = tmp_path / "shared"
    plan = jobs.plan_submission(suite, "era-job/suite.yaml", str(shared), max_concurrent=3, submission_id="j1")
    assert plan.entrypoint == (f"era run era-job/suite.yaml --address auto --out {shared}/tiny "
                               f"--report-dir {shared}/tiny/report --max-concurrent 3")
    assert plan.results == f"{shared}/tiny" and plan.report == f"{shared}/tiny/report"
    assert plan.submission_id == "j1" and plan.metadata["era_results"] == f"{shared}/tiny"
    assert plan.env_vars["ERA_CODE_SHIPPED"] == "1" and "RAY_OVERRIDE_JOB_RUNTIME_ENV" not in plan.env_vars
    # no storage: the head's home; the head's shell expands $HOME
    default = jobs.plan_submission(suite, "era-job/suite.yaml", None)
    assert '--out "$HOME"/era-results/tiny' in default.entrypoint
    assert default.submission_id.startswith("era-tiny-")


def test_object_storage_job_syncs_its_results_and_keeps_the_run_exit_code(tiny_suite, tmp_path):
    """Run the job's entrypoint with a stand-in `era` that records its calls and exits as told."""
    suite, _ = load_and_expand(tiny_suite)
    plan = jobs.plan_submission(suite, "era-job/suite.yaml", "s3://bucket/era/", submission_id="j2")
    assert plan.results == "s3://bucket/era/tiny" and plan.report == "s3://bucket/era/tiny/report"
    assert "--storage s3://bucket/era/tiny/tune" in plan.entrypoint
    assert 'era sync "$HOME"/era-results/tiny s3://bucket/era/tiny' in plan.entrypoint

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "era"
    fake.write_text('#!/bin/sh\necho "$@" >> "$CALLS"\n'
                    'case "$1" in run) exit "$RUN_CODE";; sync) exit "$SYNC_CODE";; esac\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)

    def run(run_code: int, sync_code: int) -> tuple[int, list[str]]:
        calls = tmp_path / f"calls-{run_code}-{sync_code}"
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path / "home"),
               "CALLS": str(calls), "RUN_CODE": str(run_code), "SYNC_CODE": str(sync_code)}
        done = subprocess.run(["/bin/sh", "-c", plan.entrypoint], env=env)
        return done.returncode, calls.read_text().splitlines()

    code, calls = run(0, 0)
    assert code == 0 and calls[0].startswith("run era-job/suite.yaml --address auto")
    assert calls[1] == f"sync {tmp_path}/home/era-results/tiny s3://bucket/era/tiny"
    assert run(1, 0)[0] == 1  # a failed trial: synced anyway, exit 1
    code, calls = run(2, 0)
    assert code == 2 and len(calls) == 2
    assert run(0, 3)[0] == 1  # the copy failed: the job fails
    assert run(1, 3)[0] == 1


def test_the_job_ships_the_code_and_the_suite_only(tiny_suite, tmp_path):
    staged = tmp_path / "staged"
    staged.mkdir()
    suite_file = jobs.stage_working_dir(tiny_suite, staged)
    assert suite_file == "era-job/suite.yaml"
    assert (staged / suite_file).read_text() == tiny_suite.read_text()
    assert (staged / "harness" / "run" / "runner.py").is_file() and (staged / "adapters" / "era.py").is_file()
    assert (staged / "harness" / "data" / "gym_mujoco.yaml").is_file()
    assert (staged / "pyproject.toml").is_file() and (staged / "suites" / "smoke.yaml").is_file()
    names = {p.name for p in staged.rglob("*")}
    assert not names & {".venv", ".git", "results", "runs", "reports", "tests", "__pycache__"}
    size = sum(p.stat().st_size for p in staged.rglob("*") if p.is_file())
    assert size < 5_000_000, f"the job's working_dir is {size} bytes"


# ------------------------------------------------------------------ storage
def test_storage_locations_are_normalized():
    assert storage.normalize("s3://bucket/era/") == "s3://bucket/era"
    assert storage.normalize("GS://b/x") == "gs://b/x"
    assert storage.normalize("~/x") == os.path.expanduser("~/x")
    assert storage.normalize("rel") == os.path.abspath("rel")
    assert storage.join("s3://b/era", "smoke", "tune") == "s3://b/era/smoke/tune"
    assert storage.is_uri("file:///tmp/x") and not storage.is_uri("/tmp/x")


def _results_folder(path: Path) -> Path:
    (path / "trials").mkdir(parents=True)
    (path / "tune" / "exp").mkdir(parents=True)
    pd.DataFrame({"trial_id": ["a"], "step": [1], "score": [2.0]}).to_parquet(path / "results.parquet")
    pd.DataFrame({"trial_id": ["a"], "status": ["done"]}).to_parquet(path / "trials.parquet")
    (path / "suite.json").write_text('{"name": "x"}')
    (path / "trials" / "a.json").write_text("{}")
    (path / "tune" / "exp" / "checkpoint").write_text("big")
    (path / ".era-run.lock").write_text("pid 1")
    return path


def test_sync_copies_a_results_folder_both_ways_without_checkpoints(tmp_path, capsys):
    source = _results_folder(tmp_path / "head")
    remote = f"file://{tmp_path}/bucket/era/x"
    assert main(["sync", str(source), remote]) == 0
    assert "copied 4 files" in capsys.readouterr().out
    copied = {p.relative_to(tmp_path / "bucket/era/x").as_posix() for p in (tmp_path / "bucket/era/x").rglob("*")
              if p.is_file()}
    assert copied == {"results.parquet", "trials.parquet", "suite.json", "trials/a.json"}

    pulled = tmp_path / "pulled"
    assert main(["sync", remote, str(pulled), "--with-checkpoints"]) == 0
    assert pd.read_parquet(pulled / "results.parquet").equals(pd.read_parquet(source / "results.parquet"))
    assert main(["sync", str(source), str(tmp_path / "all"), "--with-checkpoints"]) == 0
    assert (tmp_path / "all" / "tune" / "exp" / "checkpoint").read_text() == "big"
    assert not list((tmp_path / "all").rglob(".*"))  # no lock, no temp files
    capsys.readouterr()
    assert main(["sync", f"file://{tmp_path}/nothing", str(pulled)]) == 2
    assert "nothing at" in capsys.readouterr().err


def test_results_folder_fetches_the_tables_of_a_uri(tmp_path):
    _results_folder(tmp_path / "bucket" / "x")
    with storage.results_folder(f"file://{tmp_path}/bucket/x") as local:
        assert sorted(p.name for p in local.iterdir()) == ["results.parquet", "suite.json", "trials.parquet"]
        assert local != tmp_path / "bucket" / "x"
    assert not local.exists()
    with storage.results_folder(tmp_path / "bucket" / "x") as same:  # a path is used in place
        assert same == tmp_path / "bucket" / "x"
    (tmp_path / "empty").mkdir()
    with pytest.raises(storage.ConfigError, match="holds none of results.parquet"):
        with storage.results_folder(f"file://{tmp_path}/empty"):
            pass


# ------------------------------------------------------------------ GPU trials reach Tune's placement
def test_fractional_gpu_trials_validate_and_reach_tunes_placement_groups(tmp_path):
    """A 0.25-GPU trial asks Tune for exactly that (four share a GPU); on this GPU-less machine it
    could not be scheduled, so this checks the placement group Tune builds, not a run. The adapters
    pick CUDA inside such a trial (select_device("auto"): Ray sets CUDA_VISIBLE_DEVICES)."""
    from ray.tune.experiment import Experiment
    from ray.tune.registry import register_trainable
    from ray.tune.search import BasicVariantGenerator

    from harness.run.runner import RunOptions, _tuner
    from harness.store import TrialState

    path = write_suite(tmp_path, f"""\
        name: gpus
        algorithms:
          ppo: {{settings: {TINY_PPO}, tasks: [gym:Pendulum-v1]}}
          resnet: {{settings: {{architecture: resnet18}}, tasks: [digits]}}
        tasks:
          gym:Pendulum-v1: {{resources: {{cpus: 1, gpus: 0.25}}}}
          digits: {{resources: {{cpus: 2, gpus: 0.5}}}}
        seeds: 2
        budget: {{steps: 64, epochs: 1}}
        """)
    suite, trials = load_and_expand(path)
    assert {t.spec.device for t in trials} == {"auto"}
    states = {t.trial_id: TrialState(t.trial_id) for t in trials}
    tuner = _tuner(suite, trials, states, RunOptions(out=tmp_path / "out"), "gpus-run", [])
    # what Tuner.fit() does with it: register the trainable, expand the grid, ask each trial's resources
    register_trainable("era_gpu_probe", tuner._local_tuner._converted_trainable)
    generator = BasicVariantGenerator()
    generator.add_configurations([Experiment("gpus-run", "era_gpu_probe", config=tuner._local_tuner._param_space,
                                             storage_path=str(tmp_path / "tune"))])
    placed = {}
    while (trial := generator.next_trial()) is not None:
        trial.create_placement_group_factory()
        config = trial.config["trial"]
        placed[(config["variant"], config["spec"]["seed"])] = trial.placement_group_factory.required_resources
    assert placed == {
        ("ppo", 0): {"CPU": 1.0, "GPU": 0.25}, ("ppo", 1): {"CPU": 1.0, "GPU": 0.25},
        ("resnet", 0): {"CPU": 2.0, "GPU": 0.5}, ("resnet", 1): {"CPU": 2.0, "GPU": 0.5},
    }


@pytest.mark.parametrize("gpus, message", [
    ("1.5", "Ray needs whole numbers above 1"),
    ("-0.5", "expected a number >= 0"),
])
def test_impossible_gpu_requests_are_suite_errors(tmp_path, dead_address, no_cluster_env, capsys, gpus, message):
    path = write_suite(tmp_path, f"""\
        name: gpus
        algorithms: {{ppo: {{settings: {TINY_PPO}}}}}
        tasks: [gym:Pendulum-v1]
        seeds: 1
        budget: 64
        resources: {{cpus: 1, gpus: {gpus}}}
        """)
    assert main(["submit", str(path), "--address", dead_address]) == 2
    assert message in capsys.readouterr().err
