"""``era report``: report.md, report.json and figures from results directories as ``era run`` writes them.

The results directories are synthetic but realistic test data (learning curves, failures, sweeps);
rliable and matplotlib run for real.
"""

import json
import shutil
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness import stats
from harness.cli import main
from harness.stats.normalize import normalized_score
from harness.report import build_report, load_results, render_markdown, write_report

REPS = 30
SWEEP = "sac-era[entropy_per_dim=0.5]"
TASKS = ("gym:Hopper-v5", "gym:Walker2d-v5", "gym:Pendulum-v1")
ERROR = "TrainingDivergedError: NaN in the critic at step 2000\nTraceback line"


def write_results_dir(path, *, algos=("sac", "sac-era", SWEEP), tasks=TASKS, seeds=(0, 1, 2),
                      steps=(1000, 2000, 3000, 4000), failed=(), skip=(), paper=None, benchmark="auto"):
    """A results directory in the layout ``era run`` writes (results/trials parquet, suite.json)."""
    rng = np.random.default_rng(0)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    rows, trials = [], []
    for algo in algos:
        base = algo.split("[")[0]
        era = base.endswith("-era")
        h0 = 0.5 * 3 if "=0.5" in algo else 0.25 * 3  # entropy_per_dim x action dims
        for task in tasks:
            for seed in seeds:
                trial_id = f"{algo}-{task}-{seed}"
                status = "failed" if (algo, task, seed) in failed else "done"
                trials.append({
                    "trial_id": trial_id, "suite": "demo", "algo": algo, "base_algo": base, "task": task,
                    "seed": seed, "status": status,
                    "error": ERROR if status == "failed" else None,
                    "config_hash": f"h{seed}", "code_version": "abc1234", "packages": "{}",
                    "finished_at": f"2026-11-2{seed}T10:0{len(trials) % 10}:00+0000",
                })
                if (algo, task, seed) in skip:
                    continue
                low, high = (-1400.0, -150.0) if "Pendulum" in task else (20.0, 3200.0)
                skill = 0.5 + (0.2 if era else 0.0) + rng.normal(0, 0.08)
                for i, step in enumerate(steps):
                    if status == "failed" and i >= 2:
                        break
                    progress = (i + 1) / len(steps)
                    score = low + (high - low) * skill * progress + rng.normal(0, 30)
                    row = {
                        "trial_id": trial_id, "suite": "demo", "algo": algo, "base_algo": base, "task": task,
                        "seed": seed, "step": step, "score": score,
                        "normalized_score": normalized_score(None, task, score),
                        # ERA holds the entropy at its floor; the baseline's collapses
                        "entropy": h0 + abs(rng.normal(0, 0.05)) if era else 3.0 - 4.0 * progress + rng.normal(0, 0.05),
                        "wall_time_s": 10.0 * (i + 1),
                    }
                    if era:
                        row.update({"gaussian_entropy": h0 + 0.4, "delta": 0.4, "setting.entropy_per_dim": h0 / 3})
                    rows.append(row)
    pd.DataFrame(rows).to_parquet(path / "results.parquet", index=False)
    pd.DataFrame(trials).to_parquet(path / "trials.parquet", index=False)
    variants = [{"algo": a, "base_algo": a.split("[")[0], "label": a.split("[")[0],
                 "sweep": {"entropy_per_dim": 0.5} if "[" in a else {}} for a in algos]
    (path / "suite.json").write_text(json.dumps({
        "name": "demo", "benchmark": benchmark, "paper": paper, "variants": variants,
        "tasks": list(tasks), "seeds": list(seeds)}))
    return path


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    results = write_results_dir(root / "results", failed={("sac", "gym:Hopper-v5", 2)}, paper="continuous_control.sac")
    md = write_report(results, root / "report", reps=REPS, seed=0, bootstrap="rliable")  # exact cross-check
    return results, md, json.loads((root / "report" / "report.json").read_text())


def _independent_finals(results_dir):
    """Final (last-step) scores of done trials, straight from the parquet files."""
    results = pd.read_parquet(results_dir / "results.parquet")
    trials = pd.read_parquet(results_dir / "trials.parquet")
    done = set(trials.loc[trials["status"] == "done", "trial_id"])
    results = results[results["trial_id"].isin(done)]
    return results.loc[results.groupby("trial_id")["step"].idxmax()]


