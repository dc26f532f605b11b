"""Answers from heavy libraries that validation needs, remembered on disk between processes.

Checking a suite asks torch, torchvision and stable-baselines3 a few questions: which keyword
arguments SB3's ``PPO`` takes and how they are annotated, whether torchvision's ``resnet18`` takes
32x32 images, whether ERA can pin an entropy floor for 10 classes. Importing those libraries costs
seconds, the answers change only when a library or this project's adapters change, and so a
function marked :func:`library_fact` computes its answer once and afterwards reads it from a small
JSON file. ``era list`` on a machine that has validated a suite before then imports no torch.

What makes the answers safe to keep:

- the key holds the function, its arguments, the installed versions of the libraries it names and
  a digest of every source file of the ``adapters`` package, so upgrading a library or editing an
  adapter asks again;
- only answers are kept, never errors: bad input is checked afresh every time, with the library's
  own message;
- arguments that are not plain data (a schedule given from Python) bypass the cache;
- a cache file that is unreadable or does not hold an answer is recomputed and replaced; a cache
  folder that cannot be written is not an error (the answer is just not kept).

The folder is ``$ERA_CACHE_DIR``, else ``$XDG_CACHE_HOME/era-harness``, else ``~/.cache/era-harness``;
``ERA_CACHE_DIR=off`` turns the cache off.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["library_fact", "cache_dir"]

F = TypeVar("F", bound=Callable[..., Any])
_ADAPTERS = Path(__file__).resolve().parent


def cache_dir() -> Path | None:
    """Where facts are kept; ``None`` when ``ERA_CACHE_DIR=off``."""
    chosen = os.environ.get("ERA_CACHE_DIR")
    if chosen:
        return None if chosen.lower() == "off" else Path(chosen) / "facts"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "era-harness" / "facts"


@functools.cache
def _adapters_digest() -> str:
    """A digest of the adapters' sources: an edited adapter may answer differently."""
    digest = hashlib.sha256()
    for path in sorted(_ADAPTERS.rglob("*.py")):
        digest.update(str(path.relative_to(_ADAPTERS)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@functools.cache
def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def _key(function: Callable[..., Any], packages: tuple[str, ...], args: tuple, kwargs: dict) -> str | None:
    try:
        call = json.dumps([args, kwargs], sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):  # not plain data: ask the library
        return None
    where = f"{function.__module__}.{function.__qualname__}"
    versions = {p: _version(p) for p in packages}
    text = json.dumps([where, call, versions, _adapters_digest()], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _read(path: Path) -> tuple[bool, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False, None
    if not isinstance(data, dict) or "answer" not in data:
        return False, None
    return True, data["answer"]


def _keep(path: Path, answer: Any) -> None:
    """Write the answer atomically (temp file, rename); a folder we cannot write is no error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"answer": answer}))
        os.replace(tmp, path)
    except OSError:
        pass


def library_fact(*packages: str) -> Callable[[F], F]:
    """Mark a function whose JSON answer depends only on its arguments, on the installed versions
    of ``packages`` and on the adapters' code; its answers are kept on disk (module docstring)."""

    def wrap(function: F) -> F:
        seen: dict[str, Any] = {}  # this process's answers: each file is read once

        @functools.wraps(function)
        def answer(*args: Any, **kwargs: Any) -> Any:
            folder = cache_dir()
            key = None if folder is None else _key(function, packages, args, kwargs)
            if key is None:
                return function(*args, **kwargs)
            if key in seen:
                return seen[key]
            path = folder / f"{key}.json"
            found, value = _read(path)
            if not found:
                value = json.loads(json.dumps(function(*args, **kwargs)))  # as a later read returns it
                _keep(path, value)
            seen[key] = value
            return value

        answer.uncached = function  # type: ignore[attr-defined]
        return answer  # type: ignore[return-value]

    return wrap
