"""The training environment's episode in progress, as something a checkpoint can hold.

A simulator's state cannot be pickled in general (MuJoCo through Gymnasium, dm_control, and
HumanoidBench each keep it differently, with wrappers holding counters of their own), but every
one of them is deterministic: the same reset from the same generator state, then the same
actions, reach the same state. :class:`EpisodeLog` records exactly that for the episode in
progress (the generators just before its reset, the reset's arguments and every action since),
and :func:`replay_episode` rebuilds the episode in a freshly built environment by replaying it
through SB3's whole wrapper stack, so its ``Monitor`` and the environment's own wrappers end up
where the interrupted trial left them. The cost is at most one episode of simulator steps.
"""

from __future__ import annotations

import logging
from typing import Any

import gymnasium as gym
import numpy as np

from adapters.rl.envs import rng_state, set_rng_state

__all__ = ["EpisodeLog", "episode_state", "replay_episode"]

_log = logging.getLogger(__name__)


class EpisodeLog(gym.Wrapper):
    """Remembers how the current episode began and every action taken in it."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.reset_state: dict[str, Any] | None = None
        self.reset_kwargs: dict[str, Any] = {}
        self.actions: list[np.ndarray] = []

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        self.reset_state = rng_state(self.env)
        self.reset_kwargs = {"seed": seed, "options": options}
        self.actions = []
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        self.actions.append(np.array(action, copy=True))
        return self.env.step(action)

    def state(self) -> dict[str, Any] | None:
        """The episode so far, or ``None`` before the first reset."""
        if self.reset_state is None:
            return None
        actions = np.stack(self.actions) if self.actions else np.zeros((0, *self.action_space.shape), np.float32)
        return {"reset_state": self.reset_state, "reset_kwargs": self.reset_kwargs, "actions": actions}


def _log_of(vec_env: Any) -> tuple[gym.Env, EpisodeLog]:
    """The single environment of SB3's ``DummyVecEnv`` and the :class:`EpisodeLog` inside it."""
    envs = getattr(vec_env, "envs", None)
    if envs is None or len(envs) != 1:
        raise TypeError("exact resume needs SB3's DummyVecEnv over one environment")
    layer = envs[0]
    while not isinstance(layer, EpisodeLog):
        layer = getattr(layer, "env", None)
        if layer is None:
            raise TypeError("the training environment has no EpisodeLog: build it with EpisodeLog(make_env(...))")
    return envs[0], layer


def episode_state(vec_env: Any) -> dict[str, Any] | None:
    """What :func:`replay_episode` needs to rebuild the episode in progress."""
    return _log_of(vec_env)[1].state()


def replay_episode(vec_env: Any, state: dict[str, Any], last_obs: np.ndarray | None) -> np.ndarray:
    """Replay ``state``'s episode into a freshly built ``vec_env``; returns its batched observation.

    ``last_obs`` (what the interrupted model saw last) is compared with the replayed observation:
    a simulator that is not deterministic on this machine (another CPU, another library build)
    gets a warning, and training goes on from the replayed state.
    """
    outer, log = _log_of(vec_env)
    set_rng_state(log.env, state["reset_state"])
    obs, _ = outer.reset(**state["reset_kwargs"])
    for action in state["actions"]:
        obs, _, terminated, truncated, _ = outer.step(action)
        if terminated or truncated:
            raise RuntimeError("the replayed episode ended before its recorded end: the environment is not deterministic")
    vec_env._save_obs(0, obs)  # as DummyVecEnv batches and casts it
    batched = vec_env._obs_from_buf()
    if last_obs is not None and not np.array_equal(batched, np.asarray(last_obs)):
        _log.warning("the replayed episode's observation differs from the checkpoint's (largest difference %.3g): "
                     "the simulator is not bit-for-bit deterministic here, so the resumed trial can drift",
                     float(np.max(np.abs(batched - np.asarray(last_obs)))))
    return batched
