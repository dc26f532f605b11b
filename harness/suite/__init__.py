"""Suites: a YAML file naming algorithms x tasks x seeds, validated on load, expanded into trials.

The shape (every field is checked; unknown ones are refused)::

    name: smoke                      # also the default results folder: results/<name>/
    benchmark: auto                  # normalization table: gym_mujoco | dmc | humanoidbench |
                                     #   classification | llm | auto (infer per task, default) | none
    paper: continuous_control.ppo    # optional: entry of harness/data/paper_results.yaml
    sources: ["where the hyperparameters come from"]
    algorithms:                      # label -> block (label = registry name unless `algo:` is set)
      ppo: {settings: {n_steps: 256}}
      ppo-era:
        settings: {entropy_per_dim: -0.5}
        sweep: {entropy_per_dim: [-1.0, -0.5, 0.0]}   # one variant per value
        tasks: [gym:Pendulum-v1]     # optional: only these of the suite's tasks
    tasks:                           # a list, or task -> overrides (the rl-baselines3-zoo shape)
      gym:Pendulum-v1: {budget: 4000, settings: {learning_rate: 0.001}}
      digits: {budget: {epochs: 2}}
    seeds: 3                         # a count (0..N-1) or a list
    budget: {steps: 2000, epochs: 1} # or one number; per task overridable
    eval: {every: {steps: 500, epochs: 1}, episodes: 5}
    resources: {cpus: 1, gpus: 0}    # per trial; fractions allowed
    settings: {}                     # settings every algorithm starts from
    max_concurrent: 4                # optional
    max_failures: 1                  # retries of a failing trial (from its last checkpoint)

Settings merge shallowly, later wins: suite ``settings`` < task ``settings`` < algorithm
``settings`` < the variant's sweep value. A variant is named ``label[key=value,...]``.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from adapters.errors import ConfigError, EraError, MissingDependencyError
from adapters.trial import TrialSpec
from harness.suite.yaml_lines import DuplicateKey, Located, load_located
from harness.errors import SuiteError

__all__ = [
    "Budget",
    "Resources",
    "AlgorithmEntry",
    "TaskEntry",
    "Variant",
    "Suite",
    "Trial",
    "load_suite",
    "expand",
    "check_trials",
    "load_and_expand",
    "trial_hash",
]

UNITS = ("steps", "epochs")
_TOP_FIELDS = (
    "name", "description", "benchmark", "paper", "sources", "algorithms", "tasks", "seeds",
    "budget", "eval", "resources", "settings", "max_concurrent", "max_failures",
)
_REQUIRED = ("name", "algorithms", "tasks", "seeds")
_ALGO_FIELDS = ("algo", "settings", "sweep", "tasks")
_TASK_FIELDS = ("budget", "eval", "resources", "settings")
_EVAL_FIELDS = ("every", "episodes")
_RESOURCE_FIELDS = ("cpus", "gpus")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
#: benchmark values that are not normalization tables: infer per task / no normalization
_NO_TABLE = ("auto", "none")


# --------------------------------------------------------------------------- typed objects
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
    """One ``algorithms:`` entry: a label, its registry algorithm, settings and sweep."""

    label: str
    algo: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    sweep: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    tasks: tuple[str, ...] | None = None


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
    eval_episodes: int | None = None  # None: the task's benchmark default (adapters.rl.protocol)
    resources: Resources = Resources()
    settings: Mapping[str, Any] = field(default_factory=dict)
    benchmark: str = "auto"
    paper: str | None = None
    description: str = ""
    sources: tuple[str, ...] = ()
    max_concurrent: int | None = None
    max_failures: int = 1
    located: Located | None = field(default=None, repr=False, compare=False)

    @property
    def normalization(self) -> str | None:
        """What ``harness.stats.normalize.normalized_score`` takes: a table, ``None`` to infer."""
        return None if self.benchmark == "auto" else self.benchmark

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
                            entry.tasks)
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
                 "tasks": list(a.tasks) if a.tasks is not None else None}
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

    def config(self) -> dict[str, Any]:
        """Plain, picklable data for Ray (the trainable rebuilds the spec from it)."""
        spec = self.spec
        return {
            "trial_id": self.trial_id,
            "config_hash": self.config_hash,
            "suite": self.suite,
            "variant": self.variant,
            "unit": self.unit,
            "resources": self.resources.plain(),
            "sweep": dict(self.sweep),
            "spec": {
                "algo": spec.algo, "task": spec.task, "seed": spec.seed, "budget": spec.budget,
                "eval_every": spec.eval_every, "eval_episodes": spec.eval_episodes,
                "settings": dict(spec.settings), "device": spec.device,
            },
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Trial":
        return cls(
            trial_id=config["trial_id"],
            config_hash=config["config_hash"],
            suite=config["suite"],
            variant=config["variant"],
            spec=TrialSpec(**config["spec"]),
            unit=config["unit"],
            resources=Resources(**config["resources"]),
            sweep=dict(config["sweep"]),
        )


# --------------------------------------------------------------------------- helpers
def _fmt(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _drop_none(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


def _dotted(path: Sequence[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)


def trial_hash(spec: TrialSpec, unit: str) -> str:
    """SHA-256 of everything that determines a trial's results (not where it runs: no device)."""
    payload = {
        "algo": spec.algo, "task": spec.task, "seed": spec.seed, "budget": spec.budget,
        "unit": unit, "eval_every": spec.eval_every, "eval_episodes": spec.eval_episodes,
        "settings": spec.settings,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class _Reader:
    """Reads one suite file's data, raising ``SuiteError`` with file, line and field."""

    def __init__(self, path: Path, located: Located) -> None:
        self.path = path
        self.located = located

    def fail(self, where: Sequence[Any], message: str) -> SuiteError:
        line = self.located.line(tuple(where))
        place = f"{self.path}:{line}" if line else str(self.path)
        return SuiteError(f"{place}: {_dotted(where)}: {message}")

    def mapping(self, where, value, allowed: Sequence[str], required: Sequence[str] = ()) -> dict:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping with fields {', '.join(allowed)}; got {_kind(value)}")
        for key in value:
            if not isinstance(key, str):
                raise self.fail(where, f"field names must be strings, got {key!r}")
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise self.fail(
                    (*where, key), f"unknown field {key!r}{hint}; allowed fields are {', '.join(allowed)}"
                )
        for key in required:
            if key not in value or value[key] is None:
                raise self.fail(where, f"missing required field {key!r}")
        return value

    def integer(self, where, value, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(where, f"expected an integer >= {minimum}, got {_kind(value)} {value!r}")
        if value < minimum:
            raise self.fail(where, f"expected an integer >= {minimum}, got {value}")
        return value

    def string(self, where, value) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, f"expected a non-empty string, got {_kind(value)} {value!r}")
        return value

    def settings(self, where, value) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping of setting -> value, got {_kind(value)}")
        for key, item in value.items():
            if not isinstance(key, str):
                raise self.fail(where, f"setting names must be strings, got {key!r}")
            self.json_value((*where, key), item)
        return dict(value)

    def json_value(self, where, value) -> None:
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            raise self.fail(
                where, f"{_kind(value)} {value!r} is not plain data: use numbers, strings, booleans, "
                       f"lists and mappings (quote dates)"
            ) from None

    def budget(self, where, value, what: str) -> Budget:
        if isinstance(value, dict):
            self.mapping(where, value, UNITS)
            if not value:
                raise self.fail(where, f"expected {what} as a number or a mapping of {' / '.join(UNITS)}")
            return Budget({u: self.integer((*where, u), v, 1) for u, v in value.items()})
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(
                where, f"expected {what} as a positive integer or a mapping like "
                       f"{{steps: 100000, epochs: 200}}, got {_kind(value)} {value!r}"
            )
        return Budget({"*": self.integer(where, value, 1)})

    def resources(self, where, value) -> Resources:
        value = self.mapping(where, value, _RESOURCE_FIELDS)
        amounts = {}
        for key in _RESOURCE_FIELDS:
            if key not in value:
                continue
            amount = value[key]
            wanted = "a positive number" if key == "cpus" else "a number >= 0"
            if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not math.isfinite(amount):
                raise self.fail((*where, key), f"expected {wanted}, got {_kind(amount)} {amount!r}")
            if amount < 0 or (key == "cpus" and amount == 0):
                raise self.fail((*where, key), f"expected {wanted}, got {amount}")
            if amount > 1 and amount != int(amount):
                raise self.fail((*where, key), f"Ray needs whole numbers above 1 (fractions only below 1), got {amount}")
            amounts[key] = float(amount)
        return Resources(**amounts)

    def eval_block(self, where, value) -> tuple[Budget | None, int | None]:
        value = self.mapping(where, value, _EVAL_FIELDS)
        every = self.budget((*where, "every"), value["every"], "eval.every") if value.get("every") is not None else None
        episodes = self.integer((*where, "episodes"), value["episodes"], 1) if "episodes" in value else None
        return every, episodes


# --------------------------------------------------------------------------- loading
def load_suite(path: str | Path) -> Suite:
    """Parse and check a suite file's schema (families are consulted later, in ``check_trials``)."""
    path = Path(path)
    if not path.is_file():
        raise SuiteError(f"{path}: no such suite file; suites live in suites/*.yaml")
    try:
        located = load_located(path)
    except DuplicateKey as error:
        raise SuiteError(f"{path}:{error.line}: {error}; give each field once") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise SuiteError(f"{path}{line}: not valid YAML: {problem}") from None
    return _parse(_Reader(path, located), located.data)


def _parse(r: _Reader, data: Any) -> Suite:
    if data is None:
        raise r.fail((), f"the file is empty; a suite needs at least {', '.join(_REQUIRED)}")
    data = r.mapping((), data, _TOP_FIELDS, _REQUIRED)

    name = r.string(("name",), data["name"])
    if not _NAME.match(name):
        raise r.fail(("name",), f"{name!r} is not a valid suite name: use letters, digits and _ . + - "
                                f"(it names the results folder)")
    benchmark = _benchmark(r, data.get("benchmark"))
    paper = _paper(r, data["paper"]) if data.get("paper") is not None else None
    sources = data.get("sources") or ()
    if isinstance(sources, str):
        sources = (sources,)
    if not isinstance(sources, (list, tuple)) or not all(isinstance(s, str) for s in sources):
        raise r.fail(("sources",), "expected a string or a list of strings citing where settings come from")

    tasks = _tasks(r, data["tasks"])
    algorithms = _algorithms(r, data["algorithms"], [t.task for t in tasks])
    seeds = _seeds(r, data["seeds"])
    budget = r.budget(("budget",), data["budget"], "budget") if data.get("budget") is not None else None
    every, episodes = r.eval_block(("eval",), data["eval"]) if data.get("eval") is not None else (None, None)
    resources = r.resources(("resources",), data["resources"]) if data.get("resources") is not None else Resources()
    max_concurrent = (
        r.integer(("max_concurrent",), data["max_concurrent"], 1)
        if data.get("max_concurrent") is not None else None
    )
    max_failures = (
        r.integer(("max_failures",), data["max_failures"], 0) if data.get("max_failures") is not None else 1
    )
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise r.fail(("description",), f"expected a string, got {_kind(description)}")
    return Suite(
        name=name, path=r.path, algorithms=tuple(algorithms), tasks=tuple(tasks), seeds=seeds,
        budget=budget, eval_every=every, eval_episodes=episodes, resources=resources,
        settings=r.settings(("settings",), data.get("settings")), benchmark=benchmark, paper=paper,
        description=description, sources=tuple(sources), max_concurrent=max_concurrent,
        max_failures=max_failures, located=r.located,
    )


def _benchmark(r: _Reader, value: Any) -> str:
    if value is None:
        return "auto"
    try:
        from harness.stats.normalize import BENCHMARKS

        tables = list(BENCHMARKS)
    except ImportError:  # the normalize module is optional for suites
        tables = ["gym_mujoco", "dmc", "humanoidbench", "classification"]
    allowed = tables + list(_NO_TABLE)
    if not isinstance(value, str) or value not in allowed:
        raise r.fail(("benchmark",), f"unknown benchmark {value!r}; allowed: {', '.join(allowed)}")
    return value


def _paper(r: _Reader, value: Any) -> str:
    key = r.string(("paper",), value)
    from importlib import resources

    data_file = resources.files("harness") / "data" / "paper_results.yaml"
    if not data_file.is_file():
        return key
    node: Any = yaml.safe_load(data_file.read_text())
    walked = []
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            known = ", ".join(".".join([*walked, k]) for k in node) if isinstance(node, dict) else "none"
            raise r.fail(("paper",), f"{key!r} is not an entry of harness/data/paper_results.yaml; "
                                     f"entries there: {known}")
        node = node[part]
        walked.append(part)
    return key


def _tasks(r: _Reader, value: Any) -> list[TaskEntry]:
    where = ("tasks",)
    if isinstance(value, list):
        items = [(r.string((*where, i), task), None, (*where, i)) for i, task in enumerate(value)]
    elif isinstance(value, dict):
        items = [(task, overrides, (*where, task)) for task, overrides in value.items()]
    else:
        raise r.fail(where, f"expected a list of task ids, or a mapping task id -> overrides; got {_kind(value)}")
    if not items:
        raise r.fail(where, "empty matrix: no tasks; list at least one task id (e.g. gym:Pendulum-v1, digits)")
    seen: set[str] = set()
    out = []
    for task, overrides, at in items:
        if not isinstance(task, str) or not task.strip():
            raise r.fail(at, f"a task id must be a non-empty string, got {task!r}")
        if task in seen:
            raise r.fail(at, f"task {task!r} is listed twice")
        seen.add(task)
        if overrides is None:
            out.append(TaskEntry(task))
            continue
        block = r.mapping(at, overrides, _TASK_FIELDS)
        every, episodes = r.eval_block((*at, "eval"), block["eval"]) if block.get("eval") is not None else (None, None)
        out.append(TaskEntry(
            task,
            budget=r.budget((*at, "budget"), block["budget"], "budget") if block.get("budget") is not None else None,
            eval_every=every,
            eval_episodes=episodes,
            resources=r.resources((*at, "resources"), block["resources"]) if block.get("resources") is not None else None,
            settings=r.settings((*at, "settings"), block.get("settings")),
        ))
    return out


def _algorithms(r: _Reader, value: Any, tasks: list[str]) -> list[AlgorithmEntry]:
    from adapters.registry import ALGORITHMS

    where = ("algorithms",)
    if isinstance(value, list):
        blocks = []
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise r.fail((*where, i), "in a list, give algorithm names; use a mapping "
                                          "(label: {algo, settings, sweep}) to give settings")
            blocks.append((item, None, (*where, i)))
    elif isinstance(value, dict):
        blocks = [(label, block, (*where, label)) for label, block in value.items()]
    else:
        raise r.fail(where, f"expected a mapping label -> {{algo, settings, sweep, tasks}} or a list of "
                            f"algorithm names; got {_kind(value)}")
    if not blocks:
        raise r.fail(where, f"empty matrix: no algorithms; known algorithms are {', '.join(sorted(ALGORITHMS))}")
    out = []
    for label, block, at in blocks:
        if not isinstance(label, str) or not _NAME.match(label):
            raise r.fail(at, f"{label!r} is not a valid label: use letters, digits and _ . + -")
        block = r.mapping(at, block if block is not None else {}, _ALGO_FIELDS)
        algo = r.string((*at, "algo"), block["algo"]) if block.get("algo") is not None else label
        if algo not in ALGORITHMS:
            close = difflib.get_close_matches(algo, ALGORITHMS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            field_at = (*at, "algo") if "algo" in block else at
            raise r.fail(field_at, f"unknown algorithm {algo!r}{hint}; known algorithms are "
                                   f"{', '.join(sorted(ALGORITHMS))} (set `algo:` to use another label)")
        sweep = _sweep(r, (*at, "sweep"), block.get("sweep"))
        only = block.get("tasks")
        if only is not None:
            if not isinstance(only, list) or not only:
                raise r.fail((*at, "tasks"), "expected a non-empty list of the suite's task ids")
            for i, task in enumerate(only):
                if task not in tasks:
                    raise r.fail((*at, "tasks", i), f"{task!r} is not one of the suite's tasks ({', '.join(tasks)})")
            only = tuple(only)
        out.append(AlgorithmEntry(label, algo, r.settings((*at, "settings"), block.get("settings")), sweep, only))
    return out


def _sweep(r: _Reader, where, value: Any) -> dict[str, tuple[Any, ...]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise r.fail(where, f"expected a mapping setting -> list of values, got {_kind(value)}")
    out = {}
    for key, values in value.items():
        at = (*where, key)
        if not isinstance(key, str):
            raise r.fail(where, f"setting names must be strings, got {key!r}")
        if not isinstance(values, list) or not values:
            raise r.fail(at, f"empty matrix: a sweep needs a non-empty list of values, got {_kind(values)} {values!r}")
        r.json_value(at, values)
        if len({json.dumps(v, sort_keys=True) for v in values}) != len(values):
            raise r.fail(at, f"values are repeated in {values!r}; give each value once")
        out[key] = tuple(values)
    return out


def _seeds(r: _Reader, value: Any) -> tuple[int, ...]:
    where = ("seeds",)
    if isinstance(value, list):
        if not value:
            raise r.fail(where, "empty matrix: no seeds; give a count (e.g. 5) or a list of seeds")
        seeds = tuple(r.integer((*where, i), s, 0) for i, s in enumerate(value))
        if len(set(seeds)) != len(seeds):
            raise r.fail(where, f"seeds are repeated in {list(seeds)}; give each seed once")
        return seeds
    if isinstance(value, bool) or not isinstance(value, int):
        raise r.fail(where, f"expected a count (e.g. 5) or a list of seeds, got {_kind(value)} {value!r}")
    if value < 1:
        raise r.fail(where, f"empty matrix: {value} seeds; give a count >= 1 or a list of seeds")
    return tuple(range(value))


# --------------------------------------------------------------------------- expansion
def expand(suite: Suite) -> list[Trial]:
    """Every (variant, task, seed) trial, seed-major so early results cover every variant and task.

    Raises ``SuiteError`` when a trial has no budget in its unit, or two trials are identical.
    """
    from adapters.rl.protocol import default_eval_episodes
    from adapters.registry import budget_unit

    r = _reader(suite)
    variants = suite.variants()
    trials: list[Trial] = []
    seen: dict[str, str] = {}
    for seed in suite.seeds:
        for task in suite.tasks:
            for variant in variants:
                if variant.tasks is not None and task.task not in variant.tasks:
                    continue
                unit = budget_unit(variant.algo)
                budget_of = task.budget or suite.budget
                at = ("tasks", task.task, "budget") if task.budget else ("budget",)
                if budget_of is None:
                    raise r.fail((),
                                 f"no budget for {variant.name} on {task.task}: give `budget:` "
                                 f"({unit}) at the top level or under the task")
                amount = budget_of.for_unit(unit)
                if amount is None:
                    raise r.fail(at, f"{variant.name} counts its budget in {unit}, but this budget has "
                                     f"only {', '.join(budget_of.amounts)}: add {unit}")
                every_of = task.eval_every or suite.eval_every
                every = every_of.for_unit(unit) if every_of is not None else None
                if every is not None and every > amount:
                    at = ("tasks", task.task, "eval", "every") if task.eval_every else ("eval", "every")
                    raise r.fail(at, f"evaluating every {every} {unit} exceeds the budget of {amount} "
                                     f"{unit} ({variant.name} on {task.task}): lower eval.every")
                resources = task.resources or suite.resources
                spec = TrialSpec(
                    algo=variant.algo,
                    task=task.task,
                    seed=seed,
                    budget=amount,
                    eval_every=every,
                    eval_episodes=task.eval_episodes or suite.eval_episodes or default_eval_episodes(task.task),
                    settings={**suite.settings, **task.settings, **variant.settings},
                    device="auto",  # under Ray: CUDA only when the trial was given a GPU
                )
                digest = trial_hash(spec, unit)
                trial = Trial(digest[:12], digest, suite.name, variant.name, spec, unit, resources,
                              variant.sweep)
                if trial.trial_id in seen:
                    raise r.fail(("algorithms",), f"{seen[trial.trial_id]} and {trial.label} are the same "
                                                  f"trial (identical settings): change or remove one")
                seen[trial.trial_id] = trial.label
                trials.append(trial)
    if not trials:
        raise r.fail(("algorithms",), "empty matrix: no algorithm runs any of the suite's tasks")
    return trials


def check_trials(suite: Suite, trials: Sequence[Trial]) -> None:
    """Ask each family to validate each (variant, task) once, without training.

    A family's complaint becomes a ``SuiteError`` naming the file, the algorithm entry and the task.
    """
    from adapters.trial import validate_trial

    r = _reader(suite)
    located = r.located
    labels = {v.name: v.label for v in suite.variants()}
    checked: set[tuple[str, str]] = set()
    for trial in trials:
        key = (trial.variant, trial.spec.task)
        if key in checked:
            continue
        checked.add(key)
        try:
            validate_trial(trial.spec)
        except (ConfigError, MissingDependencyError) as error:
            task_at = _task_path(located, trial.spec.task)
            algo_at = ("algorithms", labels[trial.variant])
            name = trial.spec.task.partition(":")[2] or trial.spec.task
            if name in str(error):  # the family is complaining about the task: point at it
                where = f" (algorithm at line {located.line(algo_at)})"
                raise r.fail(task_at, f"{trial.variant} on {trial.spec.task}{where}: {error}") from None
            where = f" (task at line {located.line(task_at)})"
            raise r.fail(algo_at, f"{trial.variant} on {trial.spec.task}{where}: {error}") from None
        except EraError as error:  # pragma: no cover - a family raising something else on validate
            raise r.fail(("algorithms", labels[trial.variant]), f"{trial.variant} on {trial.spec.task}: {error}") from None


def _reader(suite: Suite) -> _Reader:
    return _Reader(suite.path, suite.located or Located({}, {}))


def _task_path(located: Located, task: str) -> tuple:
    tasks = located.data.get("tasks") if isinstance(located.data, dict) else None
    if isinstance(tasks, list) and task in tasks:
        return ("tasks", tasks.index(task))
    return ("tasks", task)


def load_and_expand(path: str | Path, check: bool = True) -> tuple[Suite, list[Trial]]:
    """Load, expand and (with ``check``) validate every trial with its family: what the CLI does."""
    suite = load_suite(path)
    trials = expand(suite)
    if check:
        check_trials(suite, trials)
    return suite, trials
