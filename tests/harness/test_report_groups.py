"""Reports of suites whose pairs run on different task sets (the cpu-repro shape: PPO on MuJoCo, ResNet
on digits), written through the real store; the headline checked against rliable on the same scores."""

import json

import numpy as np
import pandas as pd
import pytest

from harness import stats
from harness.report import build_report, load_results, write_report
from report_data import ROOT, write_cpu_repro_shape

REPS = 60
GYM = ["gym:HalfCheetah-v5", "gym:Hopper-v5", "gym:Walker2d-v5"]


@pytest.fixture(scope="module")
def cpu_repro(tmp_path_factory):
    root = tmp_path_factory.mktemp("cpu-repro")
    results = write_cpu_repro_shape(root / "results")
    md = write_report(results, root / "report", reps=REPS, seed=0, bootstrap="rliable")  # exact cross-check
    return results, md, json.loads((root / "report" / "report.json").read_text())


def _matrix(results_dir, algo, tasks):
    """(seeds, tasks) final normalized scores of ``algo``, straight from the parquet file."""
    frame = pd.read_parquet(results_dir / "results.parquet")
    last = frame.loc[frame.groupby("trial_id")["step"].idxmax()]
    rows = last[last["algo"] == algo]
    return np.stack([rows[rows["task"] == t].sort_values("seed")["normalized_score"].to_numpy() for t in tasks], axis=1)


def test_each_pair_is_aggregated_over_its_own_tasks(cpu_repro):
    _, _, report = cpu_repro
    assert [(g["algorithms"], g["tasks"]) for g in report["groups"]] == [
        (["ppo", "ppo-era"], GYM), (["resnet", "resnet-era"], ["digits"])]
    assert report["normalized_tasks"] == sorted([*GYM, "digits"])
    assert not [n for n in report["notes"] if "left out" in n]  # no group is cut for another's tasks
    assert {r["x"]: r["tasks"] for r in report["probability_of_improvement"]} == {"ppo-era": GYM,
                                                                                 "resnet-era": ["digits"]}


def test_headline_numbers_are_rliables_on_the_same_final_scores(cpu_repro):
    from rliable import library as rly
    from rliable import metrics

    results_dir, _, report = cpu_repro
    rows = {r["x"]: r for r in report["headline"]["rows"]}
    assert list(rows) == ["ppo-era", "resnet-era"]
    for x, y, tasks in (("ppo-era", "ppo", GYM), ("resnet-era", "resnet", ["digits"])):
        era, base = _matrix(results_dir, x, tasks), _matrix(results_dir, y, tasks)
        row = rows[x]
        assert (row["y"], row["scores"], row["tasks"], row["runs_per_task"]) == (
            y, "normalized", tasks, {"era": 5, "baseline": 5})
        key = f"{x} vs {y}"

        def diff(a, b):
            return np.array([metrics.aggregate_iqm(a) - metrics.aggregate_iqm(b)])

        np.random.seed(stats.key_seed(0, key))
        point, ci = rly.get_interval_estimates({key: [era, base]}, diff, reps=REPS)
        assert row["iqm_difference"] == {"value": pytest.approx(point[key][0], rel=1e-5),
                                         "ci": pytest.approx(list(ci[key][:, 0]), rel=1e-5)}
        assert row["probability_of_improvement"]["value"] == pytest.approx(
            metrics.probability_of_improvement(era, base), rel=1e-5)
        poi = row["probability_of_improvement"]
        assert row["verdict"] == stats.verdict((poi["value"], *poi["ci"]), (5, 5))
    # the data were written with ERA ahead on every MuJoCo seed and behind on every digits seed
    assert rows["ppo-era"]["iqm_difference"]["value"] == pytest.approx(0.08, abs=1e-6)
    assert (rows["ppo-era"]["verdict"], rows["resnet-era"]["verdict"]) == ("ERA better", "ERA worse")
    assert rows["ppo-era"]["budget"] == {"value": 204800, "unit": "steps"}
    assert rows["resnet-era"]["budget"] == {"value": 10, "unit": "epochs"}


