"""Task ids -> Gymnasium environments with actions normalised to [-1, 1].

Ids carry a prefix naming their source:

- ``gym:<id>``: any registered Gymnasium id (``gym:HalfCheetah-v5``, ``gym:Pendulum-v1``);
- ``dmc:<domain>-<task>``: a DeepMind Control suite task (``dmc:dog-run``,
  ``dmc:cartpole-swingup``) through :class:`DmcEnv`, a small wrapper with flattened float32
  observations;
- ``hb:<id>``: a HumanoidBench task (``hb:h1-walk-v0``); the package is optional and imported only
  when such a task is used.

Every environment's action space is rescaled to [-1, 1] (SB3's advice for continuous actions;
ERA's σ bounds and SAC-ERA's truncated normal assume it, spec section 1), for every algorithm, so
baselines and ERA variants see the same task.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from adapters.errors import ConfigError, MissingDependencyError, UnknownNameError, unknown_name

__all__ = ["TASK_PREFIXES", "HUMANOIDBENCH_INSTALL", "parse_task", "validate_task", "make_env", "DmcEnv"]

#: prefix -> what it names
TASK_PREFIXES: dict[str, str] = {
    "gym": "a Gymnasium id, e.g. gym:HalfCheetah-v5",
    "dmc": "a DeepMind Control task, e.g. dmc:cartpole-swingup",
    "hb": "a HumanoidBench task, e.g. hb:h1-walk-v0",
}

HUMANOIDBENCH_INSTALL = (
    'pip install "humanoid-bench @ git+https://github.com/carlosferrazza/humanoid-bench.git" '
    "(HumanoidBench is not on PyPI; it needs internet access to install)"
)


def parse_task(task: str) -> tuple[str, str]:
    """``"dmc:dog-run"`` -> ``("dmc", "dog-run")``; an unknown or missing prefix lists the known ones."""
    prefix, sep, name = str(task).partition(":")
    if not sep or prefix not in TASK_PREFIXES or not name:
        known = "; ".join(f"{p}: ({what})" for p, what in TASK_PREFIXES.items())
        problem = f"unknown task prefix {prefix + ':'!r}" if sep else "no task prefix"
        raise UnknownNameError(f"{problem} in task id {task!r}: continuous-control task ids start with {known}")
    return prefix, name


def validate_task(task: str) -> None:
    """Check a task id without building the environment; raise ``ConfigError`` or
    ``MissingDependencyError``, each naming the fix."""
    prefix, name = parse_task(task)
    if prefix == "gym":
        _check_gym_id(name)
    elif prefix == "dmc":
        _dmc_domain_task(name)
    else:
        _import_humanoidbench(name)
        _check_gym_id(name, registry_filter="humanoid_bench", kind="HumanoidBench task")


def make_env(task: str, seed: int | None = None) -> Any:
    """A ``gymnasium.Env`` for ``task`` with a Box action space rescaled to [-1, 1].

    ``seed`` seeds the first reset where the source allows it at construction (DeepMind Control);
    pass seeds to ``reset`` for everything else.
    """
    from gymnasium.wrappers import RescaleAction

    validate_task(task)
    prefix, name = parse_task(task)
    if prefix == "dmc":
        env = DmcEnv(*_dmc_domain_task(name), seed=seed)
    else:
        env = gym.make(name)
    if not isinstance(env.action_space, gym.spaces.Box):
        env.close()
        raise ConfigError(
            f"task {task!r} has a {type(env.action_space).__name__} action space; SAC, PPO and their "
            f"ERA variants here need continuous (Box) actions: choose a continuous-control task"
        )
    space = env.action_space
    if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
        env.close()
        raise ConfigError(f"task {task!r} has unbounded actions; ERA needs a bounded Box action space")
    if not (np.all(space.low == -1.0) and np.all(space.high == 1.0)):
        one = np.ones(space.shape, dtype=space.dtype)
        env = RescaleAction(env, -one, one)
    return env


# --------------------------------------------------------------------------------------------
# Gymnasium and HumanoidBench ids
# --------------------------------------------------------------------------------------------


def _check_gym_id(name: str, registry_filter: str | None = None, kind: str = "Gymnasium id") -> None:
    registry = gym.envs.registry
    if name in registry:
        return
    known = sorted(
        env_id for env_id, env_spec in registry.items()
        if registry_filter is None or str(env_spec.entry_point).startswith(registry_filter)
    )
    prefix = "hb:" if registry_filter else "gym:"
    raise unknown_name(kind, name, known, hint=f"prefix the id with {prefix}")


def _import_humanoidbench(name: str) -> None:
    if importlib.util.find_spec("humanoid_bench") is None:
        raise MissingDependencyError(
            f"task hb:{name} needs HumanoidBench, which is not installed: {HUMANOIDBENCH_INSTALL}"
        )
    import humanoid_bench  # noqa: F401  (registers its Gymnasium ids on import)


# --------------------------------------------------------------------------------------------
# DeepMind Control
# --------------------------------------------------------------------------------------------


def _headless_mujoco_gl() -> None:
    """Turn dm_control's rendering off when the user chose no backend and there is no display.

    Unset, dm_control tries GLFW, which warns and cannot render without a display. EGL is no safe
    default either: with MUJOCO_GL=egl, importing triton afterwards (torch does so lazily, e.g. when
    it builds its first optimizer) segfaulted on the project's CI machine. Training never renders,
    so rendering is switched off; a user's own ``MUJOCO_GL`` (egl, osmesa, glfw) is never touched.
    """
    if "MUJOCO_GL" in os.environ or sys.platform in ("darwin", "win32"):
        return
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return
    os.environ["MUJOCO_GL"] = "disable"


def _dm_suite() -> Any:
    _headless_mujoco_gl()
    from dm_control import suite

    return suite


def _dmc_domain_task(name: str) -> tuple[str, str]:
    """``"ball_in_cup-catch"`` -> ``("ball_in_cup", "catch")`` if the suite has that task."""
    suite = _dm_suite()
    known = [f"{domain}-{task}" for domain, task in suite.ALL_TASKS]
    domain, sep, task = name.partition("-")
    if not sep or (domain, task) not in suite.ALL_TASKS:
        raise unknown_name("DeepMind Control task", name, known, hint="prefix the id with dmc:")
    return domain, task


class DmcEnv(gym.Env):
    """A DeepMind Control task as a ``gymnasium.Env``: flattened float32 observations.

    Episodes end at the task's time limit (1000 steps for the suite) with ``truncated=True``; a
    terminal step with discount 0 is reported as ``terminated``. ``reset(seed=...)`` reseeds the
    task's random state, which draws the initial state.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(self, domain: str, task: str, seed: int | None = None, render_mode: str | None = None) -> None:
        suite = _dm_suite()
        self._env = suite.load(domain, task, task_kwargs={"random": seed})
        self.domain, self.task_name = domain, task
        self.render_mode = render_mode
        size = sum(int(np.prod(spec.shape)) for spec in self._env.observation_spec().values())
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(size,), dtype=np.float32)
        action_spec = self._env.action_spec()
        self.action_space = spaces.Box(
            action_spec.minimum.astype(np.float32), action_spec.maximum.astype(np.float32), dtype=np.float32
        )

    @staticmethod
    def _flatten(observation: dict) -> np.ndarray:
        return np.concatenate([np.asarray(v, dtype=np.float32).ravel() for v in observation.values()])

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if seed is not None:
            self._env.task.random.seed(seed)
        timestep = self._env.reset()
        return self._flatten(timestep.observation), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        timestep = self._env.step(action)
        done = timestep.last()
        terminated = bool(done and timestep.discount == 0.0)
        return self._flatten(timestep.observation), float(timestep.reward or 0.0), terminated, bool(done and not terminated), {}

    def render(self) -> np.ndarray:
        return self._env.physics.render(height=240, width=320, camera_id=0)

    def close(self) -> None:
        self._env.close()

    def __str__(self) -> str:
        return f"<DmcEnv {self.domain}-{self.task_name}>"
