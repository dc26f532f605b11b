"""A TD-MPC2 trial's checkpoint: everything that decides what it does next, so a resumed trial gives
exactly the numbers of one never interrupted.

Checkpoints are taken between episodes (after an evaluation), so no half episode is pending. One
file, ``tdmpc2.pt``, holds: the world model (ERA's δ is one of its buffers), the planner's last
mean, the running Q scale, both Adam optimisers, the δ tuner, the replay buffer through torchrl's
own ``ReplayBuffer.state_dict`` (storage, writer cursor, sampler), the episode count, the torch,
numpy and Python generators, and both environments' generators.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np

from adapters.errors import ConfigError
from adapters.tdmpc2.agent import Run
from adapters.trial import TrialSpec

__all__ = ["write_state", "restore_state", "identity", "check_same_trial", "STATE_FILE"]

STATE_FILE = "tdmpc2.pt"


def identity(spec: TrialSpec) -> dict[str, Any]:
    """What must match for a checkpoint to be this trial's (the device may differ)."""
    return {"algo": spec.algo, "task": spec.task, "seed": int(spec.seed), "settings": dict(spec.settings)}


def check_same_trial(spec: TrialSpec, saved: Any, directory: Path) -> None:
    if saved is not None and saved != identity(spec):
        raise ConfigError(
            f"the checkpoint in {directory} is of another trial ({saved}), not {identity(spec)}: "
            f"give this trial its own checkpoint folder"
        )


def write_state(directory: Path, run: Run, step: int) -> None:
    import torch

    agent = run.agent
    state = {
        "step": int(step),
        "model": agent.model.state_dict(),
        "prev_mean": agent._prev_mean.detach().cpu(),
        "scale": {k: v.detach().cpu() for k, v in agent.scale.state_dict().items()},
        "optim": agent.optim.state_dict(),
        "pi_optim": agent.pi_optim.state_dict(),
        "tuner": run.tuner.state_dict() if run.tuner is not None else None,
        "buffer": _buffer_state(run.buffer),
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if agent.device.type == "cuda" else None,
            "numpy": np.random.get_state(),
            "python": random.getstate(),
            "env": run.env.rng_state(),
            "eval_env": run.eval_env.rng_state(),
        },
    }
    torch.save(state, directory / STATE_FILE)


def restore_state(directory: Path, run: Run) -> int:
    """Load ``directory``'s state into a freshly built ``run``; returns the step it was taken at."""
    import torch

    path = directory / STATE_FILE
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError as error:
        raise ConfigError(f"the checkpoint in {directory} has no {STATE_FILE}: delete the folder to start over") from error
    except Exception as error:  # a truncated or foreign file
        raise ConfigError(
            f"the checkpoint file {path} is unreadable ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}): "
            f"delete the checkpoint folder to start the trial over"
        ) from error
    agent = run.agent
    agent.model.load_state_dict(state["model"])
    agent._prev_mean.copy_(state["prev_mean"])
    agent.scale.load_state_dict({k: v.to(agent.device) for k, v in state["scale"].items()})
    agent.optim.load_state_dict(state["optim"])
    agent.pi_optim.load_state_dict(state["pi_optim"])
    if run.tuner is not None:
        run.tuner.load_state_dict(state["tuner"])
    _load_buffer(run.buffer, state["buffer"])
    rng = state["rng"]
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and agent.device.type == "cuda":
        torch.cuda.set_rng_state_all(rng["cuda"])
    np.random.set_state(rng["numpy"])
    random.setstate(rng["python"])
    run.env.set_rng_state(rng["env"])
    run.eval_env.set_rng_state(rng["eval_env"])
    return int(state["step"])


def _buffer_state(buffer: Any) -> dict[str, Any] | None:
    if buffer.num_eps == 0:
        return None
    return {"num_eps": buffer.num_eps, "device": str(buffer._storage_device), "replay": buffer._buffer.state_dict()}


def _load_buffer(buffer: Any, saved: dict[str, Any] | None) -> None:
    """Give upstream's ``Buffer`` the saved torchrl replay buffer (what its first ``add`` would have built)."""
    if saved is None:
        return
    import torch
    from torchrl.data.replay_buffers import LazyTensorStorage

    buffer._storage_device = torch.device(saved["device"])
    buffer._buffer = buffer._reserve_buffer(LazyTensorStorage(buffer.capacity, device=buffer._storage_device))
    buffer._buffer.load_state_dict(saved["replay"])
    storage = buffer._buffer.storage
    storage._storage = storage._storage.to(buffer._storage_device)  # loaded on the CPU
    buffer._num_eps = int(saved["num_eps"])
