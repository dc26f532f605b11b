"""Every number of a report (``report.json``) and the figures to draw, from a results folder.

The flow (docs/harness.md): results table -> normalized scores -> final scores (runs x tasks) ->
interval estimates (``harness.stats``) -> figures (``harness.report.plots``) and this module's markdown.

Reproducibility: the same results directory, ``reps``, ``seed`` and ``final`` give a byte-identical
``report.json`` and ``report.md``. Neither holds the time of writing: the date shown is the latest
trial end time recorded in ``trials.parquet`` (a ``finished_at``-like column) or in ``suite.json``,
and "not recorded" when there is none. Floats in the JSON are rounded to 6 significant digits; the
markdown shows the same numbers with fewer digits.

Aggregates are computed per comparison group (``harness.report.groups``): each ERA variant with its
baseline over the tasks both ran, so pairs that ran on different task sets (PPO on MuJoCo, ResNet on
digits) are each aggregated, never dropped for one another. The headline (``_headline``) states each
pair's difference of IQM, P(ERA > baseline) and the verdict the fixed rule gives (docs/reports.md).

Tasks without reference scores (``harness.stats.normalize``) are reported on raw scores, one task at a
time, and never enter the normalized aggregates.

A NaN score (a run whose evaluation diverged) is kept where it falls, as rliable would take it: the
statistics over it are NaN (``null`` in the JSON, ``NaN`` in the markdown) and a note names the
trials; it does not move its task to the raw-score tables.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adapters.errors import unknown_name
from adapters.registry import ALGORITHMS, baseline_of, is_era
from harness import stats
from harness.report.groups import comparison_groups
from harness.report.loading import ResultsDir
from harness.report.markdown import figure_slug, sensitivity_figure_name
from harness.report.paper import family_of, paper_entry_of, paper_rows
from harness.report.passk import pass_at_k_columns, pass_at_k_curves, pass_at_k_rows
from harness.report.search import FIGURE, draw_objectives, search_section, split_search
from harness.stats.bootstrap import DEFAULT_REPS
from harness.stats.paper import claim_of

__all__ = ["build_report", "CONFIDENCE", "FORMAT"]

CONFIDENCE = 0.95
#: report.json's layout: 2 added the headline and per-group aggregates (``groups``)
FORMAT = 2
_DATE_COLUMNS = ("finished_at", "ended_at", "end_time", "completed_at", "updated_at")


# ----------------------------------------------------------------------------- small helpers


def _num(x: Any) -> float | None:
    """A JSON-stable float: 6 significant digits; None for NaN/inf."""
    if x is None:
        return None
    x = float(x)
    if not math.isfinite(x):
        return None
    return float(f"{x:.6g}") + 0.0  # + 0.0 turns -0.0 into 0.0


def _estimate(value: tuple[float, float, float]) -> dict:
    point, low, high = value
    return {"value": _num(point), "ci": [_num(low), _num(high)]}


def _algo_order(algos: Sequence[str], base_of: Mapping[str, str]) -> list[str]:
    """Baselines next to their ERA variants: sort by (baseline name, is ERA, name)."""
    def key(algo: str) -> tuple:
        base = base_of.get(algo, algo)
        root = baseline_of(base) or base
        return (root, base != root, base, algo)

    return sorted(set(algos), key=key)


def _pairs(algos: Sequence[str], base_of: Mapping[str, str]) -> list[tuple[str, str]]:
    """(ERA variant, baseline variant) pairs: the baseline of a variant is every variant whose
    base algorithm is the registry's baseline of its base algorithm."""
    pairs = []
    for x in algos:
        target = baseline_of(base_of.get(x, x))
        if target is None:
            continue
        pairs.extend((x, y) for y in algos if base_of.get(y, y) == target)
    return pairs


def _report_date(data: ResultsDir) -> str | None:
    """The latest trial end time recorded in the results (never the time of writing)."""
    for column in _DATE_COLUMNS:
        if column in data.trials and data.trials[column].notna().any():
            values = data.trials[column].dropna()
            try:
                stamps = pd.to_datetime(values, unit="s", utc=True) if pd.api.types.is_numeric_dtype(values) \
                    else pd.to_datetime(values, utc=True)
            except (ValueError, TypeError):
                continue
            return stamps.max().strftime("%Y-%m-%d %H:%M UTC")
    for key in _DATE_COLUMNS + ("date", "created_at"):
        if data.suite.get(key):
            return str(data.suite[key])
    return None


# ----------------------------------------------------------------------------- the analysis


@dataclass
class _Figure:
    """A figure to draw: file name under ``figures/``, caption, and the drawing call."""

    name: str
    caption: str
    draw: Callable[[Path], Path]


