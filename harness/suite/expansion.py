"""Expanding a suite into trials, and asking each family to validate them before anything runs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from adapters.errors import ConfigError, EraError, MissingDependencyError, SettingError
from adapters.trial import TrialSpec
from harness.suite.loading import Reader, load_suite
from harness.suite.model import Suite, Trial, Variant, trial_hash
from harness.suite.yaml_lines import Located

__all__ = ["expand", "sample_trials", "search_probes", "check_trials", "load_and_expand"]


def expand(suite: Suite) -> list[Trial]:
    """Every (variant, task, seed) trial, seed-major so early results cover every variant and task.

    In a suite with a ``search:`` block the searched entry is left out: its trials are the
    search's samples (:func:`sample_trials`), and the best one's on the held-out seeds.

    Raises ``SuiteError`` when a trial has no budget in its unit, or two trials are identical.
    """
    searched = suite.search.algorithm if suite.search is not None else None
    trials = _expand(suite, [v for v in suite.variants() if v.label != searched], suite.seeds)
    if not trials and searched is None:
        raise _reader(suite).fail(("algorithms",), "empty matrix: no algorithm runs any of the suite's tasks")
    return trials


def sample_trials(suite: Suite, name: str, settings: dict, seeds: Sequence[int]) -> list[Trial]:
    """The trials of one search sample (or of the best one): the searched entry with ``settings``
    on top of its own, named ``name``, on every task it runs and each of ``seeds``."""
    assert suite.search is not None
    entry = next(a for a in suite.algorithms if a.label == suite.search.algorithm)
    variant = Variant(name, entry.label, entry.algo, {**entry.settings, **settings}, dict(settings), entry.tasks,
                      entry.published)
    return _expand(suite, [variant], tuple(seeds))


def _expand(suite: Suite, variants: Sequence[Variant], seeds: Sequence[int]) -> list[Trial]:
    from adapters.registry import budget_unit, default_eval_episodes

    r = _reader(suite)
    trials: list[Trial] = []
    seen: dict[str, str] = {}
    for seed in seeds:
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
                    eval_episodes=task.eval_episodes or suite.eval_episodes or default_eval_episodes(variant.algo, task.task),
                    settings={**variant.settings_for(task.task), **suite.settings, **task.settings,
                              **variant.settings},
                    # a trial given GPUs sees only those under Ray; one given none would still see
                    # every GPU of its node (Ray sets CUDA_VISIBLE_DEVICES only for GPU requests)
                    device="auto" if resources.gpus > 0 else "cpu",
                )
                digest = trial_hash(spec, unit)
                trial = Trial(digest[:12], digest, suite.name, variant.name, spec, unit, resources,
                              variant.sweep)
                if trial.trial_id in seen:
                    raise r.fail(("algorithms",), f"{seen[trial.trial_id]} and {trial.label} are the same "
                                                  f"trial (identical settings): change or remove one")
                seen[trial.trial_id] = trial.label
                trials.append(trial)
    return trials


def check_trials(suite: Suite, trials: Sequence[Trial]) -> None:
    """Ask each family to validate each (variant, task) once, without training.

    A family's complaint becomes a ``SuiteError`` naming the file, the algorithm entry and the task,
    and for a bad setting (``SettingError``) the line that gave the trial its value.
    """
    from adapters.trial import validate_trial

    r = _reader(suite)
    located = r.located
    labels = {v.name: v.label for v in suite.variants()}
    searched = suite.search.algorithm if suite.search is not None else None
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
            label = labels.get(trial.variant, searched)
            algo_at = ("algorithms", label)
            given_at = _setting_path(suite, trial, label, error.setting) \
                if isinstance(error, SettingError) else None
            if given_at is not None:
                hint = ""
                if given_at[-1] == "settings_from":
                    entry = next(a for a in suite.algorithms if a.label == label)
                    published = entry.published[trial.spec.task]
                    hint = (f" (the value is {published.source}'s, entry {published.entry}: set {error.setting} "
                            f"in the suite's settings to override it)")
                raise r.fail(given_at, f"{trial.variant} on {trial.spec.task}: {error}{hint}") from None
            name = trial.spec.task.partition(":")[2] or trial.spec.task
            if name in str(error):  # the family is complaining about the task: point at it
                where = f" (algorithm at line {located.line(algo_at)})"
                raise r.fail(task_at, f"{trial.variant} on {trial.spec.task}{where}: {error}") from None
            where = f" (task at line {located.line(task_at)})"
            raise r.fail(algo_at, f"{trial.variant} on {trial.spec.task}{where}: {error}") from None
        except EraError as error:  # pragma: no cover - a family raising something else on validate
            raise r.fail(("algorithms", labels.get(trial.variant, searched)),
                         f"{trial.variant} on {trial.spec.task}: {error}") from None


def _reader(suite: Suite) -> Reader:
    return Reader(suite.path, suite.located or Located({}, {}))


def _task_path(located: Located, task: str) -> tuple:
    tasks = located.data.get("tasks") if isinstance(located.data, dict) else None
    if isinstance(tasks, list) and task in tasks:
        return ("tasks", tasks.index(task))
    return ("tasks", task)


def _setting_path(suite: Suite, trial: Trial, label: str, key: str) -> tuple | None:
    """Where ``trial`` (of algorithm entry ``label``) got setting ``key``, in the order settings
    override each other (sweep, then algorithm, task and suite settings, then ``settings_from``);
    ``None`` where it was not set (a library default)."""
    entry = next(a for a in suite.algorithms if a.label == label)
    if suite.search is not None and label == suite.search.algorithm and key in suite.search.space:
        return ("search", "space", key)
    if key in entry.sweep:
        chosen = json.dumps(trial.sweep[key], sort_keys=True)
        index = next(i for i, v in enumerate(entry.sweep[key]) if json.dumps(v, sort_keys=True) == chosen)
        return ("algorithms", label, "sweep", key, index)
    if key in entry.settings:
        return ("algorithms", label, "settings", key)
    task = next(t for t in suite.tasks if t.task == trial.spec.task)
    if key in task.settings:
        return ("tasks", task.task, "settings", key)
    if key in suite.settings:
        return ("settings", key)
    published = entry.published.get(trial.spec.task)
    if published is not None and key in published.taken:
        return ("algorithms", label, "settings_from")
    return None


def search_probes(suite: Suite) -> list[Trial]:
    """Trials that put each searched setting at its bounds or choices, on the first search seed:
    validating them checks the whole space with the family before a search starts."""
    if suite.search is None:
        return []
    probes = []
    for index, settings in enumerate(suite.search.probe_settings()):
        probes += sample_trials(suite, f"{suite.search.algorithm}[probe={index}]", settings, suite.search.seeds[:1])
    return probes


def load_and_expand(path: str | Path, check: bool = True) -> tuple[Suite, list[Trial]]:
    """Load, expand and (with ``check``) validate every trial with its family: what the CLI does.
    A search suite's space is validated too (:func:`search_probes`)."""
    suite = load_suite(path)
    trials = expand(suite)
    if check:
        check_trials(suite, [*trials, *search_probes(suite)])
    return suite, trials
