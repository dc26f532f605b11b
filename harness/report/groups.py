"""Comparison groups: which algorithms a report aggregates together, and over which tasks.

A suite may run its algorithm pairs on different task sets (PPO on MuJoCo, ResNet on digits), so
aggregates cannot demand every algorithm on every task. Each ERA variant is compared with its
baseline over the tasks both ran; pairs that share that task set form one group (one aggregate
table), and algorithms in no pair (an ERA variant without its baseline, a second baseline) are
grouped by the tasks they ran. One group's scores never depend on where another group ran.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

__all__ = ["Group", "comparison_groups"]


@dataclass(frozen=True)
class Group:
    """Algorithms aggregated over one task set, and the (ERA variant, baseline) pairs compared in it."""

    algorithms: tuple[str, ...]
    tasks: tuple[str, ...]
    pairs: tuple[tuple[str, str], ...]


def comparison_groups(finals: pd.DataFrame, algos: Sequence[str],
                      pairs: Sequence[tuple[str, str]]) -> tuple[list[Group], list[str]]:
    """The groups of ``finals`` (finished runs on the tasks to aggregate) and notes on the tasks a
    pair leaves out.

    ``algos`` is the report's algorithm order (it orders each group's algorithms and the groups);
    ``pairs`` are the (ERA variant, baseline) pairs. A pair is compared over the tasks on which
    both have a finished run; a task only one of them ran is left out of that comparison alone.
    """
    order = {a: i for i, a in enumerate(algos)}
    present = {a: frozenset(finals.loc[finals["algo"] == a, "task"]) for a in algos}
    notes: list[str] = []
    by_tasks: dict[frozenset[str], tuple[list[str], list[tuple[str, str]]]] = {}
    for x, y in pairs:
        if not present.get(x) or not present.get(y):
            continue
        shared = present[x] & present[y]
        for task in sorted(present[x] ^ present[y]):
            missing = y if task in present[x] else x
            notes.append(f"task {task} is left out of the comparison {x} vs {y}: no finished run of {missing} on it")
        if not shared:
            notes.append(f"{x} and {y} ran no task in common: they are not compared")
            continue
        members, group_pairs = by_tasks.setdefault(shared, ([], []))
        members.extend(a for a in (x, y) if a not in members)
        group_pairs.append((x, y))
    paired = {a for members, _ in by_tasks.values() for a in members}
    for algo in algos:  # the rest, by the tasks they ran (with a group of those same tasks if any)
        if algo in paired or not present.get(algo):
            continue
        members, _ = by_tasks.setdefault(present[algo], ([], []))
        members.append(algo)
    groups = [Group(tuple(sorted(members, key=order.__getitem__)), tuple(sorted(tasks)), tuple(group_pairs))
              for tasks, (members, group_pairs) in by_tasks.items()]
    groups.sort(key=lambda g: ([order[a] for a in g.algorithms], g.tasks))
    return groups, notes
