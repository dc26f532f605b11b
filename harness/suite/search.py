"""A suite's ``search:`` block: which algorithm entry's settings are searched, over what space, on
which seeds, towards which objective, and the baseline the winner is compared with afterwards.

::

    search:
      algorithm: ppo-era          # the algorithms entry whose settings are searched
      baseline: ppo               # compared with the best sample on the suite's own `seeds`
      method: tpe                 # tpe (Optuna's TPE, through Ray Tune) | random
      samples: 6                  # how many settings to try
      seeds: [0, 1]               # each sample runs on these; the suite's `seeds` are held out
      objective: iqm              # iqm | mean of the final scores over seeds x tasks, maximised
      concurrent: 2               # samples at once (default: as many as the cluster's CPUs fit)
      seed: 0                     # the search's own seed (its sampler)
      space:
        entropy_per_dim: {uniform: [-1.5, 0.5]}
        learning_rate: {loguniform: [0.0001, 0.01]}
        n_epochs: {integer: [3, 10]}          # both ends included
        activation_fn: {choice: [tanh, relu]}

The search seeds and the held-out seeds must not overlap: the winner's score on the seeds it was
chosen on is the maximum of noisy estimates, biased upwards; only fresh seeds measure it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.suite.loading import Reader

__all__ = ["Param", "SearchSpec", "read_search", "METHODS", "METHOD_NAMES", "OBJECTIVES", "DISTRIBUTIONS"]

METHODS = ("tpe", "random")
#: how reports and ``era list`` name each method
METHOD_NAMES = {"tpe": "Optuna's TPE (through Ray Tune)", "random": "random sampling"}
OBJECTIVES = ("iqm", "mean")
DISTRIBUTIONS = ("uniform", "loguniform", "integer", "choice")
_FIELDS = ("algorithm", "baseline", "method", "samples", "seeds", "objective", "concurrent", "seed", "space")
_REQUIRED = ("algorithm", "baseline", "samples", "seeds", "space")


@dataclass(frozen=True)
class Param:
    """One searched setting: ``kind`` is one of :data:`DISTRIBUTIONS`; ``values`` its bounds
    ``(low, high)`` (both included for ``integer``) or its choices."""

    kind: str
    values: tuple[Any, ...]

    def tune_domain(self) -> Any:
        """The same distribution as a Ray Tune search-space domain (what Tune's searchers take)."""
        from ray import tune

        if self.kind == "uniform":
            return tune.uniform(*self.values)
        if self.kind == "loguniform":
            return tune.loguniform(*self.values)
        if self.kind == "integer":
            return tune.randint(self.values[0], self.values[1] + 1)  # Tune's upper bound is exclusive
        return tune.choice(list(self.values))

    def probes(self) -> tuple[Any, ...]:
        """Values that validation tries: the bounds, or every choice."""
        return self.values

    def plain(self) -> dict[str, list[Any]]:
        return {self.kind: list(self.values)}


@dataclass(frozen=True)
class SearchSpec:
    """A validated ``search:`` block (module docstring)."""

    algorithm: str
    baseline: str
    space: Mapping[str, Param]
    samples: int
    seeds: tuple[int, ...]
    method: str = "tpe"
    objective: str = "iqm"
    concurrent: int | None = None
    seed: int = 0

    def plain(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm, "baseline": self.baseline, "method": self.method,
            "samples": self.samples, "seeds": list(self.seeds), "objective": self.objective,
            "concurrent": self.concurrent, "seed": self.seed,
            "space": {key: param.plain() for key, param in self.space.items()},
        }

    def probe_settings(self) -> list[dict[str, Any]]:
        """Settings that together put every searched setting at each of its probe values (the
        first probe of the others alongside): what ``era list`` validates before a search runs."""
        first = {key: param.probes()[0] for key, param in self.space.items()}
        probes = [first]
        for key, param in self.space.items():
            probes += [{**first, key: value} for value in param.probes()[1:]]
        return probes


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _param(r: "Reader", at: tuple, value: Any) -> Param:
    shapes = "{uniform: [low, high]}, {loguniform: [low, high]}, {integer: [low, high]} or {choice: [a, b, ...]}"
    if not isinstance(value, dict) or len(value) != 1:
        raise r.fail(at, f"expected one distribution: {shapes}")
    (kind, values), = value.items()
    if kind not in DISTRIBUTIONS:
        raise r.fail((*at, kind), f"unknown distribution {kind!r}; use {shapes}")
    where = (*at, kind)
    if not isinstance(values, list) or not values:
        raise r.fail(where, f"expected a list, got {values!r}")
    if kind == "choice":
        r.json_value(where, values)
        if len({json.dumps(v, sort_keys=True) for v in values}) != len(values):
            raise r.fail(where, f"values are repeated in {values!r}; give each choice once")
        return Param(kind, tuple(values))
    if len(values) != 2:
        raise r.fail(where, f"expected [low, high], got {values!r}")
    low, high = values
    if kind == "integer":
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise r.fail(where, f"expected two integers [low, high], got {values!r}")
        if low > high:
            raise r.fail(where, f"low {low} is above high {high}")
        return Param(kind, (low, high))
    if not all(_number(v) for v in values):
        raise r.fail(where, f"expected two numbers [low, high], got {values!r}")
    if not low < high:
        raise r.fail(where, f"expected low < high, got {values!r}")
    if kind == "loguniform" and low <= 0:
        raise r.fail(where, f"a log-uniform range must be positive, got low {low}")
    return Param(kind, (float(low), float(high)))


def _label(r: "Reader", at: tuple, value: Any, labels: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in labels:
        raise r.fail(at, f"{value!r} is not one of the suite's algorithms ({', '.join(labels)})")
    return value


def read_search(r: "Reader", value: Any, algorithms: Sequence[Any], held_out: Sequence[int]) -> SearchSpec:
    """The ``search:`` block, checked against the suite's algorithm entries and held-out seeds."""
    where = ("search",)
    block = r.mapping(where, value, _FIELDS, _REQUIRED)
    labels = [a.label for a in algorithms]
    algorithm = _label(r, (*where, "algorithm"), block["algorithm"], labels)
    baseline = _label(r, (*where, "baseline"), block["baseline"], labels)
    if baseline == algorithm:
        raise r.fail((*where, "baseline"), "the baseline must be another algorithm entry than the searched one")
    entry = next(a for a in algorithms if a.label == algorithm)
    if entry.sweep:
        raise r.fail(("algorithms", algorithm, "sweep"),
                     "a searched algorithm cannot also sweep: move the swept settings into search.space")
    space_at = (*where, "space")
    space = block["space"]
    if not isinstance(space, dict) or not space:
        raise r.fail(space_at, "expected a non-empty mapping setting -> distribution")
    params = {}
    for key, item in space.items():
        if not isinstance(key, str):
            raise r.fail(space_at, f"setting names must be strings, got {key!r}")
        params[key] = _param(r, (*space_at, key), item)
    method = block.get("method", "tpe")
    if method not in METHODS:
        raise r.fail((*where, "method"), f"unknown search method {method!r}; use one of {', '.join(METHODS)}")
    objective = block.get("objective", "iqm")
    if objective not in OBJECTIVES:
        raise r.fail((*where, "objective"), f"unknown objective {objective!r}; use one of {', '.join(OBJECTIVES)}")
    seeds = _search_seeds(r, (*where, "seeds"), block["seeds"])
    overlap = sorted(set(seeds) & set(held_out))
    if overlap:
        raise r.fail((*where, "seeds"), f"seed(s) {overlap} are also the suite's held-out `seeds`: the final "
                                        f"comparison needs fresh seeds; give the search other seeds")
    concurrent = block.get("concurrent")
    return SearchSpec(
        algorithm=algorithm, baseline=baseline, space=params,
        samples=r.integer((*where, "samples"), block["samples"], 1), seeds=seeds, method=method,
        objective=objective,
        concurrent=r.integer((*where, "concurrent"), concurrent, 1) if concurrent is not None else None,
        seed=r.integer((*where, "seed"), block.get("seed", 0), 0),
    )


def _search_seeds(r: "Reader", at: tuple, value: Any) -> tuple[int, ...]:
    if isinstance(value, list) and value:
        seeds = tuple(r.integer((*at, i), s, 0) for i, s in enumerate(value))
        if len(set(seeds)) != len(seeds):
            raise r.fail(at, f"seeds are repeated in {list(seeds)}; give each seed once")
        return seeds
    raise r.fail(at, f"expected a non-empty list of seeds, got {value!r}")
