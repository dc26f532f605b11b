"""Every number of a report (``report.json``) and the figures to draw, from a results folder.

The flow (docs/harness.md): results table -> normalized scores -> final scores (runs x tasks) ->
interval estimates (``harness.stats``) -> figures (``harness.report.plots``) and this module's markdown.

Reproducibility: the same results directory, ``reps``, ``seed`` and ``final`` give a byte-identical
``report.json`` and ``report.md``. Neither holds the time of writing: the date shown is the latest
trial end time recorded in ``trials.parquet`` (a ``finished_at``-like column) or in ``suite.json``,
and "not recorded" when there is none. Floats in the JSON are rounded to 6 significant digits; the
markdown shows the same numbers with fewer digits.

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
from harness.report.loading import ResultsDir
from harness.report.markdown import figure_slug, sensitivity_figure_name
from harness.report.passk import pass_at_k_columns, pass_at_k_curves, pass_at_k_rows
from harness.stats.bootstrap import DEFAULT_REPS

__all__ = ["build_report", "CONFIDENCE"]

CONFIDENCE = 0.95
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

    def improvement(self, matrices: Mapping[str, np.ndarray], scores_label: str) -> dict[str, tuple]:
        """P(ERA variant > its baseline) for every pair both of which are in ``matrices``."""
        present = {f"{x} vs {y}": (matrices[x], matrices[y]) for x, y in self.pairs if x in matrices and y in matrices}
        if not present:
            return {}
        return stats.probability_of_improvement(present, reps=self.reps, seed=self.seed, confidence=CONFIDENCE,
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


def _poi_rows(values: Mapping[str, tuple], pairs: Sequence[tuple[str, str]], scores_label: str) -> list[dict]:
    return [{"x": x, "y": y, "scores": scores_label, **_estimate(values[f"{x} vs {y}"])}
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


def _paper_entry(paper: Any) -> tuple[str | None, Any]:
    """Resolve a suite's ``paper`` (dotted path into paper_results.yaml, or {"entry": path})."""
    from harness.stats.paper import paper_entry

    if isinstance(paper, Mapping):
        paper = paper.get("entry") or paper.get("key") or paper.get("path")
    if not paper:
        return None, None
    return str(paper), paper_entry(str(paper))[0]


_PAPER_ROLES = {"baseline": "baseline", "grpo": "baseline", "era": "era"}
_PAPER_METRICS = {None: "aggregate normalized score", "score": "score (%)", "top1": "top-1 (%)", "top5": "top-5 (%)"}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _paper_rows(entry: str, node: Mapping, finals: pd.DataFrame, aggregates: dict, algos: Sequence[str],
                base_of: Mapping[str, str]) -> list[dict]:
    """Rows of the "paper vs this run" table.

    ``continuous_control`` entries are aggregate normalized scores, compared with this run's IQM
    and mean. The others (classification top-1/top-5, LLM accuracies) are percentages on one task,
    compared with the mean +- std of final scores on the tasks whose id contains a part of the
    entry's path (``classification.cifar10.no_augmentation`` -> ``cifar10``), else on every task.
    Paper rows with no counterpart here (``kl_cov``, ...) are listed as not run.
    """
    aggregate = entry.split(".")[0] == "continuous_control"
    parts = entry.split(".")[1:]
    named = [t for t in finals["task"].unique() if any(p in t for p in parts)]
    finals = finals[finals["task"].isin(named)] if named else finals
    groups = [("", node)] if any(k in node for k in _PAPER_ROLES) else [
        (k, v) for k, v in node.items() if isinstance(v, Mapping) and any(r in v for r in _PAPER_ROLES)]
    era_variants = [a for a in algos if is_era(base_of[a])]
    baselines = {baseline_of(name) for name in ALGORITHMS} - {None}
    baseline_variants = [a for a in algos if base_of[a] in baselines]
    rows = []
    for group, values in groups:
        for role_key, paper_value in values.items():
            role = _PAPER_ROLES.get(role_key)
            ours = era_variants if role == "era" else baseline_variants if role == "baseline" else []
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
                rows += [{**row, "algo": a, "this_run": _paper_ours(metric, a, finals, aggregates)} for a in ours]
    return rows


def _paper_ours(metric: str | None, algo: str, finals: pd.DataFrame, aggregates: dict) -> dict | None:
    if metric is None:  # an aggregate normalized score: compare with IQM and mean
        agg = aggregates.get(algo)
        return None if agg is None else {"iqm": agg["iqm"], "mean": agg["mean"]}
    column = "score" if metric in ("score", "top1") else metric
    rows = finals[finals["algo"] == algo]
    if column not in rows or rows[column].isna().all():
        return None
    values = rows[column].dropna().to_numpy(float)
    return {"mean": _num(values.mean()), "std": _num(values.std(ddof=1)) if len(values) > 1 else None,
            "n": int(len(values))}


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


