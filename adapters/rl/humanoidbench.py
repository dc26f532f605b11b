"""HumanoidBench on this project's pinned stack, without editing the package.

HumanoidBench (github carlosferrazza/humanoid-bench) is not on PyPI, and upstream's wheel ships
neither its assets nor two of its sub-packages, so only an editable clone works. Its code was
written for gymnasium 0.29, mujoco 3.1, numpy 1 and an installed jax; on gymnasium 1.4,
mujoco 3.17, numpy 2 and no jax, four things break. :func:`import_humanoidbench` fixes the first
two from outside the package, once, when an ``hb:`` task is first used (never when ``adapters``
is imported); :class:`HumanoidBenchEnv` wraps each environment for the other two and for seeding:

1. ``import humanoid_bench`` imports jax through ``humanoid_bench/mjx/flax_to_torch.py``, which
   only the hierarchical reach policies use. Where jax is absent, a jax-free module takes that
   name first; its classes raise a clear error if anything calls them (no locomotion task does).
2. ``humanoid_bench/dmc_deps`` is an old copy of dm_control's named indexer that lists ``MjModel``
   fields mujoco 3.17 no longer has and calls ``np.array(key, copy=False)``, which numpy 2 refuses.
   ``humanoid_bench.env`` is pointed at dm_control's own ``dm_control.mujoco.index`` (the same
   API; seeded trajectories are identical either way, see ``docs/humanoidbench.md``).
3. Every id defaults to ``render_mode="rgb_array"``, which opens an OpenGL context in the
   constructor; :func:`make` passes ``render_mode=None`` unless rendering is asked for.
4. The tasks' ``render`` passes three arguments to gymnasium 1.x's ``MujocoRenderer.render``;
   the wrapper calls it with the one it takes.

Two tasks (``reach``, ``sit_hard``) also draw their reset from NumPy's *global* generator, so
``reset(seed=...)`` alone does not make them reproducible; the wrapper gives each environment its
own stream for those draws (see :class:`HumanoidBenchEnv`).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import subprocess
import sys
import types
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from adapters.errors import MissingDependencyError

__all__ = [
    "UPSTREAM",
    "UPSTREAM_COMMIT",
    "INSTALL_COMMANDS",
    "LOCOMOTION_TASKS",
    "SUPPORTED_IDS",
    "import_humanoidbench",
    "make",
    "source_info",
    "HumanoidBenchEnv",
]

UPSTREAM = "https://github.com/carlosferrazza/humanoid-bench.git"
#: the commit this project was verified with
UPSTREAM_COMMIT = "791405f"

#: what a user runs to install it (``--no-deps``: upstream's setup.py pins gymnasium 0.29.1,
#: mujoco 3.1.6, dm_control 1.0.20, torch 2.3.1 and jax, which would replace this project's pins)
INSTALL_COMMANDS = (
    f"git clone {UPSTREAM} && git -C humanoid-bench checkout {UPSTREAM_COMMIT} && "
    f"pip install --no-deps -e ./humanoid-bench  (or: bash scripts/install_humanoidbench.sh)"
)

#: the locomotion tasks this project supports on both robots (HumanoidBench's normalisation table)
LOCOMOTION_TASKS = (
    "walk", "stand", "run", "reach", "hurdle", "crawl", "maze", "sit_simple", "sit_hard",
    "balance_simple", "balance_hard", "stair", "slide", "pole",
)
ROBOTS = ("h1", "h1hand")
#: ``<robot>-<task>-v0`` for both robots and every locomotion task (other registered ids may work
#: with a full upstream tree, but are not tested here)
SUPPORTED_IDS = tuple(f"{robot}-{task}-v0" for robot in ROBOTS for task in LOCOMOTION_TASKS)

_WHY = (
    "it is not on PyPI and its wheel lacks its assets, so install an editable clone without its "
    "pinned dependencies"
)

#: files every supported HumanoidBench layout has (relative to the package folder)
_REQUIRED_FILES = ("__init__.py", "env.py", "tasks.py", "robots.py", "assets/envs")
_FLAX_MODULE = "humanoid_bench.mjx.flax_to_torch"
_BUNDLED_INDEX = "humanoid_bench.dmc_deps.dmc_index"


class HumanoidBenchLayoutError(MissingDependencyError):
    """HumanoidBench is importable but not in a layout the compatibility layer knows."""


def _install_hint() -> str:
    return f"{_WHY}: {INSTALL_COMMANDS}"


def _layout_error(problem: str) -> HumanoidBenchLayoutError:
    return HumanoidBenchLayoutError(
        f"HumanoidBench {problem}, which this project does not recognise (it supports upstream commit "
        f"{UPSTREAM_COMMIT}); reinstall it: {INSTALL_COMMANDS}"
    )


def package_dir() -> Path | None:
    """The folder of the importable ``humanoid_bench`` package, or ``None``."""
    spec = importlib.util.find_spec("humanoid_bench")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _check_layout(folder: Path) -> None:
    missing = [name for name in _REQUIRED_FILES if not (folder / name).exists()]
    if "assets/envs" in missing and not (folder / "assets").exists():
        raise _layout_error(
            f"at {folder} has no assets/ folder (upstream's wheel leaves them out: {_WHY})"
        )
    if missing:
        raise _layout_error(f"at {folder} lacks {', '.join(missing)}")


def _jax_free_flax_module() -> types.ModuleType:
    """A stand-in for ``humanoid_bench/mjx/flax_to_torch.py`` whose names fail only when used."""
    module = types.ModuleType(_FLAX_MODULE, "jax-free stand-in installed by adapters.rl.humanoidbench")

    def _needs_jax(*_args: Any, **_kwargs: Any) -> None:
        raise MissingDependencyError(
            "HumanoidBench's hierarchical reach policies (policy_type=reach_*) need jax, which is not "
            "installed: pip install jax, or use the flat locomotion tasks"
        )

    class _NeedsJax:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            _needs_jax()

    module.TorchModel = type("TorchModel", (_NeedsJax,), {})  # type: ignore[attr-defined]
    module.TorchPolicy = type("TorchPolicy", (_NeedsJax,), {})  # type: ignore[attr-defined]
    module.flax_to_torch = _needs_jax  # type: ignore[attr-defined]
    module.load_from_flax_ckpt = _needs_jax  # type: ignore[attr-defined]
    return module


@lru_cache(maxsize=1)
def import_humanoidbench() -> types.ModuleType:
    """Import HumanoidBench with the compatibility fixes applied; idempotent.

    Raises:
        MissingDependencyError: it is not installed, or not in a layout this layer knows (the
            message gives the install commands).
    """
    folder = package_dir()
    if folder is None:
        raise MissingDependencyError(f"HumanoidBench is not installed: {_install_hint()}")
    _check_layout(folder)
    if importlib.util.find_spec("jax") is None and (folder / "mjx" / "flax_to_torch.py").exists():
        sys.modules.setdefault(_FLAX_MODULE, _jax_free_flax_module())
    try:
        package = importlib.import_module("humanoid_bench")
        env_module = importlib.import_module("humanoid_bench.env")
    except ImportError as error:
        raise _layout_error(f"at {folder} failed to import ({error})") from error
    if not hasattr(env_module, "HumanoidEnv"):
        raise _layout_error(f"at {folder} has no humanoid_bench.env.HumanoidEnv")
    index = getattr(env_module, "index", None)
    if index is not None and getattr(index, "__name__", "") == _BUNDLED_INDEX:
        from dm_control.mujoco import index as dm_control_index

        env_module.index = dm_control_index
    return package


def registered_ids() -> list[str]:
    """Every Gymnasium id HumanoidBench registered (after :func:`import_humanoidbench`)."""
    return sorted(
        env_id for env_id, spec in gym.envs.registry.items()
        if str(spec.entry_point).startswith("humanoid_bench")
    )


def make(env_id: str, render_mode: str | None = None) -> "HumanoidBenchEnv":
    """``gym.make(env_id)`` for a HumanoidBench id, wrapped by :class:`HumanoidBenchEnv`."""
    import_humanoidbench()
    return HumanoidBenchEnv(gym.make(env_id, render_mode=render_mode))


def _git_commit(folder: Path) -> str | None:
    try:
        result = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def _editable(distribution: metadata.Distribution) -> bool:
    text = distribution.read_text("direct_url.json")
    if not text:
        return False
    try:
        return bool(json.loads(text).get("dir_info", {}).get("editable"))
    except (ValueError, AttributeError):
        return False


@lru_cache(maxsize=1)
def source_info() -> dict[str, Any]:
    """Which HumanoidBench is importable: path, git commit, version, install kind, source digest.

    An editable install reports upstream's unchanging version ``0.2``, so the path, the clone's
    commit and a digest of its Python sources are what identify the code that ran.
    """
    folder = package_dir()
    if folder is None:
        return {}
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.py")):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    info: dict[str, Any] = {"path": str(folder), "commit": _git_commit(folder),
                            "sources_sha256": digest.hexdigest()[:16]}
    try:
        distribution = metadata.distribution("humanoid_bench")
    except metadata.PackageNotFoundError:
        info["install"] = "on sys.path (not pip-installed)"
    else:
        info["version"] = distribution.version
        info["install"] = "editable" if _editable(distribution) else "pip"
    return info


def describe_source() -> str:
    """:func:`source_info` as one line, for provenance tables."""
    info = source_info()
    if not info:
        return "not installed"
    parts = [f"{k}={v}" for k, v in info.items() if v is not None]
    return ", ".join(parts)


# --------------------------------------------------------------------------------------------
# The environment wrapper
# --------------------------------------------------------------------------------------------


_LEGACY_STREAM = 0x4842  # separates the reset stream from the environment's own np_random


def _legacy_state(seed: int) -> Any:
    """A NumPy global-generator state derived from ``seed`` (what ``np.random.get_state`` returns)."""
    entropy = np.random.SeedSequence([int(seed), _LEGACY_STREAM]).generate_state(1)[0]
    return np.random.RandomState(entropy).get_state()


class HumanoidBenchEnv(gym.Wrapper):
    """A HumanoidBench environment with working ``render`` and fully seeded resets.

    - ``render()`` calls gymnasium 1.x's ``MujocoRenderer.render(render_mode)`` (the task's own
      ``render`` passes the camera as two extra arguments, which gymnasium 1.x refuses; the
      renderer already knows the camera from the environment's constructor).
    - ``reach`` and ``sit_hard`` draw their initial state from NumPy's global generator. During
      ``reset`` that generator is swapped for this environment's own stream, seeded with the
      environment by ``reset(seed=...)``, and swapped back after: resets become reproducible and
      neither disturb nor depend on other users of the global generator (SB3's replay sampling).
    """

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        self._legacy_state: Any = _legacy_state(0)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        if seed is not None:
            self._legacy_state = _legacy_state(seed)
        outer = np.random.get_state()
        np.random.set_state(self._legacy_state)
        try:
            return self.env.reset(seed=seed, options=options)
        finally:
            self._legacy_state = np.random.get_state()
            np.random.set_state(outer)

    def render(self) -> Any:
        base = self.env.unwrapped
        if base.render_mode is None:
            return None
        return base.mujoco_renderer.render(base.render_mode)
