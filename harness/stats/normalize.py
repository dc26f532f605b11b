"""Normalized scores: each benchmark's raw score mapped onto a common scale.

One table per benchmark ships as package data in ``harness/data/*.yaml`` with its sources:

- ``gym_mujoco``: ``(score - random) / (expert - random)`` (D4RL expert scores; random-policy scores
  for the v5 tasks measured by ``scripts/measure_random_scores.py``);
- ``dmc``: ``score / 1000`` (reward in [0, 1] over 1000 steps);
- ``humanoidbench``: ``(score - random) / (success - random)``;
- ``classification``: ``top-1 / 100``;
- ``llm``: no reference table; its tasks are reported on raw scores.

A task without a reference gets NaN, so that reports show it on raw scores instead of mixing it
into normalized aggregates.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, overload

import numpy as np

from adapters.errors import unknown_name

__all__ = [
    "BENCHMARKS",
    "Reference",
    "benchmark_of_task",
    "has_reference",
    "normalized_score",
    "reference",
    "reference_tables",
]

#: benchmark name -> data file (None: known benchmark without a reference table)
BENCHMARKS: dict[str, str | None] = {
    "gym_mujoco": "gym_mujoco.yaml",
    "dmc": "dmc.yaml",
    "humanoidbench": "humanoidbench.yaml",
    "classification": "classification.yaml",
    "llm": None,
}

#: other spellings a suite may use for a benchmark; ``auto`` means "infer from each task id",
#: ``none`` "report every task on raw scores"
_ALIASES: dict[str, str | None] = {
    "none": "none",
    "gym": "gym_mujoco",
    "mujoco": "gym_mujoco",
    "gymnasium": "gym_mujoco",
    "dm_control": "dmc",
    "hb": "humanoidbench",
    "vision": "classification",
    "auto": None,
}

#: task-id prefix -> benchmark (ids without a prefix are classification datasets)
_PREFIXES: dict[str, str] = {
    "gym": "gym_mujoco",
    "dmc": "dmc",
    "hb": "humanoidbench",
    "llm": "llm",
    "imagenet": "classification",
}


@dataclass(frozen=True)
class Reference:
    """``normalized = (score - low) / (high - low)`` for one task, with where the numbers come from."""

    low: float
    high: float
    source: str

    def apply(self, score: Any) -> Any:
        return (np.asarray(score, dtype=float) - self.low) / (self.high - self.low)


@lru_cache(maxsize=None)
def reference_tables() -> dict[str, dict]:
    """The shipped tables, by benchmark name (read once; package data, never downloaded)."""
    from importlib import resources

    import yaml

    data = resources.files("harness") / "data"
    tables = {}
    for name, filename in BENCHMARKS.items():
        if filename is not None:
            tables[name] = yaml.safe_load((data / filename).read_text())
    tables["gym_mujoco_random"] = yaml.safe_load((data / "gym_mujoco_random.yaml").read_text())
    return tables


def _canonical(benchmark: str | None) -> str | None:
    if benchmark is None:
        return None
    key = benchmark.strip().lower()
    if key in BENCHMARKS:
        return key
    if key in _ALIASES:
        return _ALIASES[key]
    raise unknown_name(
        "benchmark", benchmark, list(BENCHMARKS) + ["auto", "none"],
        hint="or leave the suite's benchmark empty to infer it from each task id",
    )


def benchmark_of_task(task: str) -> str:
    """The benchmark a task id belongs to: ``gym:Hopper-v5`` -> ``gym_mujoco``, ``cifar10`` -> ``classification``."""
    prefix, sep, _ = task.partition(":")
    if not sep:
        return "classification"
    return _PREFIXES.get(prefix, prefix)


def _task_key(task: str) -> str:
    """``gym:Hopper-v5`` -> ``Hopper-v5``; ``imagenet:/data/in1k`` -> ``imagenet``; ``cifar10`` -> ``cifar10``."""
    prefix, sep, rest = task.partition(":")
    if not sep:
        return task
    return prefix if prefix == "imagenet" else rest


def _gym_reference(key: str) -> Reference | None:
    tables = reference_tables()
    entry = tables["gym_mujoco"]["tasks"].get(key)
    if entry is None:
        return None
    random = entry.get("random")
    if random is None:
        measured = tables["gym_mujoco_random"].get("tasks", {}).get(key)
        if measured is None:
            return None
        random = measured["mean"]
    sources = tables["gym_mujoco"]["sources"]
    source = f"random: {sources[entry['random_source']]}; expert: {sources[entry['expert_source']]}"
    return Reference(float(random), float(entry["expert"]), source)


def _hb_reference(key: str) -> Reference | None:
    table = reference_tables()["humanoidbench"]
    robot, _, rest = key.partition("-")
    name = rest.rsplit("-v", 1)[0]
    if key not in table["random"] or name not in table["success"]:
        return None
    source = f"success: {table['sources']['success']}; random: {table['sources']['random']}"
    return Reference(float(table["random"][key]), float(table["success"][name]), source)


def reference(benchmark: str | None, task: str) -> Reference | None:
    """The reference scores of ``task`` (None if it has none).

    ``benchmark`` selects the table (``None`` or ``auto``: inferred from the task id; ``none``: no
    table); a task of another benchmark than the one named has no reference there.
    """
    name = _canonical(benchmark) or benchmark_of_task(task)
    if name == "none" or name != benchmark_of_task(task):
        return None
    key = _task_key(task)
    if name == "gym_mujoco":
        return _gym_reference(key)
    if name == "humanoidbench":
        return _hb_reference(key)
    if name == "dmc":
        table = reference_tables()["dmc"]
        return Reference(0.0, float(table["max_return"]), table["sources"]["max_return"])
    if name == "classification":
        table = reference_tables()["classification"]
        return Reference(0.0, float(table["max_score"]), table["sources"]["max_score"])
    return None  # llm, or a prefix no benchmark claims


def has_reference(benchmark: str | None, task: str) -> bool:
    """Whether ``task`` can be normalized; an unknown benchmark name raises ``UnknownNameError``."""
    return reference(benchmark, task) is not None


@overload
def normalized_score(benchmark: str | None, task: str, score: float) -> float: ...
@overload
def normalized_score(benchmark: str | None, task: str, score: np.ndarray) -> np.ndarray: ...


def normalized_score(benchmark, task, score):
    """``score`` on the benchmark's normalized scale; NaN where ``task`` has no reference.

    Accepts a number (returns a float) or an array (returns an array of the same shape).
    """
    ref = reference(benchmark, task)
    values = np.asarray(score, dtype=float)
    out = np.full(values.shape, np.nan) if ref is None else ref.apply(values)
    return float(out) if np.ndim(score) == 0 else out
