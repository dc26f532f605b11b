"""Device selection shared by every adapter: CUDA when the trial has a GPU, else the CPU."""

from __future__ import annotations

import torch

from adapters.errors import ConfigError

__all__ = ["select_device", "device_name"]


def select_device(requested: str = "auto") -> torch.device:
    """Resolve ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` to a device.

    ``"auto"`` picks CUDA only when a GPU is visible to this process, so suites need no change
    between a laptop and a GPU cluster. Under Ray a trial given GPUs sees only those (Ray sets
    ``CUDA_VISIBLE_DEVICES``); Ray leaves that variable alone for a trial given none, so suite
    trials asking for no GPU run with ``"cpu"`` (``harness.suite.expansion``).
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


def device_name(requested: str = "auto") -> str:
    """Where ``requested`` runs in this process, for provenance: ``cpu`` or ``cuda:0 (NVIDIA H200)``."""
    device = select_device(requested)
    if device.type != "cuda":
        return str(device)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
