"""The markdown of a report: every number is taken from the report's JSON (``harness.report``
builds it), so ``report.md`` and ``report.json`` never disagree. Also the figure file names that
both sides use."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["figure_slug", "headline_lines", "headline_sentence", "render_markdown", "sensitivity_figure_name",
           "signed_ci"]


def figure_slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "x"


def sensitivity_figure_name(entry: Mapping) -> str:
    suffix = "" if entry["scores"] == "normalized" else f"_{figure_slug(entry['scores'])}"
    return f"sensitivity_{figure_slug(entry['base_algo'])}_{figure_slug(entry['key'])}{suffix}.png"


def _decimals(scale: float) -> int:
    """3 decimals below 10, 2 below 100, 1 below 1000, none above."""
    return 0 if scale >= 1000 else 1 if scale >= 100 else 2 if scale >= 10 else 3


def _f(x: float | None, decimals: int | None = None) -> str:
    if x is None:
        return "—"
    text = f"{x:.{_decimals(abs(x)) if decimals is None else decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.000"


def _ci(e: Mapping | None) -> str:
    """``point [low, high]``, all three with the point's decimals; ``NaN`` for a computed estimate
    that is not a number (JSON null: NaN scores went into it)."""
    if not e:
        return "—"
    if e.get("value") is None:
        return "NaN"
    d = _decimals(max(abs(e["value"]), *(abs(c) for c in e["ci"] if c is not None)))
    return f"{_f(e['value'], d)} [{_f(e['ci'][0], d)}, {_f(e['ci'][1], d)}]"


def _pm(summary: Mapping | None) -> str:
    """``mean ± std`` with the mean's decimals; ``NaN`` when the mean is not a number."""
    if not summary:
        return "—"
    if summary["mean"] is None:
        return "NaN"
    d = _decimals(abs(summary["mean"]))
    return _f(summary["mean"], d) + ("" if summary.get("std") is None else f" ± {_f(summary['std'], d)}")


def _code(name: Any) -> str:
    return f"`{name}`"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _figure_line(report: Mapping, name: str) -> list[str]:
    caption = report["figures"].get(name)
    return [f"![{caption}](figures/{name})", "", f"*{caption}*", ""] if caption else []


def signed_ci(e: Mapping | None) -> str:
    """:func:`_ci` with the point's sign always written (a difference: ``+0.066 [-0.010, 0.120]``)."""
    text = _ci(e)
    if text in ("—", "NaN") or text.startswith("-"):
        return text
    return text if float(text.split(" ")[0]) == 0 else "+" + text


def _tasks(tasks: Sequence[str]) -> str:
    return f"{len(tasks)} task{'s' if len(tasks) != 1 else ''}"


def _scores_text(row: Mapping) -> str:
    """``normalized (3 tasks)`` or the raw-score task's id."""
    return f"normalized ({_tasks(row['tasks'])})" if row["scores"] == "normalized" else row["scores"]


def _seeds(runs: Mapping) -> str:
    era, baseline = runs["era"], runs["baseline"]
    return f"{era}" if era == baseline else f"{era} / {baseline}"


def _budget_text(budget: Mapping) -> str:
    return "—" if budget.get("value") is None else f"{budget['value']:,} {budget['unit']}"


def headline_sentence(headline: Mapping) -> str:
    """The headline in one sentence: each pair's difference of IQM, P(ERA > baseline), scale, verdict."""
    rows = headline["rows"]
    if not rows:
        alone = headline.get("without_baseline") or []
        if not alone:
            return "No ERA variant ran in this suite, so there is no ERA effect to report."
        listed = ", ".join(f"{a['algo']}" for a in alone)
        missing = sorted({str(a["baseline"]) for a in alone})
        return (f"No ERA variant here ran beside its baseline ({listed} without {', '.join(missing)}), so this "
                f"report states no ERA effect; its tables compare the variants with each other.")
    parts = []
    for r in rows:
        on = "normalized scores" if r["scores"] == "normalized" else f"raw scores of {r['scores']}"
        parts.append(
            f"{r['x']} vs {r['y']} on {on} ({_tasks(r['tasks'])} × {_seeds(r['runs_per_task'])} "
            f"seed{'s' if max(r['runs_per_task'].values()) != 1 else ''}, "
            f"{_budget_text(r['budget'])}): IQM difference {signed_ci(r['iqm_difference'])}, "
            f"P(ERA > baseline) {_ci(r['probability_of_improvement'])}: {r['verdict']}")
    alone = [a["algo"] for a in headline.get("without_baseline") or []]
    also = f" {', '.join(alone)} ran without {'its' if len(alone) == 1 else 'their'} baseline." if alone else ""
    return "; ".join(parts) + "." + also