@dataclass
class _Scope:
    """What every section of one report shares: the finished runs and how to bootstrap them."""

    results: pd.DataFrame  # evaluations of finished trials
    finals: pd.DataFrame  # one row per finished trial (harness.stats.final_scores)
    algos: list[str]  # with a finished run, baselines next to their ERA variants
    base_of: dict[str, str]  # variant -> registry algorithm
    pairs: list[tuple[str, str]]  # (ERA variant, baseline variant)
    normalized_tasks: list[str]  # every run has a normalized score
    raw_tasks: list[str]
    reps: int
    seed: int
    bootstrap: str
    colors: dict[str, tuple]
    notes: list[str] = field(default_factory=list)
    figures: list[_Figure] = field(default_factory=list)

    def estimates(self, matrices: Mapping[str, np.ndarray], metrics: Sequence[str], label: str) -> dict:
        """rliable aggregates of ``matrices``, with a note for algorithms that ran one seed."""
        for algo, matrix in matrices.items():
            if matrix.shape[0] == 1:
                self.notes.append(
                    f"{algo} has a single run per task in {label}: its intervals have zero width (one "
                    f"run gives the bootstrap nothing to resample); add seeds for real uncertainty"
                )
        return stats.aggregate_estimates(matrices, metrics=metrics, reps=self.reps, seed=self.seed,
                                         confidence=CONFIDENCE, bootstrap=self.bootstrap)

    def improvement(self, matrices: Mapping[str, np.ndarray], pairs: Sequence[tuple[str, str]]) -> dict[str, tuple]:
        """P(ERA variant > its baseline) for each of ``pairs`` (both of which are in ``matrices``)."""
        present = {f"{x} vs {y}": (matrices[x], matrices[y]) for x, y in pairs if x in matrices and y in matrices}
        if not present:
            return {}
        return stats.probability_of_improvement(present, reps=self.reps, seed=self.seed, confidence=CONFIDENCE,
                                                bootstrap=self.bootstrap)

    def difference(self, matrices: Mapping[str, np.ndarray], pairs: Sequence[tuple[str, str]]) -> dict[str, tuple]:
        """IQM(ERA variant) - IQM(its baseline) for each of ``pairs``, keyed as :meth:`improvement`."""
        present = {f"{x} vs {y}": (matrices[x], matrices[y]) for x, y in pairs if x in matrices and y in matrices}
        if not present:
            return {}
        return stats.iqm_difference(present, reps=self.reps, seed=self.seed, confidence=CONFIDENCE,
                                    bootstrap=self.bootstrap)

    def curve(self, results: pd.DataFrame, column: str, tasks: Sequence[str], algos: Sequence[str]):
        """(steps, IQM points, CIs) of ``column`` over training, or None without shared steps."""
        steps, curves, notes = stats.step_matrices(results, column, tasks, algos)
        self.notes.extend(notes)
        curves = {a: c for a, c in curves.items() if c.shape[0] > 0}
        if len(steps) == 0 or not curves:
            return None
        points, intervals = stats.sample_efficiency(curves, reps=self.reps, seed=self.seed, confidence=CONFIDENCE,
                                                    bootstrap=self.bootstrap)
        return steps, points, intervals


def _poi_rows(values: Mapping[str, tuple], pairs: Sequence[tuple[str, str]], scores_label: str,
              tasks: Sequence[str]) -> list[dict]:
    return [{"x": x, "y": y, "scores": scores_label, "tasks": list(tasks), **_estimate(values[f"{x} vs {y}"])}
            for x, y in pairs if f"{x} vs {y}" in values]


def _curve_json(curve) -> dict | None:
    if curve is None:
        return None
    steps, points, intervals = curve
    return {
        "steps": [int(s) for s in steps],
        "algorithms": {a: {"iqm": [_num(v) for v in points[a]], "ci_low": [_num(v) for v in intervals[a][0]],
                           "ci_high": [_num(v) for v in intervals[a][1]]} for a in points},
    }


def _per_task(finals: pd.DataFrame, algos: Sequence[str], normalized_tasks: Sequence[str]) -> list[dict]:
    """Mean and std over seeds of each (task, algorithm)'s final scores; NaN (null) over a NaN score,
    no normalized summary on a raw-score task."""
    rows = []
    order = {a: i for i, a in enumerate(algos)}
    for (task, algo), group in sorted(finals.groupby(["task", "algo"]), key=lambda kv: (kv[0][0], order[kv[0][1]])):
        n = len(group)

        def summary(column: str) -> dict | None:
            if column == "normalized_score" and task not in normalized_tasks:
                return None
            values = group[column].to_numpy(float)
            return {"mean": _num(values.mean()), "std": _num(values.std(ddof=1)) if n > 1 else None}

        rows.append({
            "task": task, "algo": algo, "n": n, "seeds": sorted(int(s) for s in group["seed"]),
            "raw": summary("score"), "normalized": summary("normalized_score"),
            "final_step": int(group["step"].max()),
        })
    return rows


def _entropy_floor(rows: pd.DataFrame) -> float | None:
    """The entropy ERA keeps the policy above, from what the trial recorded (docs/era.md, section 1:
    SAC-ERA pins the Gaussian at H0 + delta, so H0 = gaussian_entropy - delta; PPO-ERA pins it at
    H0; SoftmaxERA's floor is its ``min_entropy`` setting)."""
    for column in ("entropy_floor", "target_entropy"):
        if column in rows and rows[column].notna().any():
            return float(rows[column].dropna().median())
    if "gaussian_entropy" in rows and rows["gaussian_entropy"].notna().any():
        delta = rows["delta"].fillna(0.0) if "delta" in rows else 0.0
        return float((rows["gaussian_entropy"] - delta).dropna().median())
    for column in ("setting.min_entropy", "setting.entropy_floor"):
        if column in rows and rows[column].notna().any():
            return float(pd.to_numeric(rows[column], errors="coerce").dropna().median())
    return None


