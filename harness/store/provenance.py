"""Where a result came from: the code version and the versions of the packages that ran it.

Style guide #9: every row can be traced to its code and package versions. The trainable records
these on the worker that ran the trial (a cluster's nodes may differ from the driver).
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from functools import lru_cache
from importlib import metadata

__all__ = ["code_version", "package_versions", "environment"]

#: distributions whose versions change results
PACKAGES = (
    "era-harness", "torch", "torchvision", "numpy", "stable-baselines3", "gymnasium", "mujoco",
    "dm-control", "ray", "pandas", "scikit-learn", "transformers", "trl", "humanoid-bench",
)


@lru_cache(maxsize=1)
def code_version() -> str:
    """``<package version>+g<commit>[.dirty]`` from the checkout holding this code, else the version."""
    from harness import __version__, project_root

    root = project_root()
    if root is None:
        return __version__
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return __version__
        status = subprocess.run(
            # generated reports are outputs, not code: rewriting one does not make the code dirty
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)reports"],
            capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return __version__
    dirty = ".dirty" if status.stdout.strip() else ""
    return f"{__version__}+g{commit.stdout.strip()[:12]}{dirty}"


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    """Installed versions of the packages in ``PACKAGES`` (absent ones are left out) and Python's."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def environment(task: str | None = None, device: str | None = None) -> dict[str, object]:
    """What the trainable records about the process that ran a trial (the code version comes from
    the driver, which shipped the code: a worker's copy may not be a git checkout).

    ``device`` (a trial's ``TrialSpec.device``) is recorded as what it resolves to in this process,
    e.g. ``cuda:0 (NVIDIA H200)``: whether a trial that asked Ray for a GPU got one.

    For a HumanoidBench task, ``packages["humanoid-bench"]`` says which copy ran: an editable
    install reports upstream's unchanging version 0.2, so its path, git commit and a digest of its
    sources are recorded instead.
    """
    packages = dict(package_versions())
    if task is not None and str(task).startswith("hb:"):
        from adapters.rl.humanoidbench import describe_source

        packages["humanoid-bench"] = describe_source()
    found: dict[str, object] = {"hostname": socket.gethostname(), "pid": os.getpid(), "packages": packages}
    if device is not None:
        from adapters.device import device_name

        found["device"] = device_name(device)
    return found
