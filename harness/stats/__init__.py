"""Scores to statistics: normalization against each benchmark's references (``normalize``), the
vectorized stratified bootstrap (``bootstrap``), rliable's interval estimates (``intervals``) and
ERA against its baseline with the verdict rule (``compare``), the last two re-exported here.

The re-exports load on first use, so that reading a constant of ``bootstrap`` (``era report``'s
options) does not import scipy and rliable."""

from __future__ import annotations

import importlib
from typing import Any

_REEXPORTED = ("harness.stats.intervals", "harness.stats.compare")


def __getattr__(name: str) -> Any:
    for module_name in _REEXPORTED:
        module = importlib.import_module(module_name)
        if name in module.__all__:
            return getattr(module, name)
    raise AttributeError(f"module 'harness.stats' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *(n for m in _REEXPORTED for n in importlib.import_module(m).__all__)})
