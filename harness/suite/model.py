"""A suite and its trials as small typed objects (``Suite``, ``Variant``, ``Trial``, ...)."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.published import PublishedSettings
from adapters.trial import TrialSpec
from harness.suite.search import SearchSpec
from harness.suite.yaml_lines import Located

__all__ = ["Budget", "Resources", "AlgorithmEntry", "TaskEntry", "Variant", "Suite", "Trial", "trial_hash"]


@dataclass(frozen=True)
class Budget:
    """An amount per budget unit; ``{"*": n}`` when the suite gave one number for every unit."""

    amounts: Mapping[str, int]

    def for_unit(self, unit: str) -> int | None:
        return self.amounts.get(unit, self.amounts.get("*"))

    def plain(self) -> int | dict[str, int]:
        return self.amounts["*"] if "*" in self.amounts else dict(self.amounts)


@dataclass(frozen=True)
class Resources:
    """What one trial asks Ray for. Fractions below 1 share a device (Ray's rule: above 1, whole)."""

    cpus: float = 1.0
    gpus: float = 0.0

    def tune(self) -> dict[str, float]:
        return {"cpu": self.cpus, "gpu": self.gpus}

    def plain(self) -> dict[str, float]:
        return {"cpus": self.cpus, "gpus": self.gpus}


@dataclass(frozen=True)
class AlgorithmEntry:
    """One ``algorithms:`` entry: a label, its registry algorithm, settings and sweep; with
    ``settings_from``, what it takes from that source per task (``published``)."""

    label: str
    algo: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    sweep: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    tasks: tuple[str, ...] | None = None
    settings_from: str | None = None
    published: Mapping[str, PublishedSettings] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskEntry:
    """One task and its overrides (``None``: use the suite's value)."""

    task: str
    budget: Budget | None = None
    eval_every: Budget | None = None
    eval_episodes: int | None = None
    resources: Resources | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Variant:
    """An algorithm entry with one value per swept setting: a named line in the results."""

    name: str
    label: str
    algo: str
    settings: Mapping[str, Any]
    sweep: Mapping[str, Any]
    tasks: tuple[str, ...] | None
    published: Mapping[str, PublishedSettings] = field(default_factory=dict)

    def settings_for(self, task: str) -> dict[str, Any]:
        """The settings this variant takes from its ``settings_from`` source for ``task`` (``{}``
        without one): the base that every setting of the suite overrides."""
        published = self.published.get(task)
        return dict(published.taken) if published is not None else {}


@dataclass(frozen=True)
class Suite:
    """A validated suite file."""

    name: str
    path: Path
    algorithms: tuple[AlgorithmEntry, ...]
    tasks: tuple[TaskEntry, ...]
    seeds: tuple[int, ...]
    budget: Budget | None = None
    eval_every: Budget | None = None
    eval_episodes: int | None = None  # None: the family's default for the task (adapters.registry)
    resources: Resources = Resources()
    settings: Mapping[str, Any] = field(default_factory=dict)
    benchmark: str = "auto"
    paper: str | None = None
    description: str = ""
    sources: tuple[str, ...] = ()
    max_concurrent: int | None = None
    max_failures: int = 1
    #: a ``search:`` block: the searched entry's trials come from the search, not from ``seeds``
    search: SearchSpec | None = None
    located: Located | None = field(default=None, repr=False, compare=False)

    def variants(self) -> list[Variant]:
        """Each algorithm entry, expanded over the cartesian product of its sweep values."""
        out = []
        for entry in self.algorithms:
            keys = list(entry.sweep)
            for values in itertools.product(*(entry.sweep[k] for k in keys)):
                chosen = dict(zip(keys, values))
                name = entry.label
                if chosen:
                    name += "[" + ",".join(f"{k}={_fmt(v)}" for k, v in chosen.items()) + "]"
                out.append(
                    Variant(name, entry.label, entry.algo, {**entry.settings, **chosen}, chosen,
                            entry.tasks, entry.published)
                )
        return out

    def plain(self) -> dict[str, Any]:
        """The suite as plain data (``suite.json``, read by reports)."""
        return {
            "name": self.name,
            "description": self.description,
            "source_file": str(self.path),
            "benchmark": self.benchmark,
            "paper": self.paper,
            "sources": list(self.sources),
            "algorithms": [
                {"label": a.label, "algo": a.algo, "settings": dict(a.settings),
                 "sweep": {k: list(v) for k, v in a.sweep.items()},
                 "tasks": list(a.tasks) if a.tasks is not None else None,
                 "settings_from": a.settings_from,
                 "published": {task: p.plain() for task, p in a.published.items()}}
                for a in self.algorithms
            ],
            "variants": [
                {"algo": v.name, "base_algo": v.algo, "label": v.label, "settings": dict(v.settings),
                 "sweep": dict(v.sweep)}
                for v in self.variants()
            ],
            "tasks": [t.task for t in self.tasks],
            "task_overrides": {
                t.task: _drop_none({
                    "budget": t.budget.plain() if t.budget else None,
                    "eval_every": t.eval_every.plain() if t.eval_every else None,
                    "eval_episodes": t.eval_episodes,
                    "resources": t.resources.plain() if t.resources else None,
                    "settings": dict(t.settings) or None,
                })
                for t in self.tasks
            },
            "seeds": list(self.seeds),
            "budget": self.budget.plain() if self.budget else None,
            "eval": {"every": self.eval_every.plain() if self.eval_every else None,
                     "episodes": self.eval_episodes},
            "resources": self.resources.plain(),
            "settings": dict(self.settings),
            "max_concurrent": self.max_concurrent,
            "max_failures": self.max_failures,
            **({"search": self.search.plain()} if self.search is not None else {}),
        }


@dataclass(frozen=True)
class Trial:
    """One expanded trial: the spec the adapters run, plus what the harness tracks about it."""

    trial_id: str
    config_hash: str
    suite: str
    variant: str
    spec: TrialSpec
    unit: str
    resources: Resources
    sweep: Mapping[str, Any]

    @property
    def base_algo(self) -> str:
        return self.spec.algo

    @property
    def label(self) -> str:
        """Short human name: ``variant task seed N``."""
        return f"{self.variant} {self.spec.task} seed {self.spec.seed}"

    def to_dict(self) -> dict[str, Any]:
        """Plain, picklable data (what Ray ships to the trainable); :meth:`from_dict` reads it back."""
        return {
            "trial_id": self.trial_id,
            "config_hash": self.config_hash,
            "suite": self.suite,
            "variant": self.variant,
            "unit": self.unit,
            "resources": self.resources.plain(),
            "sweep": dict(self.sweep),
            "spec": self.spec.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Trial":
        """The trial of :meth:`to_dict`'s data (other keys, such as Tune's ``resume_from``, are ignored)."""
        return cls(
            trial_id=data["trial_id"],
            config_hash=data["config_hash"],
            suite=data["suite"],
            variant=data["variant"],
            spec=TrialSpec.from_dict(data["spec"]),
            unit=data["unit"],
            resources=Resources(**data["resources"]),
            sweep=dict(data["sweep"]),
        )

    @classmethod
    def single(cls, spec: TrialSpec, suite: str) -> "Trial":
        """One trial outside any suite (``era trial``): the algorithm is its own variant."""
        from adapters.registry import budget_unit

        unit = budget_unit(spec.algo)
        digest = trial_hash(spec, unit)
        return cls(digest[:12], digest, suite, spec.algo, spec, unit, Resources(), {})


def _fmt(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _drop_none(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


def trial_hash(spec: TrialSpec, unit: str) -> str:
    """SHA-256 of everything that determines a trial's results (not where it runs: no device)."""
    payload = {
        "algo": spec.algo, "task": spec.task, "seed": spec.seed, "budget": spec.budget,
        "unit": unit, "eval_every": spec.eval_every, "eval_episodes": spec.eval_episodes,
        "settings": spec.settings,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()