def _normalized_section(scope: _Scope) -> dict:
    """IQM/mean/median/optimality gap, P(improvement), profiles and curves over normalized tasks."""
    from harness.report import plots

    finals = scope.finals[scope.finals["task"].isin(scope.normalized_tasks)]
    algos = [a for a in scope.algos if a in set(finals["algo"])]
    tasks, notes = stats.common_tasks(finals, algos)
    scope.notes.extend(notes)
    out = {"tasks": tasks, "aggregates": {}, "poi": {}, "profile": None, "curve": None}
    if not tasks:
        return out
    matrices, notes = stats.score_matrices(finals, "normalized_score", tasks, algos)
    scope.notes.extend(notes)
    estimates = scope.estimates(matrices, stats.METRICS, "the normalized aggregates")
    out["aggregates"] = {a: {**{m: _estimate(v) for m, v in estimates[a].items()},
                             "runs_per_task": int(matrices[a].shape[0])} for a in algos}
    scope.figures.append(_Figure(
        "aggregates.png", "Aggregate normalized scores (95% stratified-bootstrap CIs).",
        lambda p: plots.plot_aggregates(estimates, stats.METRICS, p, colors=scope.colors)))
    out["poi"] = scope.improvement(matrices, "normalized")

    taus = stats.tau_grid(matrices)
    profiles, cis = stats.performance_profiles(matrices, taus, reps=scope.reps, seed=scope.seed,
                                               confidence=CONFIDENCE, bootstrap=scope.bootstrap)
    out["profile"] = {"taus": [_num(t) for t in taus], "algorithms": {
        a: {"fraction": [_num(v) for v in profiles[a]], "ci_low": [_num(v) for v in cis[a][0]],
            "ci_high": [_num(v) for v in cis[a][1]]} for a in profiles}}
    scope.figures.append(_Figure(
        "performance_profile.png", "Performance profile: fraction of runs (all tasks) with normalized score above tau.",
        lambda p: plots.plot_performance_profiles(taus, profiles, cis, p, colors=scope.colors)))
    out["curve"] = scope.curve(scope.results, "normalized_score", tasks, algos)
    return out


def _raw_section(scope: _Scope) -> dict:
    """Tasks without reference scores: IQM/mean/median and P(improvement), one task at a time."""
    from harness.report import plots

    out: dict[str, dict] = {"aggregates": {}, "poi": {}, "poi_rows": [], "curves": {}}
    metrics = ("iqm", "mean", "median")
    for task in scope.raw_tasks:
        finals = scope.finals[scope.finals["task"] == task]
        algos = [a for a in scope.algos if a in set(finals["algo"])]
        matrices, _ = stats.score_matrices(finals, "score", [task], algos)
        estimates = scope.estimates(matrices, metrics, f"task {task}")
        out["aggregates"][task] = {a: {**{m: _estimate(v) for m, v in estimates[a].items()},
                                       "runs": int(matrices[a].shape[0])} for a in algos}
        values = scope.improvement(matrices, task)
        out["poi_rows"] += _poi_rows(values, scope.pairs, task)
        out["poi"].update({f"{k} ({task})": v for k, v in values.items()})
        scope.figures.append(_Figure(
            f"aggregates_raw_{figure_slug(task)}.png", f"Raw-score aggregates on {task} (95% CIs).",
            lambda p, e=estimates, t=task: plots.plot_aggregates(e, metrics, p, colors=scope.colors,
                                                                 xlabel=f"Raw score ({t})")))
        out["curves"][task] = scope.curve(scope.results[scope.results["task"] == task], "score", [task], algos)
    return out


def _curve_figures(scope: _Scope, normalized: dict, raw: dict) -> None:
    from harness.report import plots

    poi = {**normalized["poi"], **raw["poi"]}
    if poi:
        scope.figures.append(_Figure(
            "probability_of_improvement.png",
            "Probability of improvement of each ERA variant over its baseline (95% CIs).",
            lambda p: plots.plot_probability_of_improvement(poi, p)))
    panels = [plots.CurvePanel("normalized tasks", *normalized["curve"])] if normalized["curve"] else []
    panels += [plots.CurvePanel(t, *c, ylabel="IQM raw score") for t, c in raw["curves"].items() if c is not None]
    if panels:
        scope.figures.append(_Figure(
            "sample_efficiency.png", "IQM score against training steps (95% CI bands).",
            lambda p: plots.plot_sample_efficiency(panels, p, colors=scope.colors)))


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