def _entropy(results: pd.DataFrame, algos: Sequence[str], base_of: Mapping[str, str]) -> list[dict]:
    out = []
    order = {a: i for i, a in enumerate(algos)}
    for (task, algo), rows in sorted(results.groupby(["task", "algo"]), key=lambda kv: (kv[0][0], order[kv[0][1]])):
        if rows["entropy"].notna().sum() == 0:
            continue
        by_step = rows.groupby("step")["entropy"]
        mean, low, high = by_step.mean(), by_step.min(), by_step.max()
        floor = _entropy_floor(rows) if is_era(base_of.get(algo, algo)) else None
        finals = _final_entropies(rows)
        out.append({
            "task": task, "algo": algo, "steps": [int(s) for s in mean.index],
            "mean": [_num(v) for v in mean], "min_over_seeds": [_num(v) for v in low],
            "max_over_seeds": [_num(v) for v in high],
            "first": _num(mean.iloc[0]), "last": _num(mean.iloc[-1]), "lowest": _num(mean.min()),
            "floor": _num(floor),
            "final_min": _num(min(finals)) if finals else None,
            # seeds whose last evaluation is at or above the floor: whether ERA held it, not just on average
            "seeds_at_floor": (sum(v >= floor - _FLOOR_TOLERANCE for v in finals) if floor is not None else None),
            "seeds": len(finals),
        })
    return out


#: absolute slack when comparing a recorded entropy with its floor (float32 rounding of the records)
_FLOOR_TOLERANCE = 1e-6


def _final_entropies(rows: pd.DataFrame) -> list[float]:
    """Each seed's entropy at its last evaluation that recorded one."""
    recorded = rows[rows["entropy"].notna()]
    last = recorded.sort_values("step").groupby("seed")["entropy"].last()
    return [float(v) for v in last]


def _sweeps(results: pd.DataFrame, algos: Sequence[str], base_of: Mapping[str, str],
            suite: Mapping[str, Any]) -> list[dict]:
    """Settings that take several values across the variants of one base algorithm.

    A variant's value comes from ``suite.json`` (its ``variants[].sweep``), else from its
    ``setting.<key>`` column.
    """
    declared = {v["algo"]: dict(v.get("sweep") or {}) for v in suite.get("variants") or []
                if isinstance(v, Mapping) and "algo" in v}

    def from_name(algo: str) -> dict:
        return declared.get(algo, {})

    def recorded(algo: str, key: str) -> Any:
        column = f"setting.{key}"
        if column not in results:
            return None
        values = results.loc[results["algo"] == algo, column].dropna().unique()
        return values[0].item() if len(values) == 1 and hasattr(values[0], "item") else (
            values[0] if len(values) == 1 else None)

    sweeps = []
    for base in sorted({base_of[a] for a in algos}):
        variants = [a for a in algos if base_of[a] == base]
        if len(variants) < 2:
            continue
        keys = sorted({k for a in variants for k in from_name(a)})
        keys += sorted({c[len("setting."):] for c in results.columns if c.startswith("setting.")} - set(keys))
        for key in keys:
            values = {a: from_name(a).get(key, recorded(a, key)) for a in variants}
            distinct = {json.dumps(v, sort_keys=True, default=str) for v in values.values() if v is not None}
            if len(distinct) >= 2:
                sweeps.append({"base_algo": base, "key": key, "values": values})
    return sweeps


def _sort_value(value: Any) -> tuple:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def _scope(data: ResultsDir, *, reps: int, seed: int, final: str, bootstrap: str) -> _Scope:
    """Finished runs only, their final scores, the ERA/baseline pairs and the task split."""
    from harness.report import plots

    notes: list[str] = []
    trials, results = data.trials, data.results
    done_ids = set(trials.loc[trials["status"] == "done", "trial_id"])
    left_out = results[~results["trial_id"].isin(done_ids)]
    if not left_out.empty:
        notes.append(f"{left_out['trial_id'].nunique()} unfinished or failed trial(s) with partial results "
                     f"are left out of every table and figure")
    results = results[results["trial_id"].isin(done_ids)]
    base_of = {**dict(zip(trials["algo"], trials["base_algo"])), **dict(zip(results["algo"], results["base_algo"]))}

    finals = stats.final_scores(results, ("score", "normalized_score"), final)
    # what paper tables and the pass@k section report besides the score
    extra = [c for c in ("top5",) if c in results] + pass_at_k_columns(results)
    extra += sorted(c for c in results.columns if str(c).endswith("/pass@1"))  # an LLM benchmark's accuracy
    if extra:
        finals = finals.merge(stats.final_scores(results, extra, final)[["trial_id", *extra]], on="trial_id")
    algos = _algo_order(finals["algo"], base_of)
    every_algo = _algo_order([*trials["algo"], *algos], base_of)
    notes += [f"{a} has no finished run: it appears in no table but the failed trials"
              for a in every_algo if a not in algos]
    pairs = _pairs(algos, base_of)
    notes += [f"{x} has no baseline run ({baseline_of(base_of[x])}) to compare with"
              for x in algos if is_era(base_of[x]) and not any(p[0] == x for p in pairs)]

    # normalized: every run with a score has a normalized one (a NaN score stays NaN in the aggregates)
    complete, raw_tasks = {}, []
    for task, rows in finals.groupby("task"):
        normalized = np.isfinite(rows["normalized_score"].to_numpy(float))
        scored = rows["score"].notna().to_numpy()
        complete[task] = bool(normalized.any() and np.all(normalized | ~scored))
        if not complete[task]:
            raw_tasks.append(task)
            why = ("every run's final score is NaN" if not scored.any() else
                   "some runs lack a normalized score" if normalized.any() else "no reference scores")
            notes.append(f"task {task} is reported on raw scores ({why}) and left out of the normalized aggregates")
    notes += _nan_notes(results, finals)
    if finals.empty:
        notes.append("no trial finished: there are no scores to aggregate")
    return _Scope(results=results, finals=finals, algos=algos, base_of=base_of, pairs=pairs,
                  normalized_tasks=sorted(t for t, ok in complete.items() if ok), raw_tasks=raw_tasks,
                  reps=reps, seed=seed, bootstrap=bootstrap, colors=plots.algorithm_colors(every_algo), notes=notes)


