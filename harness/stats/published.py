"""Published learning curves as references: what an algorithm's authors measured at a given step.

``harness/data/published/<source>/`` holds curves as published with an algorithm's code (for now
TD-MPC2's: TD-MPC2, SAC and DreamerV3 on the DMC dog and humanoid tasks), unmodified, with a
``SOURCE.yaml`` that says where they come from, what ``step`` counts and which era-harness
algorithms each curve may sit beside. :func:`published_at` reads one curve at one step: each seed's
return linearly interpolated between its two nearest published points, then the mean over seeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

__all__ = ["PublishedScore", "published_sources", "published_at"]


@dataclass(frozen=True)
class PublishedScore:
    """One published curve read at one step: the mean over its seeds and their spread."""

    source: str
    algorithm: str
    task: str
    step: int
    mean: float
    seed_min: float
    seed_max: float
    seeds: int


def _folder() -> Any:
    from importlib import resources

    return resources.files("harness") / "data" / "published"


@lru_cache(maxsize=None)
def published_sources() -> dict[str, dict[str, Any]]:
    """Source name -> its ``SOURCE.yaml`` (package data, read once)."""
    import yaml

    sources = {}
    for entry in _folder().iterdir():
        if entry.is_dir() and (entry / "SOURCE.yaml").is_file():
            sources[entry.name] = yaml.safe_load((entry / "SOURCE.yaml").read_text())
    return sources


@lru_cache(maxsize=None)
def _curve(source: str, algorithm: str, task: str) -> dict[int, tuple[np.ndarray, np.ndarray]] | None:
    """Seed -> (steps, returns) of one published CSV, or ``None`` if there is none."""
    import io

    import pandas as pd

    path = _folder() / source / algorithm / f"{task}.csv"
    if not path.is_file():
        return None
    frame = pd.read_csv(io.StringIO(path.read_text()))
    curves = {}
    for seed, rows in frame.groupby("seed"):
        rows = rows.sort_values("step")
        curves[int(seed)] = (rows["step"].to_numpy(np.float64), rows["reward"].to_numpy(np.float64))
    return curves


def published_at(algo: str, task: str, step: int) -> list[PublishedScore]:
    """Every published curve that may sit beside ``algo`` on ``task`` (an era-harness task id such as
    ``dmc:dog-run``), read at ``step``; seeds whose curve does not reach ``step`` are left out."""
    prefix, _, name = str(task).partition(":")
    if prefix != "dmc":
        return []
    found = []
    for source, meta in published_sources().items():
        for published, beside in (meta.get("algorithms") or {}).items():
            if algo not in (beside or []):
                continue
            curves = _curve(source, published, name)
            if not curves:
                continue
            values = [float(np.interp(step, steps, returns)) for steps, returns in curves.values()
                      if steps[0] <= step <= steps[-1]]
            if values:
                found.append(PublishedScore(source, published, task, int(step), float(np.mean(values)),
                                            float(min(values)), float(max(values)), len(values)))
    return found