def _round(x):
    return float(f"{x:.6g}")


def test_writes_markdown_json_and_every_referenced_figure(demo):
    _, md, report = demo
    text = md.read_text()
    referenced = re.findall(r"!\[[^\]]*\]\((figures/[^)]+)\)", text)
    assert len(referenced) >= 6
    for rel in referenced:
        png = md.parent / rel
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    on_disk = {f"figures/{p.name}" for p in (md.parent / "figures").iterdir()}
    assert on_disk == set(referenced)
    for name in ("aggregates.png", "probability_of_improvement.png", "performance_profile.png",
                 "sample_efficiency.png", "entropy.png", "sensitivity_sac-era_entropy_per_dim.png"):
        assert f"figures/{name}" in on_disk


def test_header_counts_date_and_code_version(demo):
    _, md, report = demo
    text = md.read_text()
    assert "Trials: 26 done / 1 failed (of 27)" in text
    assert "2026-11-22 10:0" in text and "abc1234" in text
    assert report["trials"] == {"done": 26, "failed": 1, "pending": 0, "total": 27}


def test_aggregates_agree_with_rliable_on_the_same_final_scores(demo):
    from rliable import library as rly
    from rliable import metrics

    results_dir, _, report = demo
    finals = _independent_finals(results_dir)
    tasks = ["gym:Hopper-v5", "gym:Walker2d-v5"]
    assert report["normalized_tasks"] == tasks
    [group] = report["groups"]  # every pair ran the same tasks: one group
    assert group["tasks"] == tasks and group["algorithms"] == ["sac", "sac-era", SWEEP]
    funcs = [metrics.aggregate_iqm, metrics.aggregate_mean, metrics.aggregate_median, metrics.aggregate_optimality_gap]
    for algo in ("sac", "sac-era", SWEEP):
        rows = finals[finals["algo"] == algo]
        n = min(len(rows[rows["task"] == t]) for t in tasks)
        matrix = np.stack([rows[rows["task"] == t].sort_values("seed")["normalized_score"].to_numpy()[:n]
                           for t in tasks], axis=1)
        np.random.seed(stats.key_seed(0, algo))
        points, cis = rly.get_interval_estimates({algo: matrix}, lambda s: np.array([f(s) for f in funcs]), reps=REPS)
        for i, name in enumerate(("iqm", "mean", "median", "optimality_gap")):
            entry = group["aggregates"][algo][name]
            assert entry["value"] == _round(points[algo][i])
            assert entry["ci"] == [_round(cis[algo][0, i]), _round(cis[algo][1, i])]
    assert group["aggregates"]["sac"]["runs_per_task"] == 2  # one Hopper seed failed


def test_every_interval_contains_its_point(demo):
    _, _, report = demo
    estimates = [e for g in report["groups"] for algo in g["aggregates"].values() for k, e in algo.items()
                 if k != "runs_per_task"]
    estimates += [e for table in report["raw_aggregates"].values() for algo in table.values()
                  for k, e in algo.items() if k != "runs"]
    estimates += report["probability_of_improvement"]
    assert len(estimates) > 20
    for e in estimates:
        assert e["ci"][0] <= e["value"] <= e["ci"][1]


def test_probability_of_improvement_pairs_and_values(demo):
    results_dir, _, report = demo
    finals = _independent_finals(results_dir)
    rows = {(r["x"], r["y"], r["scores"]): r["value"] for r in report["probability_of_improvement"]}
    assert set(rows) == {("sac-era", "sac", "normalized"), (SWEEP, "sac", "normalized"),
                         ("sac-era", "sac", "gym:Pendulum-v1"), (SWEEP, "sac", "gym:Pendulum-v1")}
    x = finals[(finals["algo"] == "sac-era") & (finals["task"] == "gym:Pendulum-v1")]["score"].to_numpy()
    y = finals[(finals["algo"] == "sac") & (finals["task"] == "gym:Pendulum-v1")]["score"].to_numpy()
    by_hand = ((x[:, None] > y[None, :]).sum() + 0.5 * (x[:, None] == y[None, :]).sum()) / (len(x) * len(y))
    assert rows[("sac-era", "sac", "gym:Pendulum-v1")] == _round(by_hand)