def _nan_notes(results: pd.DataFrame, finals: pd.DataFrame, listed: int = 5) -> list[str]:
    """A note on the finished trials whose final score is NaN and the evaluations that scored NaN."""
    bad = finals[finals["score"].isna()]
    evaluations = int(results["score"].isna().sum())
    if bad.empty and not evaluations:
        return []
    named = [f"{r.algo} on {r.task} (seed {r.seed})" for r in bad.head(listed).itertuples()]
    more = f" and {len(bad) - listed} more" if len(bad) > listed else ""
    final = (f"{len(bad)} finished trial(s) have a NaN final score ({', '.join(named)}{more}): the aggregates "
             f"and probabilities of improvement over them are NaN, as rliable gives them, and performance "
             f"profiles count them as below every threshold; " if len(bad) else "")
    return [f"NaN scores: {final}{evaluations} evaluation(s) scored NaN, and the sample-efficiency curves "
            f"that include one are NaN at its step"]


def _estimate_floats(e: Mapping) -> tuple[float, float, float]:
    """``(point, low, high)`` of a JSON estimate, NaN for null, for drawing."""
    def number(v: float | None) -> float:
        return math.nan if v is None else float(v)

    return number(e["value"]), number(e["ci"][0]), number(e["ci"][1])


def _figure_name(stem: str, index: int, count: int) -> str:
    """``stem.png`` for a report's only group, ``stem_<index>.png`` (from 1) when it has several."""
    return f"{stem}.png" if count == 1 else f"{stem}_{index}.png"


def _tasks_label(tasks: Sequence[str]) -> str:
    return f"{len(tasks)} task{'s' if len(tasks) != 1 else ''}"


def _normalized_section(scope: _Scope) -> dict:
    """Per comparison group (``harness.report.groups``): IQM/mean/median/optimality gap, profiles and
    curves over its normalized tasks, and each pair's P(improvement) and difference of IQM."""
    from harness.report import plots

    finals = scope.finals[scope.finals["task"].isin(scope.normalized_tasks)]
    groups, notes = comparison_groups(finals, scope.algos, scope.pairs)
    scope.notes.extend(notes)
    out: dict[str, Any] = {"groups": [], "poi": {}, "difference": {}, "matrices": [], "curves": []}
    for index, group in enumerate(groups, 1):
        tasks, algos = list(group.tasks), list(group.algorithms)
        label = f"the normalized aggregates over {', '.join(tasks)}"
        matrices, notes = stats.score_matrices(finals, "normalized_score", tasks, algos)
        scope.notes.extend(notes)
        estimates = scope.estimates(matrices, stats.METRICS, label)
        aggregates_png = _figure_name("aggregates", index, len(groups))
        profile_png = _figure_name("performance_profile", index, len(groups))
        over = "" if len(groups) == 1 else f" over {', '.join(tasks)}"
        scope.figures.append(_Figure(
            aggregates_png, f"Aggregate normalized scores{over} (95% stratified-bootstrap CIs).",
            lambda p, e=estimates: plots.plot_aggregates(e, stats.METRICS, p, colors=scope.colors)))
        taus = stats.tau_grid(matrices)
        profiles, cis = stats.performance_profiles(matrices, taus, reps=scope.reps, seed=scope.seed,
                                                   confidence=CONFIDENCE, bootstrap=scope.bootstrap)
        scope.figures.append(_Figure(
            profile_png, f"Performance profile{over}: fraction of runs (all tasks) with normalized score above tau.",
            lambda p, t=taus, f=profiles, c=cis: plots.plot_performance_profiles(t, f, c, p, colors=scope.colors)))
        curve = scope.curve(scope.results, "normalized_score", tasks, algos)
        out["poi"].update(scope.improvement(matrices, group.pairs))
        out["difference"].update(scope.difference(matrices, group.pairs))
        out["matrices"].append(matrices)
        out["curves"].append(curve)
        out["groups"].append({
            "algorithms": algos, "tasks": tasks, "pairs": [list(p) for p in group.pairs],
            "aggregates": {a: {**{m: _estimate(v) for m, v in estimates[a].items()},
                               "runs_per_task": int(matrices[a].shape[0])} for a in algos},
            "performance_profile": {"taus": [_num(t) for t in taus], "algorithms": {
                a: {"fraction": [_num(v) for v in profiles[a]], "ci_low": [_num(v) for v in cis[a][0]],
                    "ci_high": [_num(v) for v in cis[a][1]]} for a in profiles}},
            "sample_efficiency": _curve_json(curve),
            "figures": {"aggregates": aggregates_png, "performance_profile": profile_png},
        })
    return out


