"""DeepMind Control tasks the way TD-MPC2 runs them, with the interface its agent and loop expect.

Upstream's ``envs.dmcontrol.make_env`` loads the task with ``task_kwargs={'random': seed}``,
rescales actions to [-1, 1], wraps it in ``DMControlWrapper`` (each action applied twice, rewards
summed, observations flattened to float32) and cuts episodes at 500 agent steps with ``Timeout``,
then ``TensorWrapper`` turns arrays into tensors. The first three are upstream's own code here;
``Timeout`` and ``TensorWrapper`` subclass ``gymnasium.Wrapper`` with the pre-1.0 API, which
gymnasium 1.x refuses, so :class:`TDMPC2Env` does their two jobs (see :mod:`adapters.tdmpc2.upstream`).

Random actions (TD-MPC2's seed steps) come from the action space's own generator, seeded from the
trial's seed (upstream leaves it unseeded, so its seed steps differ from run to run).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from adapters.errors import ConfigError

__all__ = ["TDMPC2Env", "make_env"]


class TDMPC2Env:
    """A DMC task as TD-MPC2's agent sees it: ``reset() -> obs``, ``step(action) -> (obs, reward,
    done, info)`` on torch tensors, ``rand_act()``, and ``max_episode_steps``."""

    def __init__(self, inner: Any, max_episode_steps: int, seed: int) -> None:
        self.env = inner
        self.observation_space = inner.observation_space
        self.action_space = inner.action_space
        self.action_space.seed(int(seed))
        self.max_episode_steps = int(max_episode_steps)
        self._t = 0

    def reset(self) -> Any:
        import torch

        self._t = 0
        return torch.as_tensor(self.env.reset())

    def rand_act(self) -> Any:
        import torch

        return torch.from_numpy(self.action_space.sample().astype(np.float32))

    def step(self, action: Any) -> tuple[Any, Any, bool, dict[str, Any]]:
        import torch

        obs, reward, _, info = self.env.step(action.detach().cpu().numpy())
        self._t += 1
        info = defaultdict(float, info)
        info["success"] = float(info["success"])
        info["terminated"] = torch.tensor(0.0)  # DMC tasks never terminate
        return torch.as_tensor(obs), torch.tensor(reward, dtype=torch.float32), self._t >= self.max_episode_steps, info

    # -- exact resume: the task's and the action space's generators ------------------------------
    def rng_state(self) -> dict[str, Any]:
        return {"task": self.env.unwrapped.task.random.get_state(),
                "actions": self.action_space.np_random.bit_generator.state}

    def set_rng_state(self, state: dict[str, Any]) -> None:
        self.env.unwrapped.task.random.set_state(state["task"])
        self.action_space.np_random.bit_generator.state = state["actions"]

    def close(self) -> None:
        self.env.unwrapped.close()


def make_env(upstream: Any, task: str, seed: int, episode_length: int) -> TDMPC2Env:
    """TD-MPC2's DMC environment for ``dmc:<domain>-<task>``, seeded with ``seed``."""
    from dm_control import suite
    from dm_control.suite.wrappers import action_scale

    name = task.partition(":")[2]
    domain, _, task_name = name.replace("-", "_").partition("_")
    domain = {"cup": "ball_in_cup", "pointmass": "point_mass"}.get(domain, domain)  # upstream's aliases
    if (domain, task_name) not in suite.ALL_TASKS:
        raise ConfigError(f"unknown DMC task {task!r} for TD-MPC2: use dmc:<domain>-<task>, e.g. dmc:dog-run")
    dmc = suite.load(domain, task_name, task_kwargs={"random": int(seed)}, visualize_reward=False)
    dmc = action_scale.Wrapper(dmc, minimum=-1.0, maximum=1.0)
    return TDMPC2Env(upstream.dmcontrol.DMControlWrapper(dmc, domain), episode_length, seed)
