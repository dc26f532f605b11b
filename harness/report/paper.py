"""The "paper vs this run" table: the paper's numbers of a suite's entry beside this run's, each paper
row matched only to the algorithms of its claim's family (``harness/data/claims.yaml``), so that a
suite running other pairs too (ResNet beside PPO) never sets them against the paper's PPO rows."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from adapters.registry import ALGORITHMS, baseline_of, is_era
from harness.stats.paper import claim_of, paper_entry

__all__ = ["Family", "family_of", "paper_entry_of", "paper_rows"]

_PAPER_ROLES = {"baseline": "baseline", "grpo": "baseline", "era": "era"}
_PAPER_METRICS = {None: "aggregate normalized score", "score": "score (%)", "top1": "top-1 (%)", "top5": "top-5 (%)"}


@dataclass(frozen=True)
class Family:
    """A report's variants that a paper entry's rows compare: its ERA variants and its baselines."""

    era: tuple[str, ...]
    baseline: tuple[str, ...]


def _num(x: Any) -> float | None:
    if x is None or not math.isfinite(float(x)):
        return None
    return float(f"{float(x):.6g}") + 0.0


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def paper_entry_of(paper: Any) -> tuple[str | None, Any]:
    """Resolve a suite's ``paper`` (dotted path into paper_results.yaml, or {"entry": path})."""
    if isinstance(paper, Mapping):
        paper = paper.get("entry") or paper.get("key") or paper.get("path")
    if not paper:
        return None, None
    return str(paper), paper_entry(str(paper))[0]


def family_of(entry: str, algos: Sequence[str], base_of: Mapping[str, str]) -> Family:
    """The variants of ``algos`` that the entry's claim compares: ERA variants of its baseline and
    the baseline's variants. An entry with no claim compares every ERA variant and every baseline."""
    claim = claim_of(entry)
    if claim is None or "baseline" not in claim:
        baselines = {baseline_of(name) for name in ALGORITHMS} - {None}
        return Family(tuple(a for a in algos if is_era(base_of[a])),
                      tuple(a for a in algos if base_of[a] in baselines))

    def era(base: str) -> bool:
        return base == claim.get("era") or (base in ALGORITHMS and baseline_of(base) == claim["baseline"])

    return Family(tuple(a for a in algos if era(base_of[a])), tuple(a for a in algos if base_of[a] == claim["baseline"]))


def paper_rows(entry: str, node: Mapping, finals: pd.DataFrame, groups: Sequence[Mapping], family: Family) -> list[dict]:
    """Rows of the "paper vs this run" table.

    ``continuous_control`` entries are aggregate normalized scores, compared with the IQM and mean
    of each comparison group (``groups``, as ``report.json`` holds them) in which the family's ERA
    variant meets its baseline. The others (classification top-1/top-5, LLM accuracies) are
    percentages on one task, compared with the mean +- std of final scores on the tasks whose id
    contains a part of the entry's path (``classification.cifar10.no_augmentation`` -> ``cifar10``),
    else on every task; an LLM benchmark's row reads its ``<benchmark>/pass@1`` column (the mean
    accuracy over samples). Paper rows with no counterpart here (``kl_cov``, ...) are listed as not run.
    """
    aggregate = entry.split(".")[0] == "continuous_control"
    parts = entry.split(".")[1:]
    named = [t for t in finals["task"].unique() if any(p in t for p in parts)]
    finals = finals[finals["task"].isin(named)] if named else finals
    paper_groups = [("", node)] if any(k in node for k in _PAPER_ROLES) else [
        (k, v) for k, v in node.items() if isinstance(v, Mapping) and any(r in v for r in _PAPER_ROLES)]
    rows = []
    for group, values in paper_groups:
        for role_key, paper_value in values.items():
            role = _PAPER_ROLES.get(role_key)
            ours = list(family.era if role == "era" else family.baseline if role == "baseline" else ())
            if isinstance(paper_value, Mapping):  # classification: top1/top5 with +- spread
                metrics = [m for m in paper_value if not m.endswith("_pm") and _is_number(paper_value[m])]
                numbers = paper_value
            elif _is_number(paper_value):
                metrics = [None if aggregate else "score"]
                numbers = {metrics[0]: paper_value}
            else:  # a description ("benchmark": "HumanoidBench, 6 tasks")
                continue
            for metric in metrics:
                row = {"group": group, "paper_name": role_key, "metric": _PAPER_METRICS.get(metric, metric),
                       "paper": _num(numbers[metric]), "paper_pm": _num(numbers.get(f"{metric}_pm"))}
                if not ours:
                    rows.append({**row, "algo": None, "this_run": None})
                elif metric is None:
                    rows += _aggregate_rows(row, ours, groups, family)
                else:
                    column = f"{group}/pass@1" if entry.split(".")[0] == "llm" and group else metric
                    rows += [{**row, "algo": a, "this_run": _final_mean(column, a, finals)} for a in ours]
    return rows


def _aggregate_rows(row: dict, ours: Sequence[str], groups: Sequence[Mapping], family: Family) -> list[dict]:
    """One row per (variant, comparison group in which the family's pair meets), or one without
    numbers for a variant in none of them (it ran on raw-score tasks only)."""
    out, placed = [], set()
    for group in groups:
        pairs = [p for p in group.get("pairs", []) if p[0] in family.era and p[1] in family.baseline]
        members = {a for p in pairs for a in p}
        for algo in ours:
            if algo in members:
                agg = group["aggregates"][algo]
                out.append({**row, "algo": algo, "this_run": {"iqm": agg["iqm"], "mean": agg["mean"],
                                                              "tasks": list(group["tasks"])}})
                placed.add(algo)
    out += [{**row, "algo": a, "this_run": None} for a in ours if a not in placed]
    return out


def _final_mean(column: str, algo: str, finals: pd.DataFrame) -> dict | None:
    column = "score" if column in ("score", "top1") else column
    rows = finals[finals["algo"] == algo]
    if column not in rows or rows[column].isna().all():
        return None
    values = rows[column].dropna().to_numpy(float)
    return {"mean": _num(values.mean()), "std": _num(values.std(ddof=1)) if len(values) > 1 else None,
            "n": int(len(values))}
