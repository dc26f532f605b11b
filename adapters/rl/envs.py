"""Task ids -> Gymnasium environments with actions normalised to [-1, 1].

Ids carry a prefix naming their source:

- ``gym:<id>``: any registered Gymnasium id (``gym:HalfCheetah-v5``, ``gym:Pendulum-v1``), or
  Gymnasium's ``module:id`` form for an environment of one's own (``gym:my_pkg.envs:MyEnv-v0``):
  the module is imported wherever the task is checked or made (the driver, and each trial's Ray
  worker), so its ``gymnasium.register(...)`` call registers the id; ``gym.make`` is given the
  whole ``module:id``, as Gymnasium itself supports;
- ``dmc:<domain>-<task>``: a DeepMind Control suite task (``dmc:dog-run``,
  ``dmc:cartpole-swingup``) through :class:`DmcEnv`, a small wrapper with flattened float32
  observations;
- ``hb:<id>``: a HumanoidBench task (``hb:h1-walk-v0``); the package is optional and imported only
  when such a task is used, through :mod:`adapters.rl.humanoidbench`.

Every environment's action space is rescaled to [-1, 1] (SB3's advice for continuous actions;
ERA's σ bounds and SAC-ERA's truncated normal assume it, ``docs/era.md``), for every algorithm, so
baselines and ERA variants see the same task. :func:`make_env` also applies the trial's
:class:`~adapters.rl.protocol.EnvProtocol` (termination ignored, action repeat).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from adapters.rl.protocol import EnvProtocol
from adapters.errors import (
    ConfigError, MissingDependencyError, UnknownNameError, close_names, unknown_among_many, unknown_name,
)

__all__ = [
    "TASK_PREFIXES", "parse_task", "validate_task", "make_env", "DmcEnv", "IgnoreTermination",
    "ActionRepeat", "sim_steps", "rng_state", "set_rng_state",
]

#: prefix -> what it names
TASK_PREFIXES: dict[str, str] = {
    "gym": "a Gymnasium id, e.g. gym:HalfCheetah-v5, or module:id, e.g. gym:my_pkg.envs:MyEnv-v0",
    "dmc": "a DeepMind Control task, e.g. dmc:cartpole-swingup",
    "hb": "a HumanoidBench task, e.g. hb:h1-walk-v0",
}


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
        from adapters.rl.humanoidbench import SUPPORTED_IDS, import_humanoidbench, registered_ids

        import_humanoidbench()
        if name not in registered_ids():
            raise unknown_name("HumanoidBench task", name, SUPPORTED_IDS, hint="prefix the id with hb:")


def make_env(task: str, seed: int | None = None, protocol: EnvProtocol | None = None) -> Any:
    """A ``gymnasium.Env`` for ``task`` with a Box action space rescaled to [-1, 1].

    ``seed`` seeds the first reset where the source allows it at construction (DeepMind Control);
    pass seeds to ``reset`` for everything else. ``protocol`` (default: termination kept, no
    repeat) adds :class:`IgnoreTermination` and :class:`ActionRepeat` around the task.
    """
    from gymnasium.wrappers import RescaleAction

    validate_task(task)
    prefix, name = parse_task(task)
    if prefix == "dmc":
        env = DmcEnv(*_dmc_domain_task(name), seed=seed)
    elif prefix == "hb":
        from adapters.rl.humanoidbench import make

        env = make(name)
    else:
        env = gym.make(name)  # a ``module:id`` is imported by Gymnasium itself (checked above)
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
    protocol = protocol or EnvProtocol()
    if protocol.ignore_termination:
        env = IgnoreTermination(env)
    if protocol.action_repeat > 1:
        env = ActionRepeat(env, protocol.action_repeat)
    if not (np.all(space.low == -1.0) and np.all(space.high == 1.0)):
        one = np.ones(space.shape, dtype=space.dtype)
        env = RescaleAction(env, -one, one)
    return env


# --------------------------------------------------------------------------------------------
# Protocol wrappers
# --------------------------------------------------------------------------------------------


class IgnoreTermination(gym.Wrapper):
    """Reports ``terminated=False`` on every step, so episodes end only at the time limit.

    The ERA authors' HumanoidBench protocol: a fallen humanoid keeps collecting (low) rewards
    instead of ending the episode. ``info["terminated_ignored"]`` says when it would have ended.
    """

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated:
            info = {**info, "terminated_ignored": True}
        return obs, reward, False, truncated, info


class ActionRepeat(gym.Wrapper):
    """Applies each action ``repeat`` times, summing the rewards; stops early at an episode's end.

    ``sim_steps`` counts the inner environment's steps over the wrapper's life (kept in
    checkpoints), so results can report simulator steps beside agent steps.
    """

    def __init__(self, env: Any, repeat: int) -> None:
        super().__init__(env)
        if repeat < 1:
            raise ConfigError(f"action_repeat must be >= 1, got {repeat}")
        self.repeat = int(repeat)
        self.sim_steps = 0

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        total = 0.0
        for _ in range(self.repeat):
            obs, reward, terminated, truncated, info = self.env.step(action)
            self.sim_steps += 1
            total += float(reward)
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, info


def _wrappers(env: Any) -> Iterator[Any]:
    while True:
        yield env
        inner = getattr(env, "env", None)
        if inner is None or inner is env:
            return
        env = inner


def sim_steps(env: Any, agent_steps: int) -> int:
    """Simulator steps behind ``agent_steps`` of ``env`` (its :class:`ActionRepeat` count, if any)."""
    for layer in _wrappers(env):
        if isinstance(layer, ActionRepeat):
            return layer.sim_steps
    return agent_steps


def rng_state(env: Any) -> dict[str, Any]:
    """The random state an environment carries between resets (to checkpoint with a trial).

    Covers the base environment's ``np_random``, HumanoidBench's reset stream and the
    :class:`ActionRepeat` counter.
    """
    base = env.unwrapped
    state: dict[str, Any] = {"np_random": base.np_random.bit_generator.state}
    if isinstance(base, DmcEnv):
        state["dmc_random"] = base.random_state()
    for layer in _wrappers(env):
        if hasattr(layer, "_legacy_state"):
            state["legacy"] = layer._legacy_state
        if isinstance(layer, ActionRepeat):
            state["sim_steps"] = layer.sim_steps
    return state


def set_rng_state(env: Any, state: dict[str, Any]) -> None:
    """Restore :func:`rng_state` into an environment built the same way."""
    base = env.unwrapped
    base.np_random.bit_generator.state = state["np_random"]
    if "dmc_random" in state and isinstance(base, DmcEnv):
        base.set_random_state(state["dmc_random"])
    for layer in _wrappers(env):
        if "legacy" in state and hasattr(layer, "_legacy_state"):
            layer._legacy_state = state["legacy"]
        if "sim_steps" in state and isinstance(layer, ActionRepeat):
            layer.sim_steps = int(state["sim_steps"])


# --------------------------------------------------------------------------------------------
# Gymnasium ids
# --------------------------------------------------------------------------------------------


#: how to list what ``gym:`` and ``dmc:`` ids can name (too many for one line of an error)
GYM_LISTING = 'python -c "import gymnasium; gymnasium.pprint_registry()"'
DMC_LISTING = ("python -c \"from dm_control import suite; print(*(f'{d}-{t}' for d, t in suite.ALL_TASKS))\"")


def _check_gym_id(name: str) -> None:
    if ":" in name:
        _check_module_gym_id(name)
        return
    registry = gym.envs.registry
    if name in registry:
        return
    suggestions = [f"gym:{n}" for n in close_names(name, sorted(registry))]
    raise unknown_among_many("Gymnasium id", f"gym:{name}", suggestions, GYM_LISTING)


def _check_module_gym_id(name: str) -> None:
    """``module:id`` (Gymnasium's own form, which ``gym.make`` imports the same way): import the
    module, then find the id it registered; either failing is one line naming the fix."""
    task = f"gym:{name}"
    module, _, env_id = name.partition(":")
    if not module or not env_id or ":" in env_id:
        raise UnknownNameError(f"{task}: expected gym:<module>:<Gymnasium id> (e.g. gym:my_pkg.envs:MyEnv-v0), "
                               f"with one ':' between the module and the id")
    try:
        importlib.import_module(module)
    except ImportError as error:
        raise MissingDependencyError(
            f"{task}: cannot import module {module!r} ({_first_line(error)}): install it or put it on PYTHONPATH"
        ) from None
    except Exception as error:  # noqa: BLE001 - the module's own code failed while it was imported
        raise ConfigError(
            f"{task}: importing module {module!r} failed ({type(error).__name__}: {_first_line(error)}): "
            f"fix the module so that it imports"
        ) from None
    registry = gym.envs.registry
    if env_id in registry:
        return
    own = sorted(i for i, spec in registry.items() if _registered_by(spec, module))
    if own:
        listed = f"it registers {', '.join(own[:8])}" + (", ..." if len(own) > 8 else "")
    else:
        close = close_names(env_id, sorted(registry))
        listed = "it registers none" + (f"; close registered ids: {', '.join(close)}" if close else "")
    raise UnknownNameError(
        f"{task}: module {module!r} registers no Gymnasium id {env_id!r} ({listed}): fix the id, or the "
        f"module's gymnasium.register(id=...) call, which must run when the module is imported"
    )


def _registered_by(spec: Any, module: str) -> bool:
    """Whether a registry entry's environment lives in ``module`` (or below it)."""
    entry = spec.entry_point
    where = entry.partition(":")[0] if isinstance(entry, str) else getattr(entry, "__module__", "") or ""
    return where == module or where.startswith(module + ".")


def _first_line(error: BaseException) -> str:
    return next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)


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
    domain, sep, task = name.partition("-")
    if sep and (domain, task) in suite.ALL_TASKS:
        return domain, task
    of_domain = [f"dmc:{d}-{t}" for d, t in suite.ALL_TASKS if d == domain]
    if of_domain and len(of_domain) <= 8:  # a known domain: its tasks are few
        raise UnknownNameError(
            f"unknown DeepMind Control task 'dmc:{name}': domain {domain!r} has {', '.join(of_domain)}"
        )
    known = [f"{d}-{t}" for d, t in suite.ALL_TASKS]
    suggestions = [f"dmc:{n}" for n in close_names(name, known)]
    raise unknown_among_many("DeepMind Control task", f"dmc:{name}", suggestions, DMC_LISTING)


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

    def random_state(self) -> Any:
        """The task's generator state, which draws each episode's initial state."""
        return self._env.task.random.get_state()

    def set_random_state(self, state: Any) -> None:
        self._env.task.random.set_state(state)

    def render(self) -> np.ndarray:
        return self._env.physics.render(height=240, width=320, camera_id=0)

    def close(self) -> None:
        self._env.close()

    def __str__(self) -> str:
        return f"<DmcEnv {self.domain}-{self.task_name}>"