def test_per_task_table_and_raw_tasks(demo):
    results_dir, md, report = demo
    finals = _independent_finals(results_dir)
    assert report["raw_tasks"] == ["gym:Pendulum-v1"]
    for row in report["per_task"]:
        values = finals[(finals["algo"] == row["algo"]) & (finals["task"] == row["task"])]
        assert row["n"] == len(values)
        assert row["raw"]["mean"] == _round(values["score"].mean())
        assert row["raw"]["std"] == _round(values["score"].std(ddof=1))
        if row["task"] == "gym:Pendulum-v1":
            assert row["normalized"] is None
        else:
            assert row["normalized"]["mean"] == _round(values["normalized_score"].mean())
    text = md.read_text()
    assert "— (raw only)" in text and "### gym:Pendulum-v1" in text


def test_notes_failed_trials_entropy_paper_and_sensitivity(demo):
    _, md, report = demo
    notes = " ".join(report["notes"])
    assert "gym:Pendulum-v1 is reported on raw scores" in notes
    assert "unequal run counts" in notes and "sac has" in notes
    assert report["failed_trials"][0]["error"].startswith("TrainingDivergedError")
    text = md.read_text()
    assert "TrainingDivergedError: NaN in the critic at step 2000" in text and "Traceback line" not in text
    floors = {(e["algo"], e["task"]): e["floor"] for e in report["entropy"]}
    assert floors[("sac-era", "gym:Hopper-v5")] == pytest.approx(0.75)
    assert floors[(SWEEP, "gym:Hopper-v5")] == pytest.approx(1.5) and floors[("sac", "gym:Hopper-v5")] is None
    paper = {(r["paper_name"], r["algo"]): r for r in report["paper"]["rows"]}
    assert paper[("baseline", "sac")]["paper"] == 0.59 and paper[("era", "sac-era")]["paper"] == 0.84
    assert paper[("era", "sac-era")]["this_run"]["iqm"] == report["groups"][0]["aggregates"]["sac-era"]["iqm"]
    assert "## Paper vs this run (continuous_control.sac)" in text
    sweep = [s for s in report["sensitivity"] if s["scores"] == "normalized"][0]
    assert [r["value"] for r in sweep["rows"]] == [0.25, 0.5]  # plain sac-era's value from its setting column
    assert sweep["baseline"]["algo"] == "sac"


def test_same_inputs_give_byte_identical_report(demo, tmp_path):
    results_dir, md, _ = demo
    again = write_report(results_dir, tmp_path / "again", reps=REPS, seed=0, bootstrap="rliable")
    assert (again.parent / "report.json").read_bytes() == (md.parent / "report.json").read_bytes()
    assert again.read_bytes() == md.read_bytes()


def test_edge_cases_produce_notes_not_crashes(tmp_path):
    single = write_results_dir(tmp_path / "single", seeds=(0,), tasks=("gym:Hopper-v5", "gym:Walker2d-v5"))
    report, _ = build_report(load_results(single), reps=10)
    assert any("single run per task" in n for n in report["notes"])
    iqm = report["groups"][0]["aggregates"]["sac"]["iqm"]
    assert iqm["ci"] == [iqm["value"], iqm["value"]]

    missing = write_results_dir(tmp_path / "missing", algos=("sac", "sac-era"), tasks=TASKS[:2],
                                skip={("sac-era", "gym:Walker2d-v5", s) for s in range(3)})
    report, _ = build_report(load_results(missing), reps=10)
    assert report["normalized_tasks"] == ["gym:Hopper-v5"]
    assert any("gym:Walker2d-v5 is left out of the comparison sac-era vs sac" in n and "run of sac-era" in n
               for n in report["notes"])

    all_failed = write_results_dir(tmp_path / "failed", algos=("sac",), tasks=("gym:Hopper-v5",), seeds=(0,),
                                   failed={("sac", "gym:Hopper-v5", 0)})
    report, figures = build_report(load_results(all_failed), reps=10)
    assert report["groups"] == [] and figures == []
    assert any("no trial finished" in n for n in report["notes"])
    text = render_markdown(report)
    assert "0 done / 1 failed" in text and "No ERA variant has a baseline run" in text
    assert "No ERA variant ran in this suite" in text

    no_baseline = write_results_dir(tmp_path / "alone", algos=("sac-era",), tasks=("gym:Pendulum-v1",), seeds=(0, 1))
    report, _ = build_report(load_results(no_baseline), reps=10)
    assert any("no baseline run" in n for n in report["notes"]) and report["probability_of_improvement"] == []
    assert report["headline"]["without_baseline"] == [{"algo": "sac-era", "baseline": "sac"}]
    assert "sac-era without sac" in render_markdown(report).split("## This run")[0]


