"""Building one trial's TD-MPC2: its environments, config, agent (with ERA for ``tdmpc2-era``),
replay buffer, and upstream's trainer for its episode format."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Any

from adapters.era import DeltaTuner
from adapters.tdmpc2.config import build_config
from adapters.tdmpc2.env import TDMPC2Env, make_env
from adapters.tdmpc2.prior import attach_era
from adapters.tdmpc2.settings import TDMPC2Settings
from adapters.tdmpc2.upstream import import_upstream, on_device
from adapters.trial import TrialSpec

__all__ = ["Run", "build_run"]


@dataclass
class Run:
    """Everything a TD-MPC2 trial trains and evaluates with."""

    cfg: Any
    agent: Any
    buffer: Any
    trainer: Any  # upstream's OnlineTrainer, used for ``to_td`` (its episode format) only
    env: TDMPC2Env
    eval_env: TDMPC2Env
    tuner: DeltaTuner | None


def quiet() -> contextlib.AbstractContextManager:
    """Upstream prints its architecture, discount and buffer sizes; a trial keeps its output for progress."""
    return contextlib.redirect_stdout(io.StringIO())


def build_run(spec: TrialSpec, settings: TDMPC2Settings, device: Any) -> Run:
    """A fresh agent for ``spec`` on ``device`` (``torch.manual_seed(spec.seed)`` first, as upstream's
    ``set_seed``), with its environments seeded from the trial's seed."""
    upstream = import_upstream()
    env = make_env(upstream, spec.task, spec.seed, settings.episode_length)
    eval_env = make_env(upstream, spec.task, spec.seed + settings.eval_seed_offset, settings.episode_length)
    cfg = build_config(spec, settings, upstream, obs_dim=env.observation_space.shape[0],
                       action_dim=env.action_space.shape[0], device_type=device.type)
    upstream.seed.set_seed(spec.seed)
    on_device(device)
    with quiet():
        agent = upstream.agent.TDMPC2(cfg)
        if device.type != "cuda":  # capturable Adam (for CUDA graphs) is refused off CUDA
            for optimizer in (agent.optim, agent.pi_optim):
                for group in optimizer.param_groups:
                    group["capturable"] = False
        buffer = upstream.buffer.Buffer(cfg)
        trainer = upstream.trainer.OnlineTrainer(cfg, env, agent, buffer, None)
    tuner = attach_era(agent, settings.era) if settings.era is not None else None
    return Run(cfg, agent, buffer, trainer, env, eval_env, tuner)
