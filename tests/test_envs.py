"""Task ids -> environments: prefixes, DeepMind Control wrapper, MuJoCo, HumanoidBench hint."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from adapters import envs
from adapters.envs import DmcEnv, make_env, parse_task, validate_task
from adapters.errors import ConfigError, MissingDependencyError, UnknownNameError

HAS_HUMANOIDBENCH = importlib.util.find_spec("humanoid_bench") is not None


@pytest.mark.parametrize("task", ["cifar10", "mujoco:Hopper-v5", "gym:", ":Hopper-v5"])
def test_unknown_prefix_lists_the_known_ones(task):
    with pytest.raises(UnknownNameError) as info:
        parse_task(task)
    for prefix in ("gym:", "dmc:", "hb:"):
        assert prefix in str(info.value)


@pytest.mark.parametrize(
    ("task", "listed"),
    [("gym:Hoper-v5", "Hopper-v5"), ("dmc:dog-sprint", "dog-run"), ("dmc:cartpole", "cartpole-swingup")],
)
def test_unknown_id_lists_available_ones(task, listed):
    with pytest.raises(UnknownNameError) as info:
        validate_task(task)
    assert listed in str(info.value)


@pytest.mark.skipif(HAS_HUMANOIDBENCH, reason="humanoid-bench is installed")
def test_humanoidbench_without_package_says_how_to_install():
    with pytest.raises(MissingDependencyError) as info:
        validate_task("hb:h1-walk-v0")
    message = str(info.value)
    assert "pip install" in message and "github.com/carlosferrazza/humanoid-bench" in message
    validate_task("gym:Pendulum-v1")  # nothing else broke


@pytest.mark.filterwarnings("ignore:.*infinity")
def test_dmc_cartpole_swingup_is_a_seeded_gymnasium_env():
    env = make_env("dmc:cartpole-swingup", seed=0)
    assert env.action_space.shape == (1,) and env.observation_space.shape == (5,)
    assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    check_env(env, skip_render_check=True)  # Gymnasium's API checks, determinism of reset(seed=) included
    first, _ = env.reset(seed=3)
    again, _ = env.reset(seed=3)
    other, _ = env.reset(seed=4)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    total, steps, truncated = 0.0, 0, False
    while not truncated:
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert obs.dtype == np.float32 and 0.0 <= reward <= 1.0 and not terminated
        total, steps = total + reward, steps + 1
    assert steps == 1000  # the suite's time limit ends the episode as a truncation


def test_dog_run_builds():
    env = make_env("dmc:dog-run", seed=0)
    obs, _ = env.reset(seed=0)
    assert env.action_space.shape == (38,) and obs.shape == env.observation_space.shape
    env.step(np.zeros(38, dtype=np.float32))


def test_gym_mujoco_and_rescaled_pendulum():
    hopper = make_env("gym:Hopper-v5")
    hopper.reset(seed=0)
    for _ in range(5):
        hopper.step(hopper.action_space.sample())
    pendulum = make_env("gym:Pendulum-v1")  # native torque bounds are [-2, 2]
    assert np.all(pendulum.action_space.low == -1) and np.all(pendulum.action_space.high == 1)
    pendulum.reset(seed=0)
    pendulum.step(np.array([1.0], dtype=np.float32))
    assert pendulum.unwrapped.last_u == pytest.approx(2.0)


def test_discrete_action_space_is_refused():
    with pytest.raises(ConfigError, match="continuous"):
        make_env("gym:CartPole-v1")


def test_headless_mujoco_gl_respects_the_users_choice(monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    envs._headless_mujoco_gl()
    assert os.environ["MUJOCO_GL"] == "osmesa"
    monkeypatch.delenv("MUJOCO_GL")
    monkeypatch.setenv("DISPLAY", ":0")
    envs._headless_mujoco_gl()
    assert "MUJOCO_GL" not in os.environ
    monkeypatch.delenv("DISPLAY")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    envs._headless_mujoco_gl()
    assert os.environ["MUJOCO_GL"] == "disable"


def test_dmc_env_class_is_usable_directly():
    env = DmcEnv("cartpole", "balance", seed=1)
    obs, _ = env.reset()
    assert obs.shape == (5,)