def test_era_report_cli_default_location_and_era_trial_folder(tmp_path, monkeypatch, capsys):
    from adapters.trial import TrialSpec
    from harness.store import TrialState, write_trial_tables
    from harness.suite import Trial

    folder = tmp_path / "runs" / "one"
    trial = Trial.single(TrialSpec("sac", "gym:Hopper-v5", 0, 1000), suite="one")
    records = [{"step": s, "score": v, "entropy": e, "wall_time_s": t}
               for s, v, e, t in ((500, 400.0, 1.0, 1.0), (1000, 900.0, 0.5, 2.0))]
    write_trial_tables(folder, trial, TrialState(trial.trial_id, status="done", records=records))  # as era trial does
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(folder), "--reps", "10"]) == 0
    report = json.loads((tmp_path / "reports" / "one" / "report.json").read_text())
    expected = normalized_score(None, "gym:Hopper-v5", 900.0)
    assert report["groups"][0]["aggregates"]["sac"]["iqm"]["value"] == _round(expected)
    assert report["trials"]["done"] == 1

    # a folder with only a results table (an older era trial's) is refused, not filled in
    (tmp_path / "old").mkdir()
    pd.read_parquet(folder / "results.parquet").to_parquet(tmp_path / "old" / "results.parquet")
    assert main(["report", str(tmp_path / "old"), "--out", str(tmp_path / "old-report")]) == 2
    assert "lacks trials.parquet, suite.json" in capsys.readouterr().err
    assert not (tmp_path / "old-report").exists()


