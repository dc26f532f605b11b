"""``era list SUITE``: validate a suite and print its trial matrix, without running anything."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from harness.errors import EXIT_OK, command_error
from harness.suite.search import METHOD_NAMES

__all__ = ["add_parser", "format_matrix", "format_search", "published_lines"]


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "list",
        help="validate a suite and print its trials (algo x task x seed) and the resources they ask for",
        description="Validate SUITE (every algorithm, task and setting, with the adapters) and print "
                    "its trial matrix. Nothing is run or written.",
    )
    parser.add_argument("suite", type=Path, metavar="SUITE", help="a suite file, e.g. suites/smoke.yaml")
    parser.add_argument("--out", type=Path, default=None,
                        help="a results folder of this suite: also show each trial's status there")
    parser.set_defaults(handler=run_command)


def _resources(cpus: float, gpus: float) -> str:
    return f"{cpus:g} CPU" + (f", {gpus:g} GPU" if gpus else "")


def format_matrix(suite, trials: Sequence, states=None) -> str:
    """The table ``era list`` prints, then the trial count, budgets and resources."""
    lines = [f"suite {suite.name} ({suite.path}): benchmark {suite.benchmark}"
             + (f", paper entry {suite.paper}" if suite.paper else "")]
    if suite.description:
        lines.append(f"  {suite.description.strip()}")
    width = max(len(t.variant) for t in trials)
    task_width = max(len(t.spec.task) for t in trials)
    header = f"{'trial_id':12}  {'algo':{width}}  {'task':{task_width}}  {'seed':>4}  {'budget':>14}  resources"
    if states is not None:
        header += "  status"
    lines.append(header)
    for t in trials:
        line = (f"{t.trial_id:12}  {t.variant:{width}}  {t.spec.task:{task_width}}  {t.spec.seed:>4}  "
                f"{f'{t.spec.budget} {t.unit}':>14}  {_resources(t.resources.cpus, t.resources.gpus)}")
        if states is not None:
            state = states[t.trial_id]
            line += f"  {state.status if state.status != 'running' else 'pending'} ({len(state.records)} evals)"
        lines.append(line)
    variants = sorted({t.variant for t in trials})
    tasks = sorted({t.spec.task for t in trials})
    seeds = sorted({t.spec.seed for t in trials})
    budget = Counter()
    for t in trials:
        budget[t.unit] += t.spec.budget
    cpus = sum(t.resources.cpus for t in trials)
    gpus = sum(t.resources.gpus for t in trials)
    lines.append(
        f"{len(trials)} trials = {len(variants)} algorithms x {len(tasks)} tasks x {len(seeds)} seeds"
        + ("" if len(variants) * len(tasks) * len(seeds) == len(trials) else " (some algorithms run only some tasks)")
    )
    lines.append("budget in all: " + ", ".join(f"{amount:,} {unit}" for unit, amount in sorted(budget.items())))
    per_trial = sorted({_resources(t.resources.cpus, t.resources.gpus) for t in trials})
    concurrency = (f"at most {suite.max_concurrent} at once" if suite.max_concurrent
                   else "as many at once as the Ray cluster fits")
    lines.append(
        f"resources per trial: {' / '.join(per_trial)}; all trials at once would need {cpus:g} CPUs"
        + (f" and {gpus:g} GPUs" if gpus else "") + f"; runs {concurrency}; "
        f"retries a failing trial up to {suite.max_failures} time(s)"
    )
    lines += _configurations(trials)
    lines += published_lines(suite)
    return "\n".join(lines)


def _plain(value) -> str:
    return json.dumps(value, separators=(", ", ": ")) if not isinstance(value, str) else repr(value)


def published_lines(suite) -> list[str]:
    """Per algorithm entry with ``settings_from`` and task: the entry used, the settings taken
    (marking those the suite's own settings override) and those dropped, each with its reason."""
    lines = []
    for entry in suite.algorithms:
        if not entry.published:
            continue
        lines.append(f"settings from {entry.settings_from} for {entry.label} (the suite's own settings win over them):")
        for task, published in entry.published.items():
            own = {*suite.settings, *entry.settings, *entry.sweep,
                   *next(t.settings for t in suite.tasks if t.task == task)}
            note = f"; {published.note}" if published.note else ""
            lines.append(f"  on {task}: {published.file}, entry {published.entry}{note}")
            took = [f"{k}={_plain(v)}" + (" (the suite's value wins)" if k in own else "")
                    for k, v in published.taken.items()]
            lines.append(f"    took: {', '.join(took) or 'nothing'}")
            lines += [f"    dropped {d.key}={_plain(d.value)}: {d.reason}" for d in published.dropped]
    return lines


def _configurations(trials: Sequence) -> list[str]:
    """What each algorithm runs as, from its family's ``describe`` (networks, environment protocol,
    evaluation), one line per algorithm and distinct configuration with the tasks it covers."""
    from adapters.registry import family_for

    tasks_of: dict[tuple[str, str], list[str]] = {}
    for t in trials:
        describe = getattr(family_for(t.spec.algo), "describe", None)
        if describe is None:
            continue
        tasks = tasks_of.setdefault((t.variant, describe(t.spec)), [])
        if t.spec.task not in tasks:
            tasks.append(t.spec.task)
    if not tasks_of:
        return []
    lines = ["configurations (networks; environment protocol; evaluation):"]
    lines += [f"  {variant} on {', '.join(tasks)}: {text}" for (variant, text), tasks in tasks_of.items()]
    return lines


def run_command(args: argparse.Namespace) -> int:
    from adapters.errors import ConfigError
    from harness.suite import load_and_expand

    try:
        suite, trials = load_and_expand(args.suite)
    except ConfigError as error:
        return command_error("list", error)
    states = None
    if args.out is not None:
        from harness.store import check_results_dir, read_states

        try:
            check_results_dir(args.out, suite, resume=False)
            if suite.search is not None:  # the samples drawn so far, and the best's held-out trials
                from harness.search import search_trials

                trials = search_trials(suite, trials, args.out)
            states = read_states(args.out, [t.trial_id for t in trials])
        except ConfigError as error:  # another suite's folder, or a corrupt state file
            return command_error("list", error)
    print(format_matrix(suite, trials, states))
    if suite.search is not None:
        print(format_search(suite))
    return EXIT_OK


def format_search(suite) -> str:
    """What a suite's ``search:`` block will run, after the matrix of its fixed trials."""
    from harness.suite.expansion import sample_trials

    spec = suite.search
    per_sample = sample_trials(suite, "sample", {}, spec.seeds)
    space = "; ".join(f"{key} {param.kind} {list(param.values)}" for key, param in spec.space.items())
    method = METHOD_NAMES[spec.method]
    return "\n".join([
        f"search: {spec.samples} samples of {spec.algorithm} by {method}, seed {spec.seed}, over {space}",
        f"  each sample: {len(per_sample)} trials ({len(spec.seeds)} seeds {list(spec.seeds)} x "
        f"{len({t.spec.task for t in per_sample})} tasks), {len(per_sample) * spec.samples} in all; objective: "
        f"{spec.objective} of the final {'normalized ' if _normalized(suite, per_sample) else 'raw '}scores, maximised",
        f"  then: the best sample and {spec.baseline} on the held-out seeds {list(suite.seeds)} "
        f"({len(sample_trials(suite, 'best', {}, suite.seeds))} trials for the best, listed above for "
        f"{spec.baseline}); " + (f"{spec.concurrent} sample(s) at a time" if spec.concurrent
                                  else "as many samples at a time as the CPUs fit"),
    ])


def _normalized(suite, trials) -> bool:
    from harness.stats.normalize import has_reference

    return all(has_reference(suite.benchmark, t.spec.task) for t in trials)
