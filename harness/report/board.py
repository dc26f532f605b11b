"""The board of the paper's claims (``era board reports/`` -> ``reports/README.md``): one row per claim
of the reference table (``harness/data/claims.yaml``), with the paper's numbers, the suites that
reproduce it, the largest committed run of it, and its measured effect and verdict.

Everything on the board is read from committed files: the reports' ``report.json``, the suites and
the benchmark outputs under ``benchmarks/results/``. Nothing depends on the time or the machine it is
built on, so a test rebuilds it and compares it byte for byte with the committed one.

A report counts for a claim when its suite names the claim's paper entry (or one below it) and its
headline has a row pairing the claim's ERA algorithm with its baseline; a suite reproduces a claim
under the same two conditions. The largest run is the one with most tasks x seeds x budget.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ResultsDirError
from harness.report.markdown import _cell, _ci, headline_sentence, signed_ci
from harness.stats.paper import claim_of, claims, paper_entry

__all__ = ["OVERHEAD_LIMIT", "build_board", "overhead_verdict", "write_board"]

#: the paper's overhead claim: ERA adds less than 7% to the compute of a training step
OVERHEAD_LIMIT = 0.07
#: the benchmark outputs the overhead row reads, under the benchmarks' results folder
_ERA_OVERHEAD = "era_overhead/era_overhead.json"  # benchmarks/era_overhead.py --out: measurements with intervals
_GPU_CHECK = "gpu_check/summary.json"  # benchmarks/gpu_check.py --out: resnet50_era_over_plain, device, tiny


@dataclass(frozen=True)
class _Report:
    name: str
    path: Path  # its report.json
    data: dict


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value: float) -> str:
    return f"{value:g}"


def _link(text: str, target: Path, out_dir: Path) -> str:
    return f"[{text}]({Path(os.path.relpath(Path(target).resolve(), Path(out_dir).resolve())).as_posix()})"


# ------------------------------------------------------------------------------------ reading


def _reports(reports_dir: Path) -> list[_Report]:
    out = []
    for path in sorted(reports_dir.glob("*/report.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise ResultsDirError(f"{path} is not readable JSON ({error}): rewrite it with `era report`") from None
        out.append(_Report(path.parent.name, path, data))
    return out


def _family(claim: Mapping, row: Mapping, base_algos: Mapping[str, str]) -> bool:
    """Whether a headline row pairs the claim's ERA algorithm with its baseline."""
    from adapters.registry import ALGORITHMS, baseline_of

    x, y = base_algos.get(row["x"], row["x"]), base_algos.get(row["y"], row["y"])
    era = x == claim.get("era") or (x in ALGORITHMS and baseline_of(x) == claim.get("baseline"))
    return era and y == claim.get("baseline")


def _claim_rows(claim: Mapping, report: _Report) -> list[dict]:
    data = report.data
    if claim_of((data.get("suite") or {}).get("paper")) is not claim or "headline" not in data:
        return []
    return [r for r in data["headline"]["rows"] if _family(claim, r, data.get("base_algos") or {})]


def _size(row: Mapping) -> int:
    runs = min(row["runs_per_task"].values())
    return len(row["tasks"]) * runs * int(row["budget"].get("value") or 0)


def _scale(row: Mapping) -> str:
    runs = row["runs_per_task"]
    seeds = f"{runs['era']}" if runs["era"] == runs["baseline"] else f"{runs['era']} / {runs['baseline']}"
    budget = row["budget"]
    amount = "—" if budget.get("value") is None else f"{budget['value']:,} {budget['unit']}"
    plural = "s" if max(runs.values()) != 1 else ""
    return f"{len(row['tasks'])} task{'s' if len(row['tasks']) != 1 else ''} × {seeds} seed{plural} × {amount}"


def _effect(row: Mapping) -> str:
    on = "normalized" if row["scores"] == "normalized" else f"raw {row['scores']}"
    return (f"`{row['x']}` vs `{row['y']}` ({on}): IQM {signed_ci(row['iqm_difference'])}, "
            f"P(ERA > baseline) {_ci(row['probability_of_improvement'])}")


def _load_suites(suites_dir: Path) -> list[tuple[Path, Any, list]]:
    """Every suite file with its expanded trials (nothing validated: the board reads only its shape)."""
    from harness.suite import load_and_expand

    return [(path, *load_and_expand(path, check=False)) for path in sorted(suites_dir.glob("*.yaml"))]


def _suites(claim: Mapping, suites: Sequence[tuple[Path, Any, list]]) -> list[tuple[Path, Any, list]]:
    """The suites that name the claim's entry and run its pair, with the pair's trials."""
    out = []
    for path, suite, trials in suites:
        if claim_of(suite.paper) is not claim:
            continue
        mine = [t for t in trials if t.base_algo in (claim.get("baseline"), claim.get("era"))]
        if {t.base_algo for t in mine} == {claim.get("baseline"), claim.get("era")}:
            out.append((path, suite, mine))
    return out


