"""era-harness: suites of ERA-vs-baseline trials, run with Ray Tune, reported with rliable.

Sub-packages, each one job: ``suite`` (the YAML schema and its expansion into trials), ``run``
(the Ray Tune executor), ``store`` (the results folder and provenance), ``stats`` (normalization
and interval estimates), ``report`` (markdown, JSON and figures), ``cluster`` (Ray Jobs), ``cli``
(the ``era`` command). The harness knows the adapters only through ``adapters.registry`` and the
trial contract (``adapters.trial``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from adapters import __version__

__all__ = ["__version__", "project_root"]


@lru_cache(maxsize=1)
def project_root() -> Path | None:
    """The source checkout this code runs from (it holds ``pyproject.toml``), or ``None`` when the
    packages are installed elsewhere (a wheel, or a cluster's shipped working dir without one)."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() and (root / "adapters").is_dir() else None
