"""What an SB3 trial's checkpoint holds besides the model zip: replay buffer and RNG states.

SB3's own ``save_replay_buffer`` pickles the whole preallocated buffer (1M rows whatever the fill,
2.8 GB for Humanoid); :func:`save_replay_buffer` writes only the filled rows, so checkpointing
after every evaluation stays proportional to the steps taken.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["save_replay_buffer", "load_replay_buffer", "save_rng_state", "load_rng_state"]

_SCALARS = ("pos", "full")


def save_replay_buffer(buffer: Any, path: str | Path) -> None:
    """Write the filled rows of every per-row array of an SB3 replay buffer, plus its cursor."""
    size = buffer.buffer_size if buffer.full else buffer.pos
    arrays = {
        name: value[:size]
        for name, value in vars(buffer).items()
        if isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == buffer.buffer_size
    }
    with open(path, "wb") as handle:
        np.savez(handle, pos=np.int64(buffer.pos), full=np.bool_(buffer.full), **arrays)


def load_replay_buffer(buffer: Any, path: str | Path) -> None:
    """Fill a freshly built buffer of the same size from :func:`save_replay_buffer`'s file."""
    with np.load(path) as data:
        for name in data.files:
            if name in _SCALARS:
                continue
            rows = data[name]
            target = getattr(buffer, name)
            if target.shape[1:] != rows.shape[1:] or len(rows) > len(target):
                raise ValueError(
                    f"replay buffer field {name!r} has shape {target.shape}, checkpoint has {rows.shape}: "
                    f"the trial's settings changed since the checkpoint was written"
                )
            target[: len(rows)] = rows
        buffer.pos = int(data["pos"])
        buffer.full = bool(data["full"])


def save_rng_state(path: str | Path) -> None:
    """Save the global Python, NumPy and torch (CPU and CUDA) generators."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    torch.save(state, path)


def load_rng_state(path: str | Path) -> None:
    """Restore :func:`save_rng_state`'s generators (CUDA only if the device count matches)."""
    state = torch.load(path, weights_only=False)
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
