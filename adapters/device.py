"""Device selection shared by every adapter: CUDA when the trial has a GPU, else the CPU."""

from __future__ import annotations

from typing import TYPE_CHECKING

from adapters.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["check_device", "select_device", "apply_torch_threads", "device_name"]


def check_device(requested: str = "auto") -> None:
    """What :func:`select_device` would refuse, checked without importing torch unless the answer
    needs it (a CUDA device: is one visible?)."""
    if requested not in ("auto", "cpu"):
        select_device(requested)


def select_device(requested: str = "auto") -> "torch.device":
    """Resolve ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` to a device.

    ``"auto"`` picks CUDA only when a GPU is visible to this process, so suites need no change
    between a laptop and a GPU cluster. Under Ray a trial given GPUs sees only those (Ray sets
    ``CUDA_VISIBLE_DEVICES``); Ray leaves that variable alone for a trial given none, so suite
    trials asking for no GPU run with ``"cpu"`` (``harness.suite.expansion``).
    """
    import torch

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
    import torch

    device = select_device(requested)
    if device.type != "cuda":
        return str(device)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"


def apply_torch_threads(wanted: int | None, device: "torch.device") -> int | None:
    """Set torch's CPU threads for a trial: ``wanted``, or 1 on the CPU unless ``OMP_NUM_THREADS`` is set
    (Ray sets it per trial; small networks gain little from intra-op threads, and trials sharing cores
    with multi-threaded torch ran 15x slower). Returns the previous count to restore, or ``None``."""
    import os

    import torch

    if wanted is None and (device.type != "cpu" or "OMP_NUM_THREADS" in os.environ):
        return None
    previous = torch.get_num_threads()
    torch.set_num_threads(wanted or 1)
    return previous