def _suite_scale(trials: Sequence) -> str:
    tasks = sorted({t.spec.task for t in trials})
    seeds = sorted({t.spec.seed for t in trials})
    budgets = sorted({(t.spec.budget, t.unit) for t in trials})
    budget = "; ".join(f"{b:,} {u}" for b, u in budgets)
    return f"{len(tasks)} task{'s' if len(tasks) != 1 else ''} × {len(seeds)} seeds × {budget}"


def _needs(trials: Sequence) -> str:
    resources = sorted({(t.resources.cpus, t.resources.gpus) for t in trials})
    each = "; ".join(f"{_number(c)} CPU{'s' if c != 1 else ''}" + (f" + {_number(g)} GPU" if g else "")
                     for c, g in resources)
    return f"{len(trials)} trials, {each} each"


# ------------------------------------------------------------------------------------ overhead


def overhead_verdict(ratio: float, ratio_ci: Sequence[float] | None) -> str:
    """The overhead claim against one measurement of ERA time / plain time: with its 95% interval,
    ``within the claim`` when the interval lies below 1 + 7%, ``above the claim`` when it lies above,
    else ``not clear``; with a point alone, which side of 1 + 7% it falls, said to have no interval."""
    limit = 1.0 + OVERHEAD_LIMIT
    if ratio_ci and all(v is not None for v in ratio_ci):
        low, high = ratio_ci
        return "within the claim" if high < limit else "above the claim" if low > limit else "not clear"
    return ("within the claim" if ratio < limit else "above the claim") + " (a point, no interval)"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except ValueError as error:
        raise ResultsDirError(f"{path} is not readable JSON ({error}): run its benchmark again") from None


def _overhead(benchmarks_dir: Path) -> list[tuple[str, Path, dict]]:
    """The committed overhead measurements, as ``(label, file, {device, measurements})``: the CPU
    benchmark's, then the GPU check's ResNet-50 ratio (a check run with ``--tiny`` is no measurement)."""
    out = []
    path = benchmarks_dir / _ERA_OVERHEAD
    if path.is_file():
        data = _read_json(path)
        if data.get("measurements"):
            out.append(("era_overhead", path, {"device": data.get("device"), "measurements": data["measurements"]}))
    path = benchmarks_dir / _GPU_CHECK
    if path.is_file():
        data = _read_json(path)
        ratio = data.get("resnet50_era_over_plain")
        if _is_number(ratio) and not data.get("tiny"):
            row = next((r for r in data.get("rows") or [] if r.get("name") == "resnet50"), {})
            figures = row.get("figures") or {}
            name = ", ".join(str(figures[k]) for k in ("model", "precision", "memory_format") if figures.get(k))
            out.append(("gpu_check", path, {"device": data.get("device"), "measurements": [
                {"name": name or "ResNet-50 training step", "ratio": float(ratio), "ratio_ci": None}]}))
    return out


def _overhead_row(claim: Mapping, benchmarks_dir: Path, out_dir: Path) -> list[str]:
    found = _overhead(benchmarks_dir)
    paper = (paper_entry(claim["entry"])[0] or {}).get("claim", "—")
    script = benchmarks_dir.parent / "era_overhead.py"
    suites = _link("benchmarks/era_overhead.py", script, out_dir)
    if not found:
        return [claim["claim"], paper, claim["paper_scale"], suites, f"not run here: {claim['needs']}", "—", "—", "—"]
    runs, scales, effects, verdicts = [], [], [], []
    for label, path, data in found:
        md = path.with_suffix(".md")
        runs.append(_link(f"{label} ({data.get('device', 'device not recorded')})", md if md.is_file() else path,
                          out_dir))
        for m in data["measurements"]:
            ci = m.get("ratio_ci")
            interval = f" [{(ci[0] - 1) * 100:+.1f}%, {(ci[1] - 1) * 100:+.1f}%]" if ci else ""
            scales.append(f"{m['repeats']} paired repeats" if m.get("repeats") else "—")
            effects.append(f"{m['name']}: {(m['ratio'] - 1) * 100:+.1f}%{interval}")
            verdicts.append(f"**{overhead_verdict(m['ratio'], ci)}**")
    return [claim["claim"], paper, claim["paper_scale"], suites, "<br>".join(runs), "<br>".join(scales),
            "<br>".join(effects), "<br>".join(verdicts)]


# ------------------------------------------------------------------------------------ rows


def _paper_numbers(entry: str) -> str:
    """The paper's numbers of an entry, baseline -> ERA, on one line."""
    node = paper_entry(entry)[0]
    if not isinstance(node, Mapping):
        return "—"
    roles = {"baseline": "baseline", "grpo": "baseline", "era": "era"}

    def pair(values: Mapping, metric: str | None) -> str | None:
        base = next((values[k] for k in values if roles.get(k) == "baseline"), None)
        era = values.get("era")
        if metric:
            base, era = (v.get(metric) if isinstance(v, Mapping) else None for v in (base, era))
        return f"{_number(base)} → {_number(era)}" if _is_number(base) and _is_number(era) else None

    if any(k in node for k in roles):
        text = pair(node, None)
        return f"{text} (aggregate normalized score)" if text else "no numbers in the reference table"
    parts = []
    for group, values in node.items():
        if isinstance(values, Mapping) and any(k in values for k in roles):
            metric = "top1" if isinstance(values.get("era"), Mapping) else None
            text = pair(values, metric)
            if text:
                parts.append(f"{group.replace('_', ' ')} {text}")
    unit = " (top-1 %)" if entry.startswith("classification") else " (accuracy %)" if entry.startswith("llm") else ""
    return "; ".join(parts) + unit if parts else "no numbers in the reference table"