def _raw_section(scope: _Scope) -> dict:
    """Tasks without reference scores: IQM/mean/median, P(improvement) and the difference of IQM,
    one task at a time."""
    from harness.report import plots

    out: dict[str, dict] = {"aggregates": {}, "poi": {}, "difference": {}, "matrices": {}, "curves": {}}
    metrics = ("iqm", "mean", "median")
    for task in scope.raw_tasks:
        finals = scope.finals[scope.finals["task"] == task]
        algos = [a for a in scope.algos if a in set(finals["algo"])]
        matrices, _ = stats.score_matrices(finals, "score", [task], algos)
        estimates = scope.estimates(matrices, metrics, f"task {task}")
        out["aggregates"][task] = {a: {**{m: _estimate(v) for m, v in estimates[a].items()},
                                       "runs": int(matrices[a].shape[0])} for a in algos}
        out["poi"][task] = scope.improvement(matrices, scope.pairs)
        out["difference"][task] = scope.difference(matrices, scope.pairs)
        out["matrices"][task] = matrices
        scope.figures.append(_Figure(
            f"aggregates_raw_{figure_slug(task)}.png", f"Raw-score aggregates on {task} (95% CIs).",
            lambda p, e=estimates, t=task: plots.plot_aggregates(e, metrics, p, colors=scope.colors,
                                                                 xlabel=f"Raw score ({t})")))
        out["curves"][task] = scope.curve(scope.results[scope.results["task"] == task], "score", [task], algos)
    return out


def _poi_table(scope: _Scope, normalized: dict, raw: dict) -> list[dict]:
    """The probability-of-improvement rows: each group's pairs on normalized scores, then each raw task's."""
    rows = []
    for group in normalized["groups"]:
        rows += _poi_rows(normalized["poi"], [tuple(p) for p in group["pairs"]], "normalized", group["tasks"])
    for task, values in raw["poi"].items():
        rows += _poi_rows(values, scope.pairs, task, [task])
    return rows


def _curve_figures(scope: _Scope, normalized: dict, raw: dict) -> None:
    from harness.report import plots

    poi = {**normalized["poi"], **{f"{k} ({task})": v for task, values in raw["poi"].items() for k, v in values.items()}}
    if poi:
        scope.figures.append(_Figure(
            "probability_of_improvement.png",
            "Probability of improvement of each ERA variant over its baseline (95% CIs).",
            lambda p: plots.plot_probability_of_improvement(poi, p)))
    panels = [plots.CurvePanel(f"normalized: {', '.join(g['tasks'])}" if len(g["tasks"]) <= 2
                               else f"normalized: {_tasks_label(g['tasks'])}", *curve)
              for g, curve in zip(normalized["groups"], normalized["curves"]) if curve is not None]
    panels += [plots.CurvePanel(t, *c, ylabel="IQM raw score") for t, c in raw["curves"].items() if c is not None]
    if panels:
        scope.figures.append(_Figure(
            "sample_efficiency.png", "IQM score against training steps (95% CI bands).",
            lambda p: plots.plot_sample_efficiency(panels, p, colors=scope.colors)))


def _budget(finals: pd.DataFrame, algos: Sequence[str], tasks: Sequence[str], base_of: Mapping[str, str]) -> dict:
    """What the runs of a comparison trained for: their last evaluation step, in the budget's unit."""
    from adapters.registry import budget_unit

    rows = finals[finals["algo"].isin(algos) & finals["task"].isin(tasks)]
    base = base_of.get(algos[0], algos[0])
    unit = budget_unit(base) if base in ALGORITHMS else "steps"
    return {"value": int(rows["step"].max()) if not rows.empty else None, "unit": unit}


