"""Loading a suite file: the YAML schema, checked field by field with file, line and field in
every error (``SuiteError``)."""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from harness.errors import SuiteError
from harness.suite.model import AlgorithmEntry, Budget, Resources, Suite, TaskEntry
from harness.suite.search import SearchSpec, read_search
from harness.suite.yaml_lines import DuplicateKey, Located, load_located

__all__ = ["load_suite", "Reader", "UNITS"]

UNITS = ("steps", "epochs")
_TOP_FIELDS = (
    "name", "description", "benchmark", "paper", "sources", "algorithms", "tasks", "seeds",
    "budget", "eval", "resources", "settings", "max_concurrent", "max_failures", "search",
)
_REQUIRED = ("name", "algorithms", "tasks", "seeds")
_ALGO_FIELDS = ("algo", "settings", "settings_from", "sweep", "tasks")
_TASK_FIELDS = ("budget", "eval", "resources", "settings")
_EVAL_FIELDS = ("every", "episodes")
_RESOURCE_FIELDS = ("cpus", "gpus")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
#: benchmark values that are not normalization tables: infer per task / no normalization
_NO_TABLE = ("auto", "none")


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


class Reader:
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
    return _parse(Reader(path, located), located.data)


def _parse(r: Reader, data: Any) -> Suite:
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
    search = read_search(r, data["search"], algorithms, seeds) if data.get("search") is not None else None
    if search is not None:
        _check_search_objective(r, search, benchmark, [t.task for t in tasks])
    return Suite(
        name=name, path=r.path, algorithms=tuple(algorithms), tasks=tuple(tasks), seeds=seeds,
        budget=budget, eval_every=every, eval_episodes=episodes, resources=resources,
        settings=r.settings(("settings",), data.get("settings")), benchmark=benchmark, paper=paper,
        description=description, sources=tuple(sources), max_concurrent=max_concurrent,
        max_failures=max_failures, search=search, located=r.located,
    )


def _check_search_objective(r: Reader, search: SearchSpec, benchmark: str, tasks: list[str]) -> None:
    """A search aggregates normalized scores over its tasks; one task may be raw (nothing to mix)."""
    from harness.stats.normalize import has_reference

    raw = [t for t in tasks if not has_reference(benchmark, t)]
    if raw and len(tasks) > 1:
        raise r.fail(("search",), f"the search objective aggregates over tasks, but {', '.join(raw)} "
                                  f"{'has' if len(raw) == 1 else 'have'} no reference scores on benchmark "
                                  f"{benchmark!r} to normalize with: search on one such task, or on tasks "
                                  f"that have references")


def _benchmark(r: Reader, value: Any) -> str:
    if value is None:
        return "auto"
    from harness.stats.normalize import BENCHMARKS

    allowed = list(BENCHMARKS) + list(_NO_TABLE)
    if not isinstance(value, str) or value not in allowed:
        raise r.fail(("benchmark",), f"unknown benchmark {value!r}; allowed: {', '.join(allowed)}")
    return value


def _paper(r: Reader, value: Any) -> str:
    from harness.stats.paper import paper_entry

    key = r.string(("paper",), value)
    node, known = paper_entry(key)
    if node is None:
        raise r.fail(("paper",), f"{key!r} is not an entry of harness/data/paper_results.yaml; "
                                 f"entries there: {', '.join(known) or 'none'}")
    return key


def _tasks(r: Reader, value: Any) -> list[TaskEntry]:
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


def _algorithms(r: Reader, value: Any, tasks: list[str]) -> list[AlgorithmEntry]:
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
        source, published = None, {}
        if block.get("settings_from") is not None:
            source = r.string((*at, "settings_from"), block["settings_from"])
            published = _published(r, (*at, "settings_from"), label, algo, source, only or tasks)
        out.append(AlgorithmEntry(label, algo, r.settings((*at, "settings"), block.get("settings")), sweep, only,
                                  source, published))
    return out


def _published(r: Reader, where, label: str, algo: str, source: str, tasks: Sequence[str]) -> dict:
    """What ``algo`` takes from ``source`` for each task (its family's ``published_settings``), or a
    ``SuiteError`` at the ``settings_from`` line."""
    from adapters.errors import ConfigError, MissingDependencyError
    from adapters.registry import ALGORITHMS, algorithm, family_hook

    row = algorithm(algo)
    if source not in row.settings_sources:
        takers = sorted(name for name, a in ALGORITHMS.items() if source in a.settings_sources)
        if row.settings_sources:
            problem = f"{algo} takes settings from {', '.join(row.settings_sources)} only, not {source!r}"
        elif takers:
            problem = (f"{algo} ({row.family}) has no published settings to take from {source!r}: only "
                       f"{', '.join(takers)} do; remove settings_from and give its settings yourself")
        else:
            sources = sorted({s for a in ALGORITHMS.values() for s in a.settings_sources})
            problem = f"unknown settings source {source!r}; known sources: {', '.join(sources)}"
        raise r.fail(where, problem)
    hook = family_hook(algo, "published_settings")
    out = {}
    for task in tasks:
        try:
            out[task] = hook(source, algo, task)
        except (ConfigError, MissingDependencyError) as error:
            raise r.fail(where, f"{label} on {task}: {error}") from None
    return out


def _sweep(r: Reader, where, value: Any) -> dict[str, tuple[Any, ...]]:
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


def _seeds(r: Reader, value: Any) -> tuple[int, ...]:
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