def _claim_row(claim: Mapping, reports: Sequence[_Report], suites: Sequence[tuple[Path, Any, list]],
               out_dir: Path) -> list[str]:
    suites = _suites(claim, suites)
    suite_text = "<br>".join(f"{_link(p.stem, p, out_dir)} ({_suite_scale(t)})" for p, _, t in suites) or "none yet"
    found = [(r, rows) for r in reports if (rows := _claim_rows(claim, r))]
    head = [claim["claim"], _paper_numbers(claim["entry"]), claim["paper_scale"], suite_text]
    if not found:
        needs = claim["needs"] + "".join(f"; {p.stem}: {_needs(t)}" for p, _, t in suites)
        return head + [f"not run here: {needs}", "—", "—", "—"]
    report, rows = max(found, key=lambda item: (max(_size(r) for r in item[1]), item[0].name))
    link = _link(report.name, report.path.with_suffix(".md"), out_dir)
    return head + [link, "<br>".join(_scale(r) for r in rows), "<br>".join(_effect(r) for r in rows),
                   "<br>".join(f"**{r['verdict']}**" for r in rows)]


def _report_lines(reports: Sequence[_Report], out_dir: Path) -> list[str]:
    lines = ["## Every committed report", "",
             "Each report's headline, as its first section states it.", ""]
    for report in reports:
        data = report.data
        entry = (data.get("suite") or {}).get("paper")
        named = f" (suite names `{entry}`)" if entry else ""
        lines += [f"### {_link(report.name, report.path.with_suffix('.md'), out_dir)}{named}", ""]
        if "headline" not in data:
            lines += [f"This report predates the headline (report format {data.get('format', 1)}): regenerate it "
                      f"with `era report` from its results folder.", ""]
            continue
        lines += [_cell(headline_sentence(data["headline"])), ""]
    return lines


def build_board(reports_dir: str | Path, *, suites_dir: str | Path, benchmarks_dir: str | Path,
                out: str | Path | None = None) -> str:
    """The board's markdown, from the committed reports under ``reports_dir``, the suites under
    ``suites_dir`` and the benchmark outputs under ``benchmarks_dir`` (``benchmarks/results``);
    links are relative to ``out`` (default ``reports_dir/README.md``)."""
    reports_dir, suites_dir, benchmarks_dir = Path(reports_dir), Path(suites_dir), Path(benchmarks_dir)
    out_dir = (Path(out) if out is not None else reports_dir / "README.md").parent
    reports, suites = _reports(reports_dir), _load_suites(suites_dir)
    rows = [_overhead_row(c, benchmarks_dir, out_dir) if c.get("benchmark") == "era_overhead"
            else _claim_row(c, reports, suites, out_dir) for c in claims()]
    header = ["Claim", "Paper (baseline → ERA)", "Paper's scale", "Suites (scale)", "Largest committed run",
              "Its scale", "ERA effect here (95% CIs)", "Verdict"]
    lines = [
        "# The paper's claims, reproduced", "",
        "One row per claim of the ERA paper's reference table (Kang et al. 2025, arXiv 2510.08549; "
        "`harness/data/paper_results.yaml`): the paper's numbers, the suites that reproduce it, and the largest "
        "run of it committed here, with ERA's measured effect and the verdict. IQM: difference of IQM, ERA − "
        "baseline, on normalized scores; P: the probability that an ERA run beats a baseline run on the same "
        "task. Verdicts follow the rule fixed before any run was read (docs/reports.md); the reference table "
        "gives no seed counts, so the paper's scale lists tasks and budget only. Small runs answer the direction "
        "of an effect at their own scale, not the paper's magnitudes.", "",
        "Generated by `era board reports/` from the committed reports, the suites and `benchmarks/results/`; "
        "`tests/harness/test_board.py` rebuilds it and fails when it differs.", "",
        "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in row) + " |" for row in rows]
    lines += [""] + _report_lines(reports, out_dir)
    return "\n".join(lines).rstrip() + "\n"


def write_board(reports_dir: str | Path, out: str | Path | None = None, *, suites_dir: str | Path,
                benchmarks_dir: str | Path) -> Path:
    """Write the board (atomically) and return its path."""
    from harness.store import write_atomic

    target = Path(out) if out is not None else Path(reports_dir) / "README.md"
    text = build_board(reports_dir, suites_dir=suites_dir, benchmarks_dir=benchmarks_dir, out=target)
    write_atomic(target, lambda tmp: tmp.write_text(text))
    return target
