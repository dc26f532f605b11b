"""`search:` suites: Ray Tune's searchers (Optuna's TPE, random) over PPO-ERA's entropy_per_dim on
Pendulum, each sample on two seeds as ordinary trials, the best against PPO on held-out seeds.

The TPE search runs as a subprocess that is killed (SIGKILL, by its PID) mid-search, then resumes
in-process on the session's Ray; the random one runs in-process and is reported.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from conftest import ray_env
from harness.cli import main
from processes import kill_when
from test_runner import ERA, TINY_PPO, states_in, write_suite

LOW, HIGH = -1.5, 1.0


def suite_text(name: str, search: str) -> str:
    """A tiny PPO / PPO-ERA suite on Pendulum with held-out seeds 100 and 101 and ``search``."""
    return textwrap.dedent(f"""\
        name: {name}
        algorithms:
          ppo: {{settings: {TINY_PPO}}}
          ppo-era: {{settings: {TINY_PPO}}}
        tasks: [gym:Pendulum-v1]
        seeds: [100, 101]
        budget: 128
        eval: {{every: 128, episodes: 1}}
        """) + search


def search_suite(tmp_path: Path, method: str, *, concurrent: int) -> Path:
    return write_suite(tmp_path, suite_text(f"search-{method}", textwrap.dedent(f"""\
        search:
          algorithm: ppo-era
          baseline: ppo
          method: {method}
          samples: 6
          seeds: [0, 1]
          concurrent: {concurrent}
          seed: 3
          space:
            entropy_per_dim: {{uniform: [{LOW}, {HIGH}]}}
        """)))


def samples_in(out: Path) -> list[dict]:
    path = out / "search.json"
    try:
        return json.loads(path.read_text())["samples"] if path.exists() else []
    except ValueError:  # pragma: no cover - written atomically
        return []


def sample_ids(out: Path, sample: dict) -> list[str]:
    """The trial ids of a sample, as the suite in ``out`` expands them."""
    from harness.suite import load_suite
    from harness.suite.expansion import sample_trials

    suite = load_suite(json.loads((out / "suite.json").read_text())["source_file"])
    return [t.trial_id for t in sample_trials(suite, "s", sample["settings"], suite.search.seeds)]


def sample_iqms(out: Path) -> dict[str, float]:
    """Each sample's IQM of final raw scores, computed here from results.parquet (scipy's trimmed mean)."""
    results = pd.read_parquet(out / "results.parquet")
    last = results.sort_values("step").groupby("trial_id").tail(1)
    samples = last[last["algo"].str.contains(r"\[sample=")]
    return {algo: float(scipy_stats.trim_mean(rows["score"].to_numpy(float), 0.25))
            for algo, rows in samples.groupby("algo")}


def check_finished_search(out: Path) -> list[dict]:
    """What every finished search of the suite above leaves: 6 samples in bounds, 12 + 4 trials done,
    one row per trial, and the best (the highest IQM) rerun on the held-out seeds with its settings."""
    samples = samples_in(out)
    assert [s["index"] for s in samples] == list(range(6))
    assert all(LOW <= s["settings"]["entropy_per_dim"] <= HIGH for s in samples)
    trials = pd.read_parquet(out / "trials.parquet")
    assert len(trials) == 6 * 2 + 2 * 2 and (trials["status"] == "done").all()
    results = pd.read_parquet(out / "results.parquet")
    assert len(results) == len(trials) and not results.duplicated(["trial_id", "step"]).any()
    iqms = sample_iqms(out)
    best = max(range(6), key=lambda i: (iqms[f"ppo-era[sample={i}]"], -i))
    assert json.loads((out / "search.json").read_text())["best"] == best
    held_out = trials[trials["algo"] == "ppo-era[best]"]
    assert sorted(held_out["seed"]) == [100, 101] and sorted(trials.loc[trials["algo"] == "ppo", "seed"]) == [100, 101]
    assert {json.loads(s)["entropy_per_dim"] for s in held_out["settings"]} == {samples[best]["settings"]["entropy_per_dim"]}
    return samples


def test_a_killed_tpe_search_resumes_without_rerunning_trials_and_reaches_six_samples(tmp_path, ray_temp_dir,
                                                                                     local_ray, capsys):
    pytest.importorskip("optuna")
    path = search_suite(tmp_path, "tpe", concurrent=2)
    out = tmp_path / "results"
    env = {**os.environ, **ray_env(ray_temp_dir)}
    command = [*ERA, "run", str(path), "--out", str(out), "--no-report", "--progress-every", "5"]
    with open(tmp_path / "first.log", "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        # two samples at a time: the third is drawn once one has ended
        kill_when(process, lambda: len(samples_in(out)) >= 3, tmp_path / "first.log", "third sample", poll_s=0.05)
    before = samples_in(out)
    killed_at = states_in(out)
    done_before = {k: s["runs"] for k, s in killed_at.items() if s["status"] == "done"}
    evaluated = [s for s in before if all(killed_at.get(t, {}).get("status") == "done" for t in sample_ids(out, s))]
    assert 1 <= len(evaluated) < len(before) < 6, "killed with samples evaluated, one running and more to draw"

    # the resumed run: in-process, on the session's local Ray (2 CPUs, as the killed one had)
    capsys.readouterr()
    assert main(command[len(ERA):]) == 0
    second = capsys.readouterr().out
    assert f"search resumes with {len(evaluated)} of 6 samples evaluated, {len(before) - len(evaluated)} to finish" in second
    samples = check_finished_search(out)
    assert samples[:len(before)] == before, "the samples drawn before the kill keep their settings"
    after = states_in(out)
    assert all(after[k]["runs"] == runs for k, runs in done_before.items()), "a finished trial ran again"
    assert len({s["settings"]["entropy_per_dim"] for s in samples}) == 6


def test_a_random_search_runs_and_reports_its_samples_best_and_held_out_comparison(local_ray, tmp_path, capsys):
    from ray import tune

    path = search_suite(tmp_path, "random", concurrent=3)
    out, report_dir = tmp_path / "results", tmp_path / "report"
    assert main(["run", str(path), "--out", str(out), "--report-dir", str(report_dir)]) == 0
    samples = check_finished_search(out)
    # sample i is Tune's uniform domain drawn with the generator of (search seed, i): the same after any restart
    expected = [tune.uniform(LOW, HIGH).sample(random_state=np.random.default_rng([3, i])) for i in range(6)]
    assert [s["settings"]["entropy_per_dim"] for s in samples] == expected

    report = json.loads((report_dir / "report.json").read_text())
    search = report["search"]
    iqms = sample_iqms(out)
    assert [r["index"] for r in search["samples"]] == list(range(6))
    for row in search["samples"]:
        assert row["objective"]["value"] == pytest.approx(iqms[row["algo"]], rel=1e-5)
        low, high = row["objective"]["ci"]
        assert low <= row["objective"]["value"] <= high
    assert search["best"]["index"] == json.loads((out / "search.json").read_text())["best"]
    assert search["trials"] == 12 and search["seeds"] == [0, 1] and search["held_out_seeds"] == [100, 101]
    # the headline judges only the held-out runs: the best sample's against the baseline's
    assert [(r["x"], r["y"]) for r in report["headline"]["rows"]] == [("ppo-era[best]", "ppo")]
    markdown = (report_dir / "report.md").read_text()
    assert "## Search" in markdown and f"**Best:** sample {search['best']['index'] + 1}" in markdown
    assert (report_dir / "figures" / "search_objective.png").stat().st_size > 0

    # a second run finds everything done, and `era list --out` shows the samples' trials
    assert main(["run", str(path), "--out", str(out), "--no-report"]) == 0
    capsys.readouterr()
    assert main(["list", str(path), "--out", str(out)]) == 0
    listing = capsys.readouterr().out
    rows = [line for line in listing.splitlines() if line.rstrip().endswith("done (1 evals)")]
    assert len(rows) == 16 and sum("ppo-era[sample=" in line for line in rows) == 12 and "16 trials" in listing

    # a corrupt search.json, or a changed space, is one line and exit 2 before anything runs
    tables = (out / "trials.parquet").stat().st_mtime_ns
    (out / "search.json").write_text('{"search": ')
    assert main(["run", str(path), "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "search.json is corrupt" in error and "delete it" in error
    assert (out / "trials.parquet").stat().st_mtime_ns == tables


def test_a_changed_search_space_is_refused_for_an_earlier_search_folder(tmp_path, capsys):
    from harness.search.state import SearchState, write_search_state
    from harness.store import write_json_atomic
    from harness.suite import load_suite

    suite = load_suite(search_suite(tmp_path, "random", concurrent=1))
    out = tmp_path / "results"
    write_json_atomic(suite.plain(), out / "suite.json")
    earlier = {**suite.search.plain(), "space": {"entropy_per_dim": {"uniform": [-3.0, 0.0]}}}
    write_search_state(out, SearchState(earlier))
    assert main(["run", str(tmp_path / "suite.yaml"), "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "holds a search with other settings" in error


@pytest.mark.parametrize("search, message", [
    ("{algorithm: ppo-era, baseline: ppo-era, samples: 2, seeds: [0], space: {entropy_per_dim: {uniform: [0, 1]}}}",
     "the baseline must be another algorithm entry"),
    ("{algorithm: sac, baseline: ppo, samples: 2, seeds: [0], space: {entropy_per_dim: {uniform: [0, 1]}}}",
     "'sac' is not one of the suite's algorithms"),
    ("{algorithm: ppo-era, baseline: ppo, samples: 2, seeds: [100], space: {entropy_per_dim: {uniform: [0, 1]}}}",
     "seed(s) [100] are also the suite's held-out `seeds`"),
    ("{algorithm: ppo-era, baseline: ppo, samples: 2, seeds: [0], space: {entropy_per_dim: {normal: [0, 1]}}}",
     "unknown distribution 'normal'"),
    ("{algorithm: ppo-era, baseline: ppo, samples: 2, seeds: [0], space: {learning_rate: {loguniform: [0, 1]}}}",
     "a log-uniform range must be positive"),
    ("{algorithm: ppo-era, baseline: ppo, samples: 2, seeds: [0], space: {entropy_per_dim: {uniform: [1, 0]}}}",
     "expected low < high"),
    ("{algorithm: ppo-era, baseline: ppo, samples: 0, seeds: [0], space: {entropy_per_dim: {uniform: [0, 1]}}}",
     "expected an integer >= 1"),
    ("{algorithm: ppo-era, baseline: ppo, method: grid, samples: 2, seeds: [0], space: {entropy_per_dim: {uniform: [0, 1]}}}",
     "unknown search method 'grid'"),
    # the family refuses a searched value: n_epochs 0 is checked at its bound before anything runs
    ("{algorithm: ppo-era, baseline: ppo, samples: 2, seeds: [0], space: {n_epochs: {integer: [0, 3]}}}",
     "search.space.n_epochs"),
])
def test_a_bad_search_block_is_one_line_with_its_line_and_exit_2(tmp_path, capsys, search, message):
    path = write_suite(tmp_path, suite_text("bad-search", f"search: {search}\n"))
    assert main(["list", str(path)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and message in error and f"{path}:" in error, error


def test_a_search_over_several_tasks_needs_reference_scores(tmp_path, capsys):
    path = write_suite(tmp_path, f"""\
        name: two-raw-tasks
        algorithms:
          ppo: {{settings: {TINY_PPO}}}
          ppo-era: {{settings: {TINY_PPO}}}
        tasks: [gym:Pendulum-v1, gym:MountainCarContinuous-v0]
        seeds: [100]
        budget: 128
        search: {{algorithm: ppo-era, baseline: ppo, samples: 2, seeds: [0], space: {{entropy_per_dim: {{uniform: [0, 1]}}}}}}
        """)
    assert main(["list", str(path)]) == 2
    assert "no reference scores" in capsys.readouterr().err


def test_era_list_of_a_search_suite_says_what_the_search_will_run(tmp_path, capsys):
    path = search_suite(tmp_path, "tpe", concurrent=2)
    assert main(["list", str(path)]) == 0
    listing = capsys.readouterr().out
    assert "search: 6 samples of ppo-era by Optuna's TPE" in listing
    assert "each sample: 2 trials (2 seeds [0, 1] x 1 tasks), 12 in all" in listing
    assert "held-out seeds [100, 101]" in listing


def test_the_objective_is_rliables_aggregate_of_normalized_final_scores():
    from harness.search.objective import aggregate, final_matrix
    from harness.stats.normalize import normalized_score
    from harness.store import TrialState
    from harness.suite import Trial
    from adapters.trial import TrialSpec

    rng = np.random.default_rng(0)
    trials, states, finals = [], {}, {}
    for task in ("gym:HalfCheetah-v5", "gym:Hopper-v5"):
        for seed in range(5):
            trial = Trial.single(TrialSpec("ppo-era", task, seed, 1000), "s")
            scores = rng.normal(1000, 300, size=3)
            trials.append(trial)
            states[trial.trial_id] = TrialState(trial.trial_id, "done", [
                {"step": 100 * (i + 1), "score": float(s)} for i, s in enumerate(scores)])
            finals[(task, seed)] = normalized_score("auto", task, float(scores[-1]))
    matrix = final_matrix(trials, states, "auto")
    expected = np.array([[finals[(t, s)] for t in ("gym:HalfCheetah-v5", "gym:Hopper-v5")] for s in range(5)])
    np.testing.assert_allclose(matrix, expected)
    assert aggregate(matrix, "iqm") == pytest.approx(scipy_stats.trim_mean(expected.ravel(), 0.25))
    assert aggregate(matrix, "mean") == pytest.approx(expected.mean(axis=0).mean())
    states[trials[0].trial_id].status = "failed"
    assert final_matrix(trials, states, "auto") is None