def test_the_report_starts_with_the_headline_and_draws_every_group(cpu_repro):
    _, md, report = cpu_repro
    text = md.read_text()
    assert text.startswith("# ERA report: cpu-repro\n\n## Headline\n\nppo-era vs ppo on normalized scores "
                           "(3 tasks × 5 seeds, 204,800 steps): IQM difference +0.080 [")
    head = text.split("## This run")[0]
    assert "| `ppo-era` | `ppo` | normalized (3 tasks) | 3 × 5 | 204,800 steps | +0.080 [" in head
    assert "| **ERA better** |" in head and "| **ERA worse** |" in head and "docs/reports.md" in head
    for name in ("aggregates_1.png", "aggregates_2.png", "performance_profile_1.png", "performance_profile_2.png"):
        assert f"](figures/{name})" in text and (md.parent / "figures" / name).stat().st_size > 5000


def test_the_closing_note_names_the_command_and_the_wall_time(cpu_repro):
    results_dir, md, report = cpu_repro
    trials = pd.read_parquet(results_dir / "trials.parquet")
    started, finished = (pd.to_datetime(trials[c], utc=True) for c in ("started_at", "finished_at"))
    assert report["closing"]["wall_time_s"] == (finished.max() - started.min()).total_seconds() == 139.0
    assert report["closing"]["trial_time_s"] == (finished - started).dt.total_seconds().sum() == 4000.0
    closing = md.read_text().split("## Closing note\n\n")[1]
    assert closing.startswith(f"Results written by `era run {ROOT / 'suites' / 'cpu-repro.yaml'}`: 40 trial(s) from ")
    assert "wall time 2 min from the first trial's start" in closing and "add up to 67 min" in closing  # 139 s, 4000 s


def test_paper_rows_take_only_the_claims_family(cpu_repro):
    _, md, report = cpu_repro
    rows = report["paper"]["rows"]
    assert [(r["paper_name"], r["algo"]) for r in rows] == [("baseline", "ppo"), ("era", "ppo-era")]
    assert rows[1]["this_run"] == {"iqm": report["groups"][0]["aggregates"]["ppo-era"]["iqm"],
                                   "mean": report["groups"][0]["aggregates"]["ppo-era"]["mean"], "tasks": GYM}
    assert "`resnet" not in md.read_text().split("## Paper vs this run")[1].split("## Failed")[0]


def test_a_sweep_on_fewer_tasks_gets_its_own_group_and_the_baseline_is_in_both(tmp_path):
    """The humanoidbench-sac shape: sac and sac-era on two tasks, a swept sac-era variant on one."""
    from rliable import metrics
    from test_report import SWEEP, write_results_dir

    tasks = ("gym:Hopper-v5", "gym:Walker2d-v5")
    results = write_results_dir(tmp_path, algos=("sac", "sac-era", SWEEP), tasks=tasks,
                                skip={(SWEEP, "gym:Walker2d-v5", s) for s in range(3)})
    report, _ = build_report(load_results(results), reps=10)
    groups = [(g["algorithms"], g["tasks"]) for g in report["groups"]]
    assert groups == [(["sac", "sac-era"], list(tasks)), (["sac", SWEEP], ["gym:Hopper-v5"])]
    hopper = report["groups"][1]["aggregates"]["sac"]["iqm"]["value"]
    assert hopper == pytest.approx(metrics.aggregate_iqm(_matrix(results, "sac", ["gym:Hopper-v5"])), rel=1e-5)
    assert hopper != report["groups"][0]["aggregates"]["sac"]["iqm"]["value"]
    assert any(f"gym:Walker2d-v5 is left out of the comparison {SWEEP} vs sac" in n for n in report["notes"])
    assert [(r["x"], r["tasks"]) for r in report["headline"]["rows"]] == [
        ("sac-era", list(tasks)), (SWEEP, ["gym:Hopper-v5"])]
    assert report["headline"]["without_baseline"] == []


