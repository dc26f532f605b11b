"""TD-MPC2 settings, budgets and a missing install: refused before anything runs, with the fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.errors import ConfigError, MissingDependencyError, SettingError
from adapters.tdmpc2 import describe, validate
from adapters.tdmpc2.settings import ERA_DEFAULTS, UPSTREAM_SETTINGS, resolve_settings
from adapters.tdmpc2.upstream import check_available, upstream_dir
from adapters.trial import TrialSpec

ROOT = Path(__file__).resolve().parents[3]
try:
    check_available()
    HAVE_TDMPC2 = True
except MissingDependencyError:
    HAVE_TDMPC2 = False
needs_tdmpc2 = pytest.mark.skipif(not HAVE_TDMPC2, reason="TD-MPC2 is not installed (scripts/install_tdmpc2.sh, or set ERA_TDMPC2_DIR)")


def _spec(algo: str = "tdmpc2-era", budget: int = 1000, every: int | None = 500, **settings) -> TrialSpec:
    return TrialSpec(algo, "dmc:cartpole-swingup", 0, budget, eval_every=every, eval_episodes=1, settings=settings)


def test_defaults_are_tdmpc2s_and_eras():
    plain, era = resolve_settings(_spec("tdmpc2")), resolve_settings(_spec())
    assert plain.upstream == {} and plain.era is None and plain.compile is None and plain.episode_length == 500
    assert era.era == ERA_DEFAULTS


@pytest.mark.parametrize("settings, fragment", [
    ({"horizon": 0}, "horizon of tdmpc2-era must be an integer >= 1"),
    ({"lr": "fast"}, "lr of tdmpc2-era must be a number > 0"),
    ({"mpc": 1}, "mpc of tdmpc2-era must be true or false"),
    ({"model_size": 7}, "model_size of tdmpc2-era must be one of 1, 5, 19, 48, 317"),
    ({"num_pi_trajs": 600}, "num_pi_trajs of tdmpc2-era (600) must be below num_samples (512)"),
    ({"latent_dim": 20}, "must be a multiple of simnorm_dim (8)"),
    ({"entropy_coef": 1e-4}, "ERA replaces TD-MPC2's entropy bonus"),
    ({"log_std_max": 2.0}, "-10 < log_std_min < log_std_max < 2"),
    ({"delta": "constant"}, "delta of tdmpc2-era must be 'auto' or a number >= 0"),
    ({"horizn": 3}, "unknown setting 'horizn' for tdmpc2-era: allowed settings are"),
])
def test_bad_settings_name_the_setting_and_what_it_may_be(settings, fragment):
    with pytest.raises(SettingError) as error:
        resolve_settings(_spec(**settings))
    assert fragment in str(error.value)
    assert error.value.setting in settings


def test_plain_tdmpc2_takes_its_entropy_bonus_and_log_std_bounds():
    resolved = resolve_settings(_spec("tdmpc2", entropy_coef=0.0, log_std_min=-5.0, log_std_max=1.0))
    assert resolved.upstream == {"entropy_coef": 0.0, "log_std_min": -5.0, "log_std_max": 1.0}


@needs_tdmpc2
@pytest.mark.parametrize("budget, every, fragment", [
    (1200, 500, "its budget must be a multiple of 500, got 1200: use 1000 or 1500"),
    (1000, 250, "its eval.every must be a multiple of 500, got 250: use 500"),
])
def test_budgets_are_whole_episodes(budget, every, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        validate(_spec(budget=budget, every=every))


@needs_tdmpc2
def test_tasks_are_dmc_and_seed_steps_cover_an_episode():
    with pytest.raises(ConfigError, match="runs DeepMind Control tasks"):
        validate(TrialSpec("tdmpc2", "gym:Hopper-v5", 0, 1000, eval_every=500))
    with pytest.raises(ConfigError, match="dmc:cartpole-swingup"):
        validate(TrialSpec("tdmpc2", "dmc:cartpole-swingpu", 0, 1000, eval_every=500))
    with pytest.raises(ConfigError, match=r"seed_steps of tdmpc2-era \(100\) must be at least one episode"):
        validate(_spec(seed_steps=100))
    validate(_spec(seed_steps=500))


@needs_tdmpc2
def test_every_setting_is_a_key_of_tdmpc2s_own_config():
    """A key renamed upstream would otherwise be silently ignored by the config it builds."""
    from omegaconf import OmegaConf

    keys = set(OmegaConf.load(upstream_dir() / "config.yaml"))
    assert set(UPSTREAM_SETTINGS) - keys == set()


def test_describe_names_the_model_planning_era_and_protocol():
    text = describe(_spec(model_size=1, num_samples=64))
    assert text.startswith("TD-MPC2 1M model; MPPI 64 samples x 6 iterations, horizon 3; ERA entropy_per_dim 0.25")
    assert "action repeat 2" in text and "episodes of 500 agent steps" in text


def test_missing_tdmpc2_is_one_line_with_the_install_commands(tmp_path, monkeypatch):
    monkeypatch.setenv("ERA_TDMPC2_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(MissingDependencyError) as error:
        check_available()
    message = str(error.value)
    assert "\n" not in message and "TD-MPC2 is not installed" in message
    assert "bash scripts/install_tdmpc2.sh" in message and "pip install 'era-harness[tdmpc2]'" in message
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.setenv("ERA_TDMPC2_DIR", str(tmp_path / "elsewhere"))
    with pytest.raises(MissingDependencyError, match="is not TD-MPC2's tdmpc2/ source folder"):
        check_available()


def _era_list(suite: Path, tdmpc2_dir: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ERA_TDMPC2_DIR": tdmpc2_dir}
    return subprocess.run([sys.executable, "-m", "harness.cli", "list", str(suite)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)


def test_era_list_without_tdmpc2_exits_2_with_the_install_commands(tmp_path):
    done = _era_list(ROOT / "suites" / "dmc-tdmpc2.yaml", str(tmp_path / "nowhere"))
    assert done.returncode == 2, done.stderr
    assert "TD-MPC2 is not installed" in done.stderr and "bash scripts/install_tdmpc2.sh" in done.stderr
    # the install script those commands name exists and is valid bash
    assert subprocess.run(["bash", "-n", str(ROOT / "scripts" / "install_tdmpc2.sh")]).returncode == 0


@needs_tdmpc2
def test_era_list_of_the_full_scale_suite_passes():
    done = _era_list(ROOT / "suites" / "dmc-tdmpc2.yaml", str(upstream_dir()))
    assert done.returncode == 0, done.stderr
    assert "tdmpc2-era" in done.stdout and "dmc:humanoid-run" in done.stdout