def headline_lines(headline: Mapping) -> list[str]:
    """The headline section every report starts with: one sentence, one small table, the rule."""
    lines = ["## Headline", "", headline_sentence(headline), ""]
    if headline["rows"]:
        lines += _table(
            ["ERA variant", "Baseline", "Scores", "Tasks × seeds", "Budget", "IQM difference (ERA − baseline)",
             "P(ERA > baseline)", "Verdict"],
            [[_code(r["x"]), _code(r["y"]), _scores_text(r), f"{len(r['tasks'])} × {_seeds(r['runs_per_task'])}",
              _budget_text(r["budget"]), signed_ci(r["iqm_difference"]), _ci(r["probability_of_improvement"]),
              f"**{r['verdict']}**"] for r in headline["rows"]])
        lines += [
            f"Verdict, by a rule fixed before any run was read ({headline['rule']}): **ERA better** when the 95% "
            "interval of P(ERA > baseline) lies above 0.5, **ERA worse** when it lies below, **no clear "
            f"difference** when it contains 0.5, **too few runs** under {headline['min_runs']} runs per task on "
            "either side. Intervals: 95% stratified bootstrap; seeds are runs per task (ERA / baseline where "
            "they differ).", ""]
    return lines


def render_markdown(report: Mapping) -> str:
    """The markdown of a report built by :func:`build_report` (numbers taken from it only)."""
    s, t, prov = report["suite"], report["trials"], report["provenance"]
    final = report["settings"]["final"]
    final_text = "the last evaluation" if final == "last" else f"the mean of the last {final.split(':')[1]} evaluations"
    lines = [f"# ERA report: {s['name']}", ""]
    lines += headline_lines(report["headline"])
    if report.get("search"):
        from harness.report.search import search_lines

        lines += search_lines(report["search"], _ci, _table, lambda name: _figure_line(report, name))
    lines += [
        "## This run", "",
        f"- Suite: **{s['name']}**" + (f" (benchmark: {s['benchmark']})" if s.get("benchmark") else ""),
        "- Date: " + (f"{prov['date']} (the latest trial end recorded)" if prov["date"] else "not recorded in the results"),
        f"- Code version: {', '.join(prov['code_versions']) or 'not recorded'}",
        f"- Trials: {t['done']} done / {t['failed']} failed" + (f" / {t['pending']} pending" if t["pending"] else "")
        + f" (of {t['total']})",
        f"- Final score of a run: {final_text}. Intervals: 95% percentile stratified bootstrap "
        f"(rliable {prov['rliable']}, {report['settings']['reps']} repetitions, seed {report['settings']['seed']}).",
        f"- Generated by era-harness {prov['era_harness']} (`era report`); every number is also in `report.json`.",
        "",
    ]
    if report["notes"]:
        lines += ["## Notes", ""] + [f"- {_cell(n)}" for n in report["notes"]] + [""]
    if report.get("protocol"):
        lines += _protocol_lines(report["protocol"])

    groups = report["groups"]
    if groups:
        lines += ["## Aggregate normalized scores", "",
                  "IQM: 25%-trimmed mean over all runs and tasks; mean and median: of the per-task means; "
                  "optimality gap: 1 − mean(min(score, 1)) (lower is better)."
                  + (" Each ERA variant is aggregated with its baseline over the tasks both ran."
                     if len(groups) > 1 else ""), ""]
        for group in groups:
            if len(groups) > 1:
                lines += [f"### {', '.join(_code(a) for a in group['algorithms'])}", ""]
            lines += [f"Over {len(group['tasks'])} task(s): {', '.join(group['tasks'])}.", ""]
            lines += _table(["Algorithm", "Runs/task", "IQM", "Mean", "Median", "Optimality gap"], [
                [_code(a), v["runs_per_task"], _ci(v["iqm"]), _ci(v["mean"]), _ci(v["median"]),
                 _ci(v["optimality_gap"])] for a, v in _ordered(group["aggregates"], report["algorithms"])])
            lines += _figure_line(report, group["figures"]["aggregates"])
    if report["raw_aggregates"]:
        lines += ["## Raw-score aggregates (tasks without reference scores)", "",
                  "These tasks have no reference scores, so each is summarised alone on its raw score.", ""]
        for task, table in report["raw_aggregates"].items():
            lines += [f"### {task}", ""]
            lines += _table(["Algorithm", "Runs", "IQM", "Mean", "Median"], [
                [_code(a), v["runs"], _ci(v["iqm"]), _ci(v["mean"]), _ci(v["median"])]
                for a, v in _ordered(table, report["algorithms"])])
            lines += _figure_line(report, f"aggregates_raw_{figure_slug(task)}.png")

    lines += ["## Probability of improvement", ""]
    if report["probability_of_improvement"]:
        lines += ["P(X > Y): the probability that a run of X scores higher than a run of Y on the same task "
                  "(Mann-Whitney U), averaged over tasks; 0.5 means no difference.", ""]
        lines += _table(["X (ERA)", "Y (baseline)", "Scores", "P(X > Y)"], [
            [_code(r["x"]), _code(r["y"]), _scores_text(r), _ci(r)] for r in report["probability_of_improvement"]])
        lines += _figure_line(report, "probability_of_improvement.png")
    else:
        lines += ["No ERA variant has a baseline run to compare with.", ""]

    if groups:
        lines += ["## Performance profile", ""]
        for group in groups:
            lines += _figure_line(report, group["figures"]["performance_profile"])
    if "sample_efficiency.png" in report["figures"]:
        lines += ["## Sample efficiency", ""] + _figure_line(report, "sample_efficiency.png")

    lines += ["## Per-task results", "", "Final scores: mean ± standard deviation over seeds.", ""]
    lines += _table(["Task", "Algorithm", "Seeds", "Raw score", "Normalized score", "Final step"], [
        [r["task"], _code(r["algo"]), r["n"], _pm(r["raw"]),
         _pm(r["normalized"]) if r["normalized"] else "— (raw only)", r["final_step"]]
        for r in report["per_task"]]) if report["per_task"] else ["No finished run.", ""]

    if report["entropy"]:
        lines += ["## Entropy over training", "",
                  "Mean over seeds of the entropy of the distribution actions/outputs are sampled from; "
                  "the floor is the entropy ERA aims to keep the policy above, and the last column counts the "
                  "seeds whose final entropy is at or above it.", ""]
        lines += _table(["Task", "Algorithm", "First", "Last", "Lowest", "Lowest final", "ERA floor",
                         "Seeds at the floor"], [
            [e["task"], _code(e["algo"]), _f(e["first"]), _f(e["last"]), _f(e["lowest"]), _f(e["final_min"]),
             _f(e["floor"]) if e["floor"] is not None else "—",
             f"{e['seeds_at_floor']} of {e['seeds']}" if e["floor"] is not None else "—"]
            for e in report["entropy"]])
        lines += _figure_line(report, "entropy.png")

    if report.get("pass_at_k"):
        lines += ["## pass@k", "",
                  "Final pass@k in %: the chance that at least one of k sampled answers is correct, mean ± "
                  "standard deviation over seeds.", ""]
        ks = sorted({k for r in report["pass_at_k"] for k in r["k"]})
        lines += _table(["Task", "Algorithm", "Seeds", *(f"pass@{k}" for k in ks)], [
            [r["task"], _code(r["algo"]), r["n"],
             *(_pm({"mean": r["mean"][r["k"].index(k)], "std": r["std"][r["k"].index(k)]}) if k in r["k"] else "—"
               for k in ks)]
            for r in report["pass_at_k"]])
        lines += _figure_line(report, "pass_at_k.png")

    if report["paper"]:
        p = report["paper"]
        lines += [f"## Paper vs this run ({p['entry']})", "",
                  (f"Paper benchmark: {p['benchmark']}. " if p.get("benchmark") else "")
                  + "Paper: Kang et al. 2025 (arXiv 2510.08549), values as reported (± the reported spread). "
                  "This run: IQM and mean of normalized scores with 95% CIs for aggregate scores; mean ± std "
                  "of final scores over seeds for percentages.", ""]
        rows = []
        for r in p["rows"]:
            paper_text = _pm({"mean": r["paper"], "std": r["paper_pm"]})
            ours = r["this_run"]
            if ours is None:
                ours_text = "not run" if r["algo"] is None else "—"
            elif "iqm" in ours:
                ours_text = f"IQM {_ci(ours['iqm'])}; mean {_ci(ours['mean'])} ({_tasks(ours['tasks'])})"
            else:
                ours_text = _pm(ours) + f" (n={ours['n']})"
            rows.append([r["group"] or "—", r["paper_name"], r["metric"], paper_text,
                         _code(r["algo"]) if r["algo"] else "—", ours_text])
        lines += _table(["Setting", "Paper row", "Metric", "Paper", "Algorithm", "This run"], rows)

    if report.get("published"):
        lines += ["## Published curves at this run's step", "",
                  "Learning curves published with an algorithm's own code, read at the step every seed of "
                  "this run reached (each published seed interpolated between its points, then averaged; "
                  "the range is over published seeds). Their steps are agent steps, as this run's are. This run: "
                  "mean ± std of raw final scores over seeds.", ""]
        lines += _table(["Task", "Algorithm", "Step", "This run", "Published", "Published mean [seed range]"], [
            [r["task"], _code(r["algo"]), f"{r['step']:,}", _pm(r["this_run"]) + f" (n={r['this_run']['n']})",
             f"{r['published_algo']} ({r['source']}, {r['published']['n']} seeds)",
             f"{_f(r['published']['mean'])} [{_f(r['published']['seed_min'])}, {_f(r['published']['seed_max'])}]"]
            for r in report["published"]])

    for sweep in report["sensitivity"]:
        name = sweep.get("figure") or sensitivity_figure_name(sweep)
        over = f", {_tasks(sweep['tasks'])}" if sweep["scores"] == "normalized" and len(groups) > 1 else ""
        lines += [f"## Sensitivity: {sweep['base_algo']} — {sweep['key']} ({sweep['scores']} scores{over})", ""]
        rows = [[json.dumps(r["value"]), _code(r["algo"]), _ci(r["iqm"])] for r in sweep["rows"]]
        if sweep["baseline"]:
            rows.append(["(baseline)", _code(sweep["baseline"]["algo"]), _ci(sweep["baseline"]["iqm"])])
        lines += _table([sweep["key"], "Algorithm", "IQM"], rows)
        lines += _figure_line(report, name)

    lines += ["## Failed trials", ""]
    if report["failed_trials"]:
        lines += _table(["Trial", "Algorithm", "Task", "Seed", "Error"], [
            [_code(r["trial_id"]), _code(r["algo"]), r["task"], r["seed"], _error_line(r["error"])]
            for r in report["failed_trials"]])
    else:
        lines += ["None.", ""]
    lines += _closing_lines(report["closing"], t["total"])
    return "\n".join(lines).rstrip() + "\n"