def _sensitivity_section(scope: _Scope, suite: Mapping, aggregates: dict, raw_aggregates: dict) -> list[dict]:
    """IQM against each swept setting's value, with the baseline's IQM (the paper's Figure 3)."""
    from harness.report import plots

    out = []
    for sweep in _sweeps(scope.results, scope.algos, scope.base_of, suite):
        base, key, values = sweep["base_algo"], sweep["key"], sweep["values"]
        variants = sorted((a for a in values if values[a] is not None), key=lambda a: _sort_value(values[a]))
        baselines = [a for a in scope.algos if scope.base_of[a] == baseline_of(base)]
        for scores_label, table in [("normalized", aggregates), *raw_aggregates.items()]:
            present = [a for a in variants if a in table]
            if len(present) < 2:
                continue
            baseline = baselines[0] if len(baselines) == 1 and baselines[0] in table else None
            entry = {"base_algo": base, "key": key, "scores": scores_label,
                     "rows": [{"algo": a, "value": values[a], "iqm": table[a]["iqm"]} for a in present],
                     "baseline": {"algo": baseline, "iqm": table[baseline]["iqm"]} if baseline else None}
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

            scope.figures.append(_Figure(sensitivity_figure_name(entry),
                                         f"Sensitivity of {base} to {key} ({scores_label} scores, IQM with 95% CIs).",
                                         draw))
    return out


def _paper_section(scope: _Scope, suite: Mapping, aggregates: dict) -> tuple[str | None, dict | None]:
    entry, node = _paper_entry(suite.get("paper"))
    if entry and node is None:
        scope.notes.append(f"the suite names paper entry {entry!r}, which paper_results.yaml does not have")
    if not entry or not isinstance(node, Mapping):
        return entry, None
    described = node.get("benchmark") if isinstance(node.get("benchmark"), str) else None
    rows = _paper_rows(entry, node, scope.finals, aggregates, scope.algos, scope.base_of)
    if not rows:
        scope.notes.append(f"paper entry {entry!r} has no baseline/ERA numbers to compare with")
    return entry, {"entry": entry, "benchmark": described, "rows": rows}


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
    scope = _scope(data, reps=reps, seed=seed, final=final, bootstrap=bootstrap)
    normalized = _normalized_section(scope)
    raw = _raw_section(scope)
    _curve_figures(scope, normalized, raw)
    entropy = _entropy_section(scope)
    pass_at_k = _pass_at_k_section(scope)
    sensitivity = _sensitivity_section(scope, data.suite, normalized["aggregates"], raw["aggregates"])
    paper_entry, paper = _paper_section(scope, data.suite, normalized["aggregates"])
    protocol = _protocol_section(data, scope.algos)
    counts = data.trials["status"].value_counts()
    code_versions = sorted({str(v) for v in data.trials.get("code_version", pd.Series(dtype=object)).dropna()})
    if len(code_versions) > 1:
        scope.notes.append(f"trials ran on {len(code_versions)} code versions: {', '.join(code_versions)}")
    report = {
        "format": 1,
        "suite": {"name": data.name, "benchmark": data.suite.get("benchmark"), "paper": paper_entry},
        "provenance": {"date": _report_date(data), "code_versions": code_versions,
                       "era_harness": __version__, "rliable": version("rliable")},
        "settings": {"final": final, "reps": int(reps), "seed": int(seed), "confidence": CONFIDENCE,
                     "bootstrap": bootstrap, "interval": "percentile, stratified over runs within tasks"},
        "trials": {**{s: int(counts.get(s, 0)) for s in ("done", "failed", "pending")}, "total": len(data.trials)},
        "algorithms": scope.algos,
        **({"protocol": protocol} if protocol else {}),
        "baselines": {x: [y for a, y in scope.pairs if a == x] for x in scope.algos
                      if any(a == x for a, _ in scope.pairs)},
        "normalized_tasks": normalized["tasks"],
        "raw_tasks": scope.raw_tasks,
        "aggregates": normalized["aggregates"],
        "raw_aggregates": raw["aggregates"],
        "probability_of_improvement": _poi_rows(normalized["poi"], scope.pairs, "normalized") + raw["poi_rows"],
        "performance_profile": normalized["profile"],
        "sample_efficiency": {"normalized": _curve_json(normalized["curve"]),
                              "raw": {t: _curve_json(c) for t, c in raw["curves"].items()}},
        "per_task": _per_task(scope.finals, scope.algos, scope.normalized_tasks),
        "entropy": entropy,
        "pass_at_k": pass_at_k,
        "sensitivity": sensitivity,
        "paper": paper,
        "failed_trials": _failed_rows(data.trials),
        "notes": scope.notes,
        "figures": {f.name: f.caption for f in scope.figures},
    }
    return report, scope.figures
