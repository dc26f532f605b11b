"""A Gymnasium env that raises in ``step()``: a real trial failure for the runner's tests.

Importing this module registers ``EraFailingStep-v0`` (task id ``gym:EraFailingStep-v0``). Ray
workers do not import test modules by themselves: the tests put this folder on ``PYTHONPATH`` and
name :func:`register` as the workers' ``worker_process_setup_hook`` (docs/harness.md).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

ENV_ID = "EraFailingStep-v0"
MESSAGE = "EraFailingStep-v0 raised in step() on purpose"


class FailingStepEnv(gym.Env):
    """Continuous actions, resets fine, raises on the first ``step()``."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (3,), dtype=np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(3, dtype=np.float32), {}

    def step(self, action):
        raise RuntimeError(MESSAGE)


def register() -> None:
    """Register the env once per process (also the Ray workers' setup hook)."""
    if ENV_ID not in gym.envs.registry:
        gym.register(id=ENV_ID, entry_point=f"{__name__}:FailingStepEnv", max_episode_steps=50)


register()