def _duration(seconds: float) -> str:
    minutes = seconds / 60
    return f"{seconds:.0f} s" if seconds < 120 else f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def _closing_lines(closing: Mapping, trials: int) -> list[str]:
    """The closing note: the command that wrote the results and how long they took."""
    made = f"`{closing['command']}`" if closing.get("command") else "a command the results do not record"
    if closing.get("wall_time_s") is None:
        when = "; the trials recorded no start and end times."
    else:
        when = (f": {trials} trial(s) from {closing['first_start']} to {closing['last_end']}, wall time "
                f"{_duration(closing['wall_time_s'])} from the first trial's start to the last trial's end (any "
                f"pause between an interrupted run and its resume included); the trials' own times add up to "
                f"{_duration(closing['trial_time_s'])}.")
    return ["## Closing note", "", f"Results written by {made}{when} This report: `era report` on that results "
            "folder, with the settings listed under \"This run\".", ""]


def _protocol_lines(rows: Sequence[Mapping]) -> list[str]:
    lines = ["## Environment protocol", "",
             "How each environment was run. Budgets, evaluation intervals and the steps in every table and "
             "figure count agent steps; with action repeat, each agent step is that many simulator steps.", ""]
    return lines + _table(
        ["Task", "Algorithms", "Termination", "Action repeat", "Evaluation env", "Final agent steps",
         "Final simulator steps"],
        [[r["task"], ", ".join(_code(a) for a in r["algorithms"]),
          "ignored (episodes end at the time limit)" if r["ignore_termination"] else "kept",
          r["action_repeat"],
          f"seeded once with seed + {r['eval_seed_offset']}" if r["eval_seed_offset"] is not None
          else "a derived seed per episode",
          r["final_agent_steps"] if r["final_agent_steps"] is not None else "—",
          r["final_sim_steps"] if r["final_sim_steps"] is not None else "—"] for r in rows])


def _error_line(error: str | None) -> str:
    """A failed trial's error for its table cell (report.json's ``failed_trials`` hold it as one
    line already: the exception's type and first line); cut at 300 characters."""
    if not error or not error.strip():
        return "no error recorded"
    line = error.strip().splitlines()[0]
    return line if len(line) <= 300 else line[:299] + "…"


def _ordered(table: Mapping[str, Any], algos: Sequence[str]) -> list[tuple[str, Any]]:
    return [(a, table[a]) for a in algos if a in table]
