"""The report of a search (a suite with ``search:``): every sample's objective with its interval,
in the order they ran, the best settings, and how much it took.

The samples' trials are split off the results first (:func:`split_search`): the rest of the report,
headline included, reads only the trials on the held-out seeds (the best sample's and the
baseline's), so the winner is judged on runs it was not chosen on. A sample is named
``<algorithm>[sample=<index>]`` in the tables; its settings are the searched keys of its trials'
``settings``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from harness import stats
from harness.report.loading import ResultsDir
from harness.suite.search import METHOD_NAMES

__all__ = ["split_search", "search_section", "search_lines", "draw_objectives", "FIGURE"]

FIGURE = "search_objective.png"


def _sample_index(algo: str, algorithm: str) -> int | None:
    match = re.fullmatch(re.escape(algorithm) + r"\[sample=(\d+)\]", str(algo))
    return int(match.group(1)) if match else None


def split_search(data: ResultsDir) -> tuple[ResultsDir, ResultsDir | None]:
    """``(the held-out trials, the search samples' trials)``; ``(data, None)`` for a suite without a search."""
    search = data.suite.get("search")
    if not isinstance(search, Mapping):
        return data, None
    algorithm = str(search.get("algorithm"))

    def is_sample(frame) -> np.ndarray:
        return frame["algo"].map(lambda a: _sample_index(a, algorithm) is not None).to_numpy(bool)

    held_out = replace(data, results=data.results[~is_sample(data.results)], trials=data.trials[~is_sample(data.trials)])
    samples = replace(data, results=data.results[is_sample(data.results)], trials=data.trials[is_sample(data.trials)])
    return held_out, samples


def _settings(trials, keys) -> dict[str, Any]:
    settings = trials["settings"].dropna()
    if settings.empty:
        return {}
    values = json.loads(settings.iloc[0])
    return {k: values.get(k) for k in keys}


def search_section(samples: ResultsDir, *, reps: int, seed: int, final: str, bootstrap: str,
                   confidence: float, num: Callable[[Any], float | None]) -> dict:
    """Every sample's objective (the suite's aggregate of its final scores over seeds x tasks, with
    a stratified-bootstrap interval), the best sample, and the search's size."""
    search = samples.suite["search"]
    algorithm, objective = str(search["algorithm"]), str(search.get("objective", "iqm"))
    keys = list(search.get("space") or {})
    done = samples.trials[samples.trials["status"] == "done"]
    results = samples.results[samples.results["trial_id"].isin(set(done["trial_id"]))]
    finals = stats.final_scores(results, ("score", "normalized_score"), final)
    normalized = bool(len(finals)) and bool(np.isfinite(finals["normalized_score"].to_numpy(float)).all())
    column = "normalized_score" if normalized else "score"
    rows = []
    for algo, trials in sorted(samples.trials.groupby("algo"), key=lambda kv: _sample_index(kv[0], algorithm)):
        index = _sample_index(algo, algorithm)
        statuses = set(trials["status"])
        status = "done" if statuses == {"done"} else "failed" if "failed" in statuses else "unfinished"
        row = {"index": index, "algo": algo, "settings": _settings(trials, keys), "status": status,
               "runs": int(len(trials)), "objective": None}
        if status == "done":
            own = finals[finals["algo"] == algo]
            tasks = sorted(set(own["task"]))
            matrices, _ = stats.score_matrices(own, column, tasks, [algo])
            estimate = stats.aggregate_estimates(matrices, metrics=(objective,), reps=reps, seed=seed,
                                                 confidence=confidence, bootstrap=bootstrap)[algo][objective]
            row["objective"] = {"value": num(estimate[0]), "ci": [num(estimate[1]), num(estimate[2])]}
        rows.append(row)
    scored = [r for r in rows if r["objective"] and r["objective"]["value"] is not None]
    best = max(scored, key=lambda r: (r["objective"]["value"], -r["index"])) if scored else None
    return {
        "algorithm": algorithm, "baseline": search.get("baseline"), "method": search.get("method"),
        "objective": objective, "scores": "normalized" if normalized else "raw",
        "tasks": sorted(set(samples.trials["task"])), "seeds": list(search.get("seeds") or []),
        "held_out_seeds": list(samples.suite.get("seeds") or []), "samples_planned": search.get("samples"),
        "space": search.get("space"), "samples": rows, "trials": int(len(samples.trials)),
        "best": {"index": best["index"], "settings": best["settings"], "objective": best["objective"],
                 "held_out_algo": f"{algorithm}[best]"} if best else None,
        "figure": FIGURE if scored else None,
    }


def draw_objectives(section: Mapping, path: Path) -> Path:
    """Each sample's objective with its interval, in the order the samples ran."""
    from harness.report import plots

    rows = [r for r in section["samples"] if r["objective"] and r["objective"]["value"] is not None]
    estimates = [(r["objective"]["value"], r["objective"]["ci"][0], r["objective"]["ci"][1]) for r in rows]
    return plots.plot_sensitivity("sample (in the order they ran)", [r["index"] + 1 for r in rows], estimates,
                                  path, label=section["algorithm"],
                                  ylabel=f"{section['objective'].upper()} {section['scores']} score (search seeds)")


def _value(entry: Mapping | None, fmt: Callable[[Mapping | None], str]) -> str:
    return fmt(entry) if entry else "—"


def search_lines(section: Mapping, fmt_ci: Callable[[Mapping | None], str], table, figure_line) -> list[str]:
    """The report's ``## Search`` section (markdown lines)."""
    tasks = ", ".join(section["tasks"])
    n = len(section["samples"])
    lines = [
        "## Search", "",
        f"{n} of {section['samples_planned']} samples of `{section['algorithm']}` by "
        f"{METHOD_NAMES.get(section['method'], section['method'])}, each on "
        f"{len(section['seeds'])} seeds ({', '.join(map(str, section['seeds']))}) × {len(section['tasks'])} "
        f"task(s) ({tasks}): {section['trials']} trials. Objective: {section['objective'].upper()} of the final "
        f"{section['scores']} scores over those seeds and tasks, maximised (95% stratified-bootstrap intervals). "
        f"The best sample then ran on the held-out seeds ({', '.join(map(str, section['held_out_seeds']))}), "
        f"where the headline compares it with `{section['baseline']}`: its score on the seeds it was chosen on is "
        f"the largest of {n} noisy estimates, biased upwards.", "",
    ]
    best = section["best"]
    if best:
        settings = ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}" for k, v in best["settings"].items())
        lines += [f"**Best:** sample {best['index'] + 1}: {settings} ({section['objective'].upper()} "
                  f"{fmt_ci(best['objective'])}); on the held-out seeds it is `{best['held_out_algo']}`.", ""]
    else:
        lines += ["**No sample finished**: there is no best to compare.", ""]
    keys = list(section["space"] or {})
    rows = []
    for r in section["samples"]:
        marker = " (best)" if best and r["index"] == best["index"] else ""
        values = [f"{r['settings'].get(k):.4g}" if isinstance(r["settings"].get(k), float)
                  else r["settings"].get(k) for k in keys]
        rows.append([f"{r['index'] + 1}{marker}", *values, _value(r["objective"], fmt_ci), r["status"]])
    lines += table(["Sample", *keys, f"{section['objective'].upper()} [95% CI]", "Status"], rows)
    lines += [""]
    if section.get("figure"):
        lines += figure_line(section["figure"])
    return lines