def _headline(scope: _Scope, normalized: dict, raw: dict) -> dict:
    """ERA against its baseline, one row per pair and score set: the difference of IQM, P(ERA >
    baseline), what they rest on and the verdict (``harness.stats.verdict``; docs/reports.md)."""
    found: list[tuple[int, int, dict]] = []  # (pair order, score-set order, row) for a stable order
    order = {p: i for i, p in enumerate(scope.pairs)}
    sets = [("normalized", g["tasks"], [tuple(p) for p in g["pairs"]], m, normalized["poi"], normalized["difference"])
            for g, m in zip(normalized["groups"], normalized["matrices"])]
    sets += [(task, [task], scope.pairs, raw["matrices"][task], raw["poi"][task], raw["difference"][task])
             for task in raw["poi"]]
    for position, (scores, tasks, pairs, matrices, poi, difference) in enumerate(sets):
        for x, y in pairs:
            key = f"{x} vs {y}"
            if key not in poi:
                continue
            runs = {"era": int(matrices[x].shape[0]), "baseline": int(matrices[y].shape[0])}
            found.append((order[(x, y)], position, {
                "x": x, "y": y, "scores": scores, "tasks": list(tasks), "runs_per_task": runs,
                "budget": _budget(scope.finals, [x, y], tasks, scope.base_of),
                "iqm_difference": _estimate(difference[key]), "probability_of_improvement": _estimate(poi[key]),
                "verdict": stats.verdict(poi[key], (runs["era"], runs["baseline"])),
            }))
    rows = [row for _, _, row in sorted(found, key=lambda item: item[:2])]
    compared = {r["x"] for r in rows}
    alone = [a for a in scope.algos if is_era(scope.base_of[a]) and a not in compared]
    return {"rows": rows, "without_baseline": [{"algo": a, "baseline": baseline_of(scope.base_of[a])} for a in alone],
            "min_runs": stats.MIN_RUNS, "rule": "docs/reports.md"}


def _entropy_section(scope: _Scope) -> list[dict]:
    from harness.report import plots

    entropy = _entropy(scope.results, scope.algos, scope.base_of)
    if not entropy:
        return entropy
    panels = []
    for task in sorted({e["task"] for e in entropy}):
        rows = [e for e in entropy if e["task"] == task]
        curves = {e["algo"]: tuple(np.array(e[k], dtype=float) for k in ("steps", "mean", "min_over_seeds",
                                                                          "max_over_seeds")) for e in rows}
        floors = {e["algo"]: e["floor"] for e in rows if e["floor"] is not None}
        panels.append(plots.EntropyPanel(task, curves, floors))
    scope.figures.append(_Figure(
        "entropy.png",
        "Entropy over training: mean over seeds, band from min to max; dashed: the entropy floor ERA aims for.",
        lambda p: plots.plot_entropy(panels, p, colors=scope.colors)))
    return entropy


def _pass_at_k_section(scope: _Scope) -> list[dict]:
    from harness.report import plots

    rows = pass_at_k_rows(scope.finals, pass_at_k_columns(scope.finals), scope.algos)
    if not rows:
        return []
    panels = {task: pass_at_k_curves(rows, task) for task in sorted({r["task"] for r in rows})}
    scope.figures.append(_Figure(
        "pass_at_k.png", "Final pass@k against k: mean over seeds, error bars one standard deviation.",
        lambda p: plots.plot_pass_at_k(panels, p, colors=scope.colors)))
    return [{**r, "mean": [_num(v) for v in r["mean"]], "std": [_num(v) for v in r["std"]]} for r in rows]


def _sensitivity_section(scope: _Scope, suite: Mapping, groups: Sequence[dict], raw_aggregates: dict) -> list[dict]:
    """IQM against each swept setting's value, with the baseline's IQM (the paper's Figure 3), in
    each aggregate table (comparison group or raw task) that holds two or more of the variants."""
    from harness.report import plots

    out = []
    names: set[str] = set()
    tables = [("normalized", g["aggregates"], g["tasks"]) for g in groups]
    tables += [(task, table, [task]) for task, table in raw_aggregates.items()]
    for sweep in _sweeps(scope.results, scope.algos, scope.base_of, suite):
        base, key, values = sweep["base_algo"], sweep["key"], sweep["values"]
        variants = sorted((a for a in values if values[a] is not None), key=lambda a: _sort_value(values[a]))
        baselines = [a for a in scope.algos if scope.base_of[a] == baseline_of(base)]
        for scores_label, table, tasks in tables:
            present = [a for a in variants if a in table]
            if len(present) < 2:
                continue
            baseline = baselines[0] if len(baselines) == 1 and baselines[0] in table else None
            entry = {"base_algo": base, "key": key, "scores": scores_label, "tasks": list(tasks),
                     "rows": [{"algo": a, "value": values[a], "iqm": table[a]["iqm"]} for a in present],
                     "baseline": {"algo": baseline, "iqm": table[baseline]["iqm"]} if baseline else None}
            name = sensitivity_figure_name(entry)
            if name in names:  # the same sweep in a second comparison group
                name = name.removesuffix(".png") + f"_{len(names) + 1}.png"
            names.add(name)
            entry["figure"] = name
            out.append(entry)

            def draw(p: Path, entry: dict = entry) -> Path:
                band = entry["baseline"] and (entry["baseline"]["algo"],
                                              _estimate_floats(entry["baseline"]["iqm"]))
                scores = entry["scores"]
                ylabel = "IQM normalized score" if scores == "normalized" else f"IQM raw score ({scores})"
                return plots.plot_sensitivity(
                    entry["key"], [r["value"] for r in entry["rows"]],
                    [_estimate_floats(r["iqm"]) for r in entry["rows"]], p,
                    label=entry["base_algo"], baseline=band or None, ylabel=ylabel)

            scope.figures.append(_Figure(name, f"Sensitivity of {base} to {key} ({scores_label} scores, IQM with "
                                               f"95% CIs).", draw))
    return out