def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope"), "--out", str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err
    results = write_results_dir(tmp_path / "res", algos=("sac",), tasks=("gym:Hopper-v5",), seeds=(0,))
    assert main(["report", str(results), "--final", "best", "--out", str(tmp_path / "out")]) == 2
    assert "'mean:K'" in capsys.readouterr().err
    shutil.copytree(results, tmp_path / "corrupt")
    (tmp_path / "corrupt" / "results.parquet").write_text("not parquet")
    assert main(["report", str(tmp_path / "corrupt"), "--out", str(tmp_path / "out")]) == 2
    assert "results.parquet is corrupt" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("name", "damage"), [
    ("trials.parquet", lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])),
    ("results.parquet", lambda p: p.write_bytes(p.read_bytes()[:100])),
    ("suite.json", lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])),
    ("suite.json", lambda p: p.write_text("[]")),
], ids=["truncated-trials", "truncated-results", "truncated-suite", "suite-not-an-object"])
def test_a_corrupt_table_is_named_with_the_fix_in_one_line(tmp_path, capsys, name, damage):
    results = write_results_dir(tmp_path / "res", algos=("sac",), tasks=("gym:Hopper-v5",), seeds=(0,))
    damage(results / name)
    assert main(["report", str(results), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert f"{results / name} is corrupt" in err and "again" in err
    assert not (tmp_path / "out").exists()


def test_classification_report_compares_top1_and_top5_with_the_paper(tmp_path):
    rows, trials = [], []
    for algo, top1 in (("resnet", 93.6), ("resnet-era", 93.8)):
        for seed in range(3):
            trial_id = f"{algo}-cifar10-{seed}"
            trials.append({"trial_id": trial_id, "algo": algo, "base_algo": algo, "task": "cifar10", "seed": seed,
                           "status": "done", "error": None, "code_version": "abc1234"})
            for epoch in (1, 2):
                score = top1 - (2 - epoch) * 5 + 0.1 * seed
                rows.append({"trial_id": trial_id, "algo": algo, "base_algo": algo, "task": "cifar10", "seed": seed,
                             "step": epoch, "score": score, "normalized_score": normalized_score(None, "cifar10", score),
                             "entropy": 0.9, "wall_time_s": 1.0, "top5": 99.7 + 0.01 * seed,
                             "setting.min_entropy": 0.6 if algo == "resnet-era" else None})
    pd.DataFrame(rows).to_parquet(tmp_path / "results.parquet")
    pd.DataFrame(trials).to_parquet(tmp_path / "trials.parquet")
    (tmp_path / "suite.json").write_text(json.dumps({"name": "cifar", "paper": "classification.cifar10.no_augmentation"}))
    report, _ = build_report(load_results(tmp_path), reps=10)
    assert report["groups"][0]["aggregates"]["resnet-era"]["iqm"]["value"] == pytest.approx(0.939)
    paper = {(r["paper_name"], r["metric"]): r for r in report["paper"]["rows"]}
    top1 = paper[("era", "top-1 (%)")]
    assert top1["paper"] == 93.82 and top1["paper_pm"] == 0.08 and top1["algo"] == "resnet-era"
    assert top1["this_run"]["mean"] == pytest.approx(93.9) and top1["this_run"]["n"] == 3
    assert paper[("baseline", "top-5 (%)")]["this_run"]["mean"] == pytest.approx(99.71)
    floors = {e["algo"]: e["floor"] for e in report["entropy"]}
    assert floors == {"resnet": None, "resnet-era": 0.6}
    assert "| top-1 (%) | 93.82 ± 0.08 | `resnet-era` | 93.90 ± 0.10 (n=3) |" in render_markdown(report)


def _llm_results_dir(path):
    """Results as the LLM family records them: entropy with ERA's floor, pass@k up to 4 samples."""
    path.mkdir(parents=True, exist_ok=True)
    final = {("grpo", 0): 0.30, ("grpo", 1): 0.20, ("grpo", 2): 0.25,
             ("grpo-era", 0): 1.25, ("grpo-era", 1): 1.20, ("grpo-era", 2): 0.90}
    rows, trials = [], []
    for (algo, seed), last in final.items():
        trial_id = f"{algo}-llm-{seed}"
        trials.append({"trial_id": trial_id, "algo": algo, "base_algo": algo, "task": "llm:decompose", "seed": seed,
                       "status": "done", "error": None, "code_version": "abc1234"})
        for step, entropy in ((0, 2.0), (50, 0.4 + seed / 10), (100, last)):
            p1 = 40.0 + step / 5 + seed
            rows.append({"trial_id": trial_id, "algo": algo, "base_algo": algo, "task": "llm:decompose", "seed": seed,
                         "step": step, "score": p1, "normalized_score": None, "entropy": entropy,
                         "wall_time_s": 1.0, "entropy_floor": 1.2 if algo == "grpo-era" else None,
                         "pass@1": p1, "pass@2": p1 + 10 + 5 * (algo == "grpo-era"), "pass@4": p1 + 15 + 10 * seed})
    pd.DataFrame(rows).to_parquet(path / "results.parquet")
    pd.DataFrame(trials).to_parquet(path / "trials.parquet")
    (path / "suite.json").write_text(json.dumps({"name": "floor", "benchmark": "llm"}))
    return path


def test_entropy_table_counts_the_seeds_that_end_at_the_floor(tmp_path):
    """A floor that the mean respects can still be broken by one seed: the table says how many held it."""
    report, _ = build_report(load_results(_llm_results_dir(tmp_path)), reps=10)
    entropy = {e["algo"]: e for e in report["entropy"]}
    era, grpo = entropy["grpo-era"], entropy["grpo"]
    assert era["floor"] == 1.2 and era["seeds"] == 3
    assert era["seeds_at_floor"] == 2  # 1.25 and 1.20 (equal counts), not 0.90
    assert era["final_min"] == pytest.approx(0.9) and era["last"] == pytest.approx((1.25 + 1.2 + 0.9) / 3, abs=1e-5)
    assert grpo["floor"] is None and grpo["seeds_at_floor"] is None and grpo["final_min"] == pytest.approx(0.2)
    text = render_markdown(report)
    assert "| llm:decompose | `grpo-era` | 2.000 | 1.117 | 0.500 | 0.900 | 1.200 | 2 of 3 |" in text, text


def test_pass_at_k_table_and_figure_from_the_final_evaluations(tmp_path):
    results_dir = _llm_results_dir(tmp_path / "results")
    out = write_report(results_dir, tmp_path / "out", reps=10)
    report = json.loads((out.parent / "report.json").read_text())
    finals = _independent_finals(results_dir)
    for row in report["pass_at_k"]:
        assert row["k"] == [1, 2, 4] and row["n"] == 3
        mine = finals[finals["algo"] == row["algo"]]
        for k, mean, std in zip(row["k"], row["mean"], row["std"]):
            assert mean == pytest.approx(mine[f"pass@{k}"].mean()) and std == pytest.approx(mine[f"pass@{k}"].std(ddof=1))
    assert [r["algo"] for r in report["pass_at_k"]] == ["grpo", "grpo-era"]
    text = out.read_text()
    assert "## pass@k" in text and "| llm:decompose | `grpo-era` | 3 | 61.00 ± 1.00 | 76.00 ± 1.00 | 86.00 ± 11.00 |" in text
    assert (out.parent / "figures" / "pass_at_k.png").stat().st_size > 5000
    # a suite without pass@k columns gets no such section
    assert "pass@k" not in render_markdown(build_report(load_results(write_results_dir(tmp_path / "rl")), reps=10)[0])


def _nulls(node, path=()):
    """The paths of every null under ``node`` (a report.json section)."""
    if node is None:
        return {path}
    if isinstance(node, dict):
        return set().union(set(), *(_nulls(v, (*path, k)) for k, v in node.items()))
    if isinstance(node, list):
        return set().union(set(), *(_nulls(v, (*path, i)) for i, v in enumerate(node)))
    return set()


def test_a_nan_final_score_gives_nan_cells_where_rliable_gives_nan_and_a_note(tmp_path):
    results_dir = write_results_dir(tmp_path / "results")
    frame = pd.read_parquet(results_dir / "results.parquet")
    last = frame["step"] == frame["step"].max()
    diverged = ("sac-era-gym:Hopper-v5-1", f"{SWEEP}-gym:Pendulum-v1-0")  # a normalized and a raw task
    frame.loc[frame["trial_id"].isin(diverged) & last, ["score", "normalized_score"]] = np.nan
    frame.to_parquet(results_dir / "results.parquet", index=False)
    md = write_report(results_dir, tmp_path / "report", reps=REPS, seed=0)  # draws every figure too
    report = json.loads((md.parent / "report.json").read_text())

    assert report["normalized_tasks"] == ["gym:Hopper-v5", "gym:Walker2d-v5"]  # a NaN run keeps its task
    nan = {"value": None, "ci": [None, None]}
    aggregates = report["groups"][0]["aggregates"]
    assert all(aggregates["sac-era"][m] == nan for m in stats.METRICS)
    assert all(None not in [e["value"], *e["ci"]] for m in stats.METRICS for e in [aggregates["sac"][m]])
    assert all(report["raw_aggregates"]["gym:Pendulum-v1"][SWEEP][m] == nan for m in ("iqm", "mean", "median"))
    poi = {(r["x"], r["scores"]): r for r in report["probability_of_improvement"]}
    assert {k for k, r in poi.items() if r["value"] is None} == {("sac-era", "normalized"), (SWEEP, "gym:Pendulum-v1")}
    assert all(r["ci"] == [None, None] for r in poi.values() if r["value"] is None)
    curve = report["groups"][0]["sample_efficiency"]["algorithms"]["sac-era"]
    assert [v is None for v in curve["iqm"]] == [False, False, False, True] == [v is None for v in curve["ci_low"]]

    # null (NaN) exactly where rliable's own bootstrap gives NaN, on every statistic of the report
    theirs, _ = build_report(load_results(results_dir), reps=REPS, seed=0, bootstrap="rliable")
    for section in ("groups", "raw_aggregates", "probability_of_improvement", "sample_efficiency", "per_task",
                    "headline"):
        assert _nulls(report[section]) == _nulls(theirs[section]), section

    text = md.read_text()
    note = next(n for n in report["notes"] if "NaN" in n)
    assert "2 finished trial(s)" in note and "sac-era on gym:Hopper-v5 (seed 1)" in note
    assert f"| `sac-era` | 3 | NaN | NaN | NaN | NaN |" in text
    assert "| gym:Hopper-v5 | `sac-era` | 3 | NaN | NaN | 4000 |" in text
    assert f"| `{SWEEP}` | `sac` | normalized (2 tasks) | " in text
    assert "| `sac-era` | `sac` | normalized (2 tasks) | NaN |" in text
    headline = {(r["x"], r["scores"]): r for r in report["headline"]["rows"]}
    assert headline[("sac-era", "normalized")]["verdict"] == "not computable"
    assert headline[("sac-era", "normalized")]["iqm_difference"] == nan
