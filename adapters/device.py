"""Device selection shared by every adapter: CUDA when the trial has a GPU, else the CPU."""

from __future__ import annotations

import torch

from adapters.errors import ConfigError

__all__ = ["select_device"]


def select_device(requested: str = "auto") -> torch.device:
    """Resolve ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` to a device.

    ``"auto"`` picks CUDA only when a GPU is visible to this process (under Ray, only when the
    trial was given one: Ray sets ``CUDA_VISIBLE_DEVICES`` per trial), so suites need no change
    between a laptop and a GPU cluster.
    """
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"device {requested!r} was asked for but no CUDA GPU is visible: use device 'auto' or 'cpu'"
        )
    try:
        return torch.device(requested)
    except RuntimeError as error:
        raise ConfigError(f"unknown device {requested!r}: use 'auto', 'cpu' or 'cuda[:N]'") from error