def test_the_llm_paper_rows_read_each_benchmarks_accuracy(tmp_path):
    """``paper: llm``: AIME24 etc. against each set's ``<set>/pass@1`` column; the paper's other
    methods (KL-Cov, ...) are listed as not run."""
    rows, trials = [], []
    for algo, accuracy in (("grpo", 30.0), ("grpo-era", 36.0)):
        for seed in range(3):
            trial_id = f"{algo}-{seed}"
            trials.append({"trial_id": trial_id, "algo": algo, "base_algo": algo, "task": "llm:hf:math", "seed": seed,
                           "status": "done", "error": None, "code_version": "abc"})
            rows.append({"trial_id": trial_id, "algo": algo, "base_algo": algo, "task": "llm:hf:math", "seed": seed,
                         "step": 500, "score": accuracy, "normalized_score": None, "entropy": 1.0, "wall_time_s": 1.0,
                         "aime24/pass@1": accuracy + seed, "amc/pass@1": 2 * accuracy})
    pd.DataFrame(rows).to_parquet(tmp_path / "results.parquet")
    pd.DataFrame(trials).to_parquet(tmp_path / "trials.parquet")
    (tmp_path / "suite.json").write_text(json.dumps({"name": "math", "benchmark": "llm", "paper": "llm"}))
    report, _ = build_report(load_results(tmp_path), reps=10)
    paper = {(r["group"], r["paper_name"]): r for r in report["paper"]["rows"]}
    assert paper[("aime24", "era")]["paper"] == 37.5 and paper[("aime24", "era")]["algo"] == "grpo-era"
    assert paper[("aime24", "era")]["this_run"] == {"mean": 37.0, "std": 1.0, "n": 3}  # 36, 37, 38
    assert paper[("amc", "grpo")]["this_run"]["mean"] == 60.0
    assert paper[("aime25", "grpo")]["this_run"] is None  # the run recorded no aime25 column
    assert paper[("aime24", "kl_cov")]["algo"] is None and paper[("aime24", "kl_cov")]["this_run"] is None


# ------------------------------------------------------------------ the committed CPU-scale evidence
COMMITTED = ROOT / "reports" / "cpu-repro"


@pytest.fixture(scope="module")
def committed_cpu_repro():
    report = json.loads((COMMITTED / "report.json").read_text())
    return COMMITTED / "results", report


def test_the_committed_cpu_repro_report_is_what_its_committed_results_give(committed_cpu_repro):
    """``reports/cpu-repro/report.json`` is rebuilt from the results tables committed beside it, with
    the settings it records; every number of the headline, the groups and the paper table matches."""
    results, committed = committed_cpu_repro
    settings = committed["settings"]
    rebuilt, _ = build_report(load_results(results), reps=settings["reps"], seed=settings["seed"],
                              final=settings["final"], bootstrap=settings["bootstrap"])
    rebuilt = json.loads(json.dumps(rebuilt, default=str))
    for key in ("headline", "groups", "paper", "trials", "probability_of_improvement"):
        assert rebuilt[key] == committed[key], key


def test_the_committed_cpu_repro_headline_is_rliables_on_its_final_scores(committed_cpu_repro):
    from rliable import metrics

    results, committed = committed_cpu_repro
    rows = {r["x"]: r for r in committed["headline"]["rows"]}
    assert list(rows) == ["ppo-era", "resnet-era"]
    for x, y, tasks in (("ppo-era", "ppo", GYM), ("resnet-era", "resnet", ["digits"])):
        era, base = _matrix(results, x, tasks), _matrix(results, y, tasks)
        assert era.shape == base.shape == (5, len(tasks))  # every trial of the suite finished
        row = rows[x]
        assert row["tasks"] == tasks and row["runs_per_task"] == {"era": 5, "baseline": 5}
        difference = metrics.aggregate_iqm(era) - metrics.aggregate_iqm(base)
        assert row["iqm_difference"]["value"] == pytest.approx(difference, rel=1e-5)  # the report keeps 6 digits
        assert row["probability_of_improvement"]["value"] == pytest.approx(
            metrics.probability_of_improvement(era, base), rel=1e-5)
        poi = row["probability_of_improvement"]
        assert row["verdict"] == stats.verdict((poi["value"], *poi["ci"]), (5, 5))
