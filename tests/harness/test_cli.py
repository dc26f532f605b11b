"""The installed `era` console script: version, help, and bad input exit codes."""

import subprocess
import sys
from pathlib import Path

from harness import __version__


def _era(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_version_and_help():
    version = _era("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"era-harness {__version__}"
    usage = _era("--help")
    assert usage.returncode == 0 and "trial" in usage.stdout


def test_the_command_and_the_package_start_without_torch():
    """torch takes over a second to import: only commands that build or validate trials need it."""
    probe = ("import sys, harness.cli, adapters; "
             "assert adapters.__version__ and 'torch' not in sys.modules; "
             "adapters.TrialSpec; assert 'torch' not in sys.modules; "  # the trial contract is torch-free too
             "adapters.GaussianERA; assert 'torch' in sys.modules")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_unknown_algorithm_exits_2_and_lists_known(tmp_path):
    result = _era("trial", "--algo", "sac-typo", "--task", "gym:Pendulum-v1", "--steps", "10",
                  "--out", str(tmp_path / "t"))
    assert result.returncode == 2
    assert "unknown algorithm 'sac-typo'" in result.stderr and "sac-era" in result.stderr
    assert not (tmp_path / "t").exists()


def test_wrong_budget_unit_exits_2(tmp_path):
    result = _era("trial", "--algo", "resnet-era", "--task", "digits", "--steps", "10",
                  "--out", str(tmp_path / "t"))
    assert result.returncode == 2 and "--epochs" in result.stderr
    assert not (tmp_path / "t").exists()


def test_malformed_setting_exits_2(tmp_path):
    result = _era("trial", "--algo", "sac-era", "--task", "gym:Pendulum-v1", "--steps", "10",
                  "--set", "no_equals_sign", "--out", str(tmp_path / "t"))
    assert result.returncode == 2 and "KEY=VALUE" in result.stderr


def test_a_failed_trial_is_one_line_with_the_traceback_kept(tmp_path):
    """PPO with learning_rate 1e6 diverges inside torch with a message of many lines."""
    import pandas as pd

    result = _era("trial", "--algo", "ppo", "--task", "gym:Pendulum-v1", "--steps", "64", "--eval-every", "64",
                  "--set", "n_steps=64", "--set", "batch_size=32", "--set", "n_epochs=5",
                  "--set", "learning_rate=1.0e+6", "--set", "policy_kwargs={net_arch: [16]}",
                  "--out", str(tmp_path / "t"))
    assert result.returncode == 1, result.stderr
    trial = pd.read_parquet(tmp_path / "t" / "trials.parquet").iloc[0]
    assert trial.status == "failed" and "grad_fn=" in trial.traceback
    assert trial.error.startswith("TrainingDivergedError: trial ppo on gym:Pendulum-v1") and "\n" not in trial.error
    assert result.stderr.strip().splitlines()[-1].startswith(f"era trial: trial failed: {trial.error}")
    assert "grad_fn" not in result.stderr


def test_the_dashboard_is_for_the_local_ray_only(tmp_path):
    out = tmp_path / "results"
    smoke = Path(__file__).resolve().parents[2] / "suites" / "smoke.yaml"
    result = _era("run", str(smoke), "--out", str(out), "--dashboard", "--address", "127.0.0.1:1")
    assert result.returncode == 2 and not out.exists()
    assert "--dashboard starts the dashboard of the Ray started here" in result.stderr
    assert "--dashboard" in _era("run", "--help").stdout
