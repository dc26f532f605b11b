"""Where TD-MPC2's code comes from, and the small layer that runs it on this project's stack.

TD-MPC2 (github nicklashansen/tdmpc2) is a training script with Hydra configs, not a package: its
``tdmpc2/`` folder holds modules imported by bare names (``from common import math``), so that
folder goes on ``sys.path``. It is found, in order, at ``$ERA_TDMPC2_DIR`` or at
``.deps/tdmpc2/tdmpc2`` beside this project (where ``scripts/install_tdmpc2.sh`` clones it).

Upstream's code is never edited. What it needs on this project's pins (torch 2.14, gymnasium 1.4):

- **tensordict 0.12 / torchrl 0.12** (the ``tdmpc2`` extra). From tensordict 0.14 on, the copy
  ``layers.Ensemble`` makes under ``to_module`` keeps its meta-device weights as registered
  parameters, and moving the world model to a device fails ("Cannot copy out of meta tensor").
- **a device of the trial's choosing**: the agent, its buffer and its running scale build their
  tensors on a hard-coded ``torch.device('cuda:0')``, and the buffer sizes its storage with
  ``torch.cuda.mem_get_info()``. :func:`on_device` gives those three modules a ``torch`` whose
  ``device(...)`` is the trial's device and whose ``cuda.mem_get_info`` reports no free CUDA memory on
  the CPU (so the buffer keeps its storage there); everything else is the real ``torch``. Adam's
  ``capturable=True`` (for CUDA graphs) is switched off on the CPU, where torch refuses it.
- **its environment wrappers are not used**: ``Timeout`` and ``TensorWrapper`` subclass
  ``gymnasium.Wrapper`` with the pre-1.0 step API, which gymnasium 1.x refuses ("Expected env to be
  a gymnasium.Env"); :mod:`adapters.tdmpc2.env` keeps upstream's ``DMControlWrapper`` (action
  rescaling to [-1, 1], action repeat 2, flat float32 observations) and does the time limit and the
  tensors itself.
- ``common.parser.parse_cfg`` needs a running Hydra app; :mod:`adapters.tdmpc2.config` derives the
  same fields from upstream's ``config.yaml`` and ``common.MODEL_SIZE``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types
from pathlib import Path
from typing import Any

from adapters.errors import MissingDependencyError

__all__ = ["UPSTREAM_COMMIT", "INSTALL_COMMANDS", "upstream_dir", "check_available", "import_upstream", "on_device"]

#: the upstream commit this family was verified with
UPSTREAM_COMMIT = "e9f5932"
#: what a user runs when TD-MPC2 is missing
INSTALL_COMMANDS = (
    "bash scripts/install_tdmpc2.sh (clones github.com/nicklashansen/tdmpc2 at "
    f"{UPSTREAM_COMMIT} into .deps/tdmpc2 and installs the tdmpc2 extra), or by hand: "
    "git clone https://github.com/nicklashansen/tdmpc2 && git -C tdmpc2 checkout "
    f"{UPSTREAM_COMMIT} && pip install 'era-harness[tdmpc2]' && export ERA_TDMPC2_DIR=$PWD/tdmpc2/tdmpc2"
)
ENV_VAR = "ERA_TDMPC2_DIR"
#: files of upstream's source folder this family uses
_REQUIRED = ("tdmpc2.py", "config.yaml", "common/world_model.py", "common/buffer.py", "envs/dmcontrol.py")
#: the upstream modules that build tensors on ``torch.device('cuda:0')``
_DEVICE_MODULES = ("tdmpc2", "common.buffer", "common.scale")
#: Python packages TD-MPC2 imports (module -> the extra that pins it)
_PACKAGES = ("tensordict", "torchrl", "omegaconf")
_PROJECT_ROOT = Path(__file__).resolve().parents[2]


def upstream_dir() -> Path:
    """The folder of TD-MPC2's sources (``$ERA_TDMPC2_DIR`` or ``.deps/tdmpc2/tdmpc2``)."""
    given = os.environ.get(ENV_VAR)
    return Path(given).expanduser() if given else _PROJECT_ROOT / ".deps" / "tdmpc2" / "tdmpc2"


def check_available() -> Path:
    """Check, without importing it, that TD-MPC2 and the packages it needs are there; raises
    ``MissingDependencyError`` with the install commands otherwise."""
    folder = upstream_dir()
    where = f"${ENV_VAR}={folder}" if os.environ.get(ENV_VAR) else f"{folder} (set ${ENV_VAR} to use another)"
    if not folder.is_dir():
        raise MissingDependencyError(
            f"TD-MPC2 is not installed: no folder {where}; it is not on PyPI, install it: {INSTALL_COMMANDS}"
        )
    missing = [name for name in _REQUIRED if not (folder / name).exists()]
    if missing:
        raise MissingDependencyError(
            f"{where} is not TD-MPC2's tdmpc2/ source folder (it lacks {', '.join(missing)}): point "
            f"${ENV_VAR} at the tdmpc2/ folder inside a clone, or install it: {INSTALL_COMMANDS}"
        )
    absent = [name for name in _PACKAGES if importlib.util.find_spec(name) is None]
    if absent:
        raise MissingDependencyError(
            f"TD-MPC2 needs {', '.join(absent)}, which is not installed: pip install 'era-harness[tdmpc2]'"
        )
    return folder


def import_upstream() -> types.SimpleNamespace:
    """Import TD-MPC2's modules from its folder (put on ``sys.path`` once); returns them by role."""
    folder = str(check_available())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    loaded = sys.modules.get("tdmpc2")
    if loaded is not None and Path(getattr(loaded, "__file__", "") or "").parent != Path(folder):
        raise MissingDependencyError(
            f"a module named tdmpc2 from {getattr(loaded, '__file__', '?')} is already imported, not the one in "
            f"{folder}: run TD-MPC2 trials in a fresh process"
        )
    return types.SimpleNamespace(
        agent=importlib.import_module("tdmpc2"),
        buffer=importlib.import_module("common.buffer"),
        scale=importlib.import_module("common.scale"),
        common=importlib.import_module("common"),
        math=importlib.import_module("common.math"),
        seed=importlib.import_module("common.seed"),
        trainer=importlib.import_module("trainer.online_trainer"),
        dmcontrol=importlib.import_module("envs.dmcontrol"),
        folder=Path(folder),
    )


class _TorchOnDevice(types.ModuleType):
    """``torch`` as upstream's device-bound modules see it: ``torch.device(...)`` is the trial's device
    and ``torch.cuda.mem_get_info`` is the trial device's free memory (none on the CPU)."""

    def __init__(self, device: Any) -> None:
        import torch

        super().__init__("torch")
        self._torch, self._device = torch, torch.device(device)
        cuda = types.SimpleNamespace(**{name: getattr(torch.cuda, name) for name in ("is_available", "manual_seed_all")})
        cuda.mem_get_info = self._mem_get_info
        self.cuda = cuda

    def __getattr__(self, name: str) -> Any:
        return getattr(self._torch, name)

    def device(self, *_args: Any, **_kwargs: Any) -> Any:
        return self._device

    def _mem_get_info(self, *_args: Any) -> tuple[int, int]:
        if self._device.type != "cuda":
            return 0, 0
        return self._torch.cuda.mem_get_info(self._device)


def on_device(device: Any) -> None:
    """Make upstream's device-bound modules build their tensors on ``device`` (see the module docstring)."""
    import_upstream()
    shim = _TorchOnDevice(device)
    for name in _DEVICE_MODULES:
        sys.modules[name].torch = shim
