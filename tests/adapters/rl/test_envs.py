"""Task ids -> environments: prefixes, DeepMind Control wrapper, MuJoCo, protocol wrappers.

HumanoidBench has its own file, tests/adapters/rl/test_humanoidbench.py.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from adapters.rl import envs
from adapters.rl.protocol import (
    EnvProtocol, default_eval_episodes, default_eval_every, env_protocol,
)
from adapters.rl.envs import DmcEnv, make_env, parse_task, validate_task
from adapters.errors import ConfigError, UnknownNameError


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


# --------------------------------------------------------------------------------------------
# Environment protocol: termination, action repeat, evaluation seeding
# --------------------------------------------------------------------------------------------


def test_action_repeat_sums_the_rewards_of_repeated_steps():
    plain = make_env("gym:Pendulum-v1")
    repeated = make_env("gym:Pendulum-v1", protocol=EnvProtocol(action_repeat=3))
    obs_plain, _ = plain.reset(seed=5)
    obs_repeated, _ = repeated.reset(seed=5)
    np.testing.assert_array_equal(obs_plain, obs_repeated)
    actions = np.random.default_rng(0).uniform(-1, 1, size=(10, 1)).astype(np.float32)
    for action in actions:
        expected = 0.0
        for _ in range(3):
            obs_plain, reward, *_ = plain.step(action)
            expected += reward
        obs_repeated, reward, *_ = repeated.step(action)
        np.testing.assert_array_equal(obs_plain, obs_repeated)
        assert reward == pytest.approx(expected, rel=1e-12)
    assert envs.sim_steps(repeated, 10) == 30 and envs.sim_steps(plain, 10) == 10


def test_action_repeat_stops_at_the_time_limit():
    env = make_env("gym:Pendulum-v1", protocol=EnvProtocol(action_repeat=3))  # 200-step limit
    env.reset(seed=0)
    steps, truncated = 0, False
    while not truncated:
        *_, truncated, _ = env.step(np.zeros(1, dtype=np.float32))
        steps += 1
    assert steps == 67 and envs.sim_steps(env, steps) == 200  # 66 full repeats, then 2 steps


def test_ignore_termination_runs_a_falling_hopper_to_the_time_limit():
    plain = make_env("gym:Hopper-v5")
    plain.reset(seed=0)
    zero = np.zeros(3, dtype=np.float32)
    fell_at = next(step for step in range(1, 1001) if plain.step(zero)[2])
    assert fell_at < 1000  # with no torque the hopper falls and the episode terminates
    env = make_env("gym:Hopper-v5", protocol=EnvProtocol(ignore_termination=True))
    env.reset(seed=0)
    flags = [env.step(zero) for _ in range(1000)]
    assert not any(terminated for _, _, terminated, _, _ in flags)
    assert flags[fell_at - 1][4].get("terminated_ignored") is True
    assert flags[-1][3] is True  # truncated at Hopper's 1000-step limit


@pytest.mark.parametrize("task", ["gym:Pendulum-v1", "dmc:cartpole-swingup"])
def test_rng_state_round_trip_gives_the_same_next_episode(task):
    env = make_env(task, seed=0, protocol=EnvProtocol(action_repeat=2))
    env.reset(seed=11)
    env.step(env.action_space.sample())
    saved = envs.rng_state(env)
    expected, _ = env.reset()  # an unseeded reset draws from the environment's generator
    other = make_env(task, seed=99, protocol=EnvProtocol(action_repeat=2))
    other.reset(seed=12)
    envs.set_rng_state(other, saved)
    again, _ = other.reset()
    np.testing.assert_array_equal(expected, again)
    assert envs.sim_steps(other, 0) == 2


@pytest.mark.parametrize(
    ("settings", "match"),
    [({"ignore_termination": "yes"}, "true or false"), ({"action_repeat": 0}, ">= 1"),
     ({"action_repeat": 2.5}, ">= 1"), ({"eval_seed_offset": "x"}, "seed \\+ offset"),
     ({"eval_seed_offset": True}, "or null")],
)
def test_bad_protocol_settings_are_refused(settings, match):
    with pytest.raises(ConfigError, match=match):
        env_protocol("gym:Pendulum-v1", settings)


def test_protocol_defaults_per_benchmark():
    assert env_protocol("gym:Hopper-v5", {}) == EnvProtocol()
    assert env_protocol("dmc:dog-run", {}) == EnvProtocol()
    authors = env_protocol("hb:h1-walk-v0", {})
    assert (authors.ignore_termination, authors.action_repeat, authors.eval_seed_offset) == (True, 2, 42)
    assert env_protocol("hb:h1-walk-v0", {"ignore_termination": False, "action_repeat": 1,
                                          "eval_seed_offset": None}) == EnvProtocol()
    assert default_eval_every("hb:h1-walk-v0", 1_000_000) == 25_000
    assert default_eval_every("hb:h1-walk-v0", 100_000) == 10_000
    assert default_eval_every("hb:h1-walk-v0", 500) == 2_500  # beyond the budget: one evaluation, at the end
    assert default_eval_every("gym:Hopper-v5", 1_000_000) == 10_000
    assert (default_eval_episodes("hb:h1-walk-v0"), default_eval_episodes("gym:Hopper-v5")) == (10, 5)


@pytest.mark.parametrize(("task", "suggested", "how_to_list"), [
    ("gym:Hoper-v5", "did you mean gym:Hopper-v5", "pprint_registry"),
    ("gym:halfcheetah-v5", "did you mean gym:HalfCheetah-v5", "pprint_registry"),
    ("dmc:cheeta-run", "did you mean dmc:cheetah-run", "ALL_TASKS"),
    ("dmc:cheetah-rn", "domain 'cheetah' has dmc:cheetah-run", ""),  # a known domain: its few tasks
])
def test_an_unknown_id_is_one_short_line_with_close_matches(task, suggested, how_to_list):
    with pytest.raises(UnknownNameError) as info:
        validate_task(task)
    message = str(info.value)
    assert "\n" not in message and len(message) < 300, message
    assert suggested in message and how_to_list in message
    assert "CartPole-v1" not in message and "humanoid-run" not in message  # not every known id


def test_an_unknown_id_with_nothing_close_says_how_to_list_them():
    with pytest.raises(UnknownNameError) as info:
        validate_task("gym:Zzzzzzzz-v9")
    message = str(info.value)
    assert "did you mean" not in message and "pprint_registry" in message and len(message) < 300