def _paper_section(scope: _Scope, suite: Mapping, groups: Sequence[dict]) -> tuple[str | None, dict | None]:
    entry, node = paper_entry_of(suite.get("paper"))
    if entry and node is None:
        scope.notes.append(f"the suite names paper entry {entry!r}, which paper_results.yaml does not have")
    if not entry or not isinstance(node, Mapping):
        return entry, None
    described = node.get("benchmark") if isinstance(node.get("benchmark"), str) else None
    family = family_of(entry, scope.algos, scope.base_of)
    rows = paper_rows(entry, node, scope.finals, groups, family)
    if not rows:
        scope.notes.append(f"paper entry {entry!r} has no baseline/ERA numbers to compare with")
    claim = claim_of(entry)
    return entry, {"entry": entry, "benchmark": described, "rows": rows,
                   "family": {"baseline": claim.get("baseline"), "era": claim.get("era")} if claim else None}


def _published_section(scope: _Scope) -> list[dict]:
    """Published learning curves of the run's algorithms (``harness.stats.published``: TD-MPC2's TD-MPC2
    and SAC on DMC), read at the step each (task, algorithm) reached, beside its raw final scores."""
    from harness.stats.published import published_at

    rows = []
    order = {a: i for i, a in enumerate(scope.algos)}
    for (task, algo), group in sorted(scope.finals.groupby(["task", "algo"]), key=lambda kv: (kv[0][0], order[kv[0][1]])):
        step = int(group["step"].min())  # every seed has reached it
        for published in published_at(scope.base_of.get(algo, algo), task, step):
            values = group["score"].dropna().to_numpy(float)
            rows.append({
                "task": task, "algo": algo, "step": step,
                "this_run": {"mean": _num(values.mean()) if len(values) else None,
                             "std": _num(values.std(ddof=1)) if len(values) > 1 else None, "n": int(len(values))},
                "source": published.source, "published_algo": published.algorithm,
                "published": {"mean": _num(published.mean), "seed_min": _num(published.seed_min),
                              "seed_max": _num(published.seed_max), "n": published.seeds},
            })
    return rows


def _protocol_section(data: ResultsDir, algos: Sequence[str]) -> list[dict]:
    """The environment protocol each (task, algorithm) ran under (the family's ``environment_protocol``
    hook), with its final agent and simulator steps; empty when every environment ran the plain one."""
    from adapters.errors import ConfigError
    from adapters.registry import ALGORITHMS, family_hook
    from adapters.trial import TrialSpec

    groups: dict[tuple[str, Any], list[str]] = {}
    for row in data.trials.to_dict("records"):
        task, base = str(row["task"]), str(row["base_algo"])
        hook = family_hook(base, "environment_protocol") if base in ALGORITHMS else None
        if hook is None:
            continue
        settings = json.loads(row["settings"]) if isinstance(row.get("settings"), str) else {}
        try:
            protocol = hook(TrialSpec(base, task, int(row["seed"]), int(row.get("budget") or 1), settings=settings))
        except ConfigError:  # a trial whose settings were refused: it has no protocol to show
            continue
        algos = groups.setdefault((task, protocol), [])
        if row["algo"] not in algos:
            algos.append(str(row["algo"]))
    if all(p.is_plain for _, p in groups):
        return []
    algos_in_order = list(algos)
    out = []
    for (task, protocol), algos in sorted(groups.items(), key=lambda kv: kv[0][0]):
        rows = data.results[(data.results["task"] == task) & data.results["algo"].isin(algos)]
        last = rows.sort_values("step").groupby("trial_id").tail(1) if not rows.empty else rows
        agent = int(last["step"].max()) if not last.empty else None
        sim = (int(pd.to_numeric(last["sim_steps"], errors="coerce").max())
               if "sim_steps" in last and last["sim_steps"].notna().any() else None)
        order = {a: i for i, a in enumerate(algos_in_order)}
        out.append({"task": task, "algorithms": sorted(algos, key=lambda a: (order.get(a, len(order)), a)),
                    **protocol.plain(), "description": protocol.describe(),
                    "final_agent_steps": agent, "final_sim_steps": sim})
    return out


def _closing(data: ResultsDir) -> dict:
    """How the results were made, for the report's closing note: the command that wrote them (from
    ``suite.json``) and the wall time from the first trial start to the last trial end recorded in
    ``trials.parquet`` (a pause between an interrupted run and its resume included), with the sum of
    the trials' own times beside it."""
    suite = data.suite
    description = str(suite.get("description") or "")
    command = (f"era run {suite['source_file']}" if suite.get("source_file")
               else description if description.startswith("era trial ") else None)
    out: dict[str, Any] = {"command": command, "first_start": None, "last_end": None, "wall_time_s": None,
                           "trial_time_s": None}
    if not {"started_at", "finished_at"} <= set(data.trials.columns):
        return out
    started = pd.to_datetime(data.trials["started_at"], utc=True, errors="coerce")
    finished = pd.to_datetime(data.trials["finished_at"], utc=True, errors="coerce")
    if started.notna().any() and finished.notna().any():
        first, last = started.min(), finished.max()
        out.update(first_start=first.strftime("%Y-%m-%d %H:%M UTC"), last_end=last.strftime("%Y-%m-%d %H:%M UTC"),
                   wall_time_s=_num((last - first).total_seconds()),
                   trial_time_s=_num((finished - started).dropna().dt.total_seconds().sum()))
    return out


def _failed_error(row: Mapping[str, Any]) -> str | None:
    """A failed trial's error as one line: the final exception of its traceback where there is one
    (so tables written before errors were kept as one line read the same), else its error."""
    from harness.errors import error_line

    for column in ("traceback", "error"):
        if isinstance(row.get(column), str) and row[column].strip():
            return error_line(row[column])
    return None


def _failed_rows(trials: pd.DataFrame) -> list[dict]:
    failed = trials[trials["status"] == "failed"].sort_values(["algo", "task", "seed", "trial_id"], kind="mergesort")
    return [{"trial_id": str(r["trial_id"]), "algo": str(r["algo"]), "task": str(r["task"]), "seed": int(r["seed"]),
             "error": _failed_error(r)}
            for r in failed.to_dict("records")]


def build_report(data: ResultsDir, *, reps: int = DEFAULT_REPS, seed: int = 0, final: str = "last",
                 bootstrap: str = "vectorized") -> tuple[dict, list[_Figure]]:
    """All numbers of the report (JSON-ready) and the figures to draw from them."""
    from importlib.metadata import version

    from harness import __version__

    stats.parse_final(final)
    if bootstrap not in stats.BOOTSTRAPS:
        raise unknown_name("bootstrap", bootstrap, stats.BOOTSTRAPS)
    everything = data
    data, samples = split_search(data)  # a search's samples get their own section, not the headline
    scope = _scope(data, reps=reps, seed=seed, final=final, bootstrap=bootstrap)
    search = None
    if samples is not None:
        search = search_section(samples, reps=reps, seed=seed, final=final, bootstrap=bootstrap,
                                confidence=CONFIDENCE, num=_num)
        if search["figure"]:
            scope.figures.append(_Figure(FIGURE, "Each search sample's objective on the search seeds (95% CIs), "
                                                 "in the order the samples ran.",
                                         lambda p, section=search: draw_objectives(section, p)))
    normalized = _normalized_section(scope)
    raw = _raw_section(scope)
    _curve_figures(scope, normalized, raw)
    entropy = _entropy_section(scope)
    pass_at_k = _pass_at_k_section(scope)
    sensitivity = _sensitivity_section(scope, data.suite, normalized["groups"], raw["aggregates"])
    paper_entry, paper = _paper_section(scope, data.suite, normalized["groups"])
    published = _published_section(scope)
    protocol = _protocol_section(data, scope.algos)
    counts = everything.trials["status"].value_counts()
    code_versions = sorted({str(v) for v in everything.trials.get("code_version", pd.Series(dtype=object)).dropna()})
    if len(code_versions) > 1:
        scope.notes.append(f"trials ran on {len(code_versions)} code versions: {', '.join(code_versions)}")
    report = {
        "format": FORMAT,
        "suite": {"name": data.name, "benchmark": data.suite.get("benchmark"), "paper": paper_entry},
        "headline": _headline(scope, normalized, raw),
        "provenance": {"date": _report_date(data), "code_versions": code_versions,
                       "era_harness": __version__, "rliable": version("rliable")},
        "settings": {"final": final, "reps": int(reps), "seed": int(seed), "confidence": CONFIDENCE,
                     "bootstrap": bootstrap, "interval": "percentile, stratified over runs within tasks"},
        "trials": {**{s: int(counts.get(s, 0)) for s in ("done", "failed", "pending")}, "total": len(everything.trials)},
        **({"search": search} if search is not None else {}),
        "algorithms": scope.algos,
        "base_algos": {a: scope.base_of[a] for a in scope.algos},
        **({"protocol": protocol} if protocol else {}),
        "baselines": {x: [y for a, y in scope.pairs if a == x] for x in scope.algos
                      if any(a == x for a, _ in scope.pairs)},
        "normalized_tasks": sorted({t for g in normalized["groups"] for t in g["tasks"]}),
        "raw_tasks": scope.raw_tasks,
        "groups": normalized["groups"],
        "raw_aggregates": raw["aggregates"],
        "probability_of_improvement": _poi_table(scope, normalized, raw),
        "sample_efficiency": {"raw": {t: _curve_json(c) for t, c in raw["curves"].items()}},
        "per_task": _per_task(scope.finals, scope.algos, scope.normalized_tasks),
        "entropy": entropy,
        "pass_at_k": pass_at_k,
        "sensitivity": sensitivity,
        "paper": paper,
        "published": published,
        "failed_trials": _failed_rows(everything.trials),
        "closing": _closing(everything),
        "notes": list(dict.fromkeys(scope.notes)),  # a note two groups give is shown once
        "figures": {f.name: f.caption for f in scope.figures},
    }
    return report, scope.figures
