"""Published learning curves read at a run's step, checked against the CSV read by hand."""

from __future__ import annotations

import csv
from importlib import resources

import pytest

from harness.stats.published import published_at


def _by_hand(algorithm: str, task: str) -> dict[int, dict[int, float]]:
    text = (resources.files("harness") / "data" / "published" / "tdmpc2" / algorithm / f"{task}.csv").read_text()
    curves: dict[int, dict[int, float]] = {}
    for row in csv.DictReader(text.splitlines()):
        curves.setdefault(int(row["seed"]), {})[int(float(row["step"]))] = float(row["reward"])
    return curves


def test_a_published_step_is_the_mean_over_seeds_of_that_point():
    curves = _by_hand("tdmpc2", "dog-run")
    expected = [c[1_000_000] for c in curves.values()]
    (score,) = published_at("tdmpc2", "dmc:dog-run", 1_000_000)
    assert score.algorithm == "tdmpc2" and score.seeds == len(expected) == 3
    assert score.mean == pytest.approx(sum(expected) / 3)
    assert (score.seed_min, score.seed_max) == (min(expected), max(expected))


def test_between_published_points_each_seed_is_interpolated():
    curves = _by_hand("sac", "humanoid-walk")
    expected = [(c[300_000] + c[400_000]) / 2 for c in curves.values()]
    (score,) = published_at("sac", "dmc:humanoid-walk", 350_000)
    assert score.mean == pytest.approx(sum(expected) / len(expected))


def test_only_the_same_algorithm_on_tasks_with_curves_gets_one():
    assert published_at("tdmpc2-era", "dmc:dog-run", 1_000_000) == []  # no published ERA curve
    assert published_at("tdmpc2", "dmc:cartpole-swingup", 100_000) == []
    assert published_at("sac", "gym:Hopper-v5", 100_000) == []
    assert published_at("tdmpc2", "dmc:dog-run", 20_000_000) == []  # beyond the published curves


def test_a_report_puts_the_published_curve_beside_the_same_algorithm(tmp_path):
    """A DMC dog-run folder of tdmpc2 and tdmpc2-era trials written through the real store: the report's
    published table has TD-MPC2's curve at the step the run reached, beside tdmpc2 only."""
    import json
    import textwrap

    from harness.report import write_report
    from harness.store import TrialState, write_tables
    from harness.suite import load_and_expand

    suite_path = tmp_path / "suite.yaml"
    suite_path.write_text(textwrap.dedent("""\
        name: td
        algorithms: {tdmpc2: {}, tdmpc2-era: {}}
        tasks: [dmc:dog-run]
        seeds: 3
        budget: 1000000
        eval: {every: 500000, episodes: 1}
        """))
    suite, trials = load_and_expand(suite_path, check=False)
    states = {t.trial_id: TrialState(t.trial_id, status="done", code_version="test", records=[
        {"step": step, "score": 100.0 * (t.spec.seed + 1) * step / 1e6, "entropy": 1.0, "wall_time_s": 1.0}
        for step in (500_000, 1_000_000)]) for t in trials}
    write_tables(tmp_path / "results", suite, trials, states)
    markdown = write_report(tmp_path / "results", tmp_path / "report", reps=50)
    report = json.loads((tmp_path / "report" / "report.json").read_text())

    (row,) = report["published"]
    expected = [c[1_000_000] for c in _by_hand("tdmpc2", "dog-run").values()]
    assert (row["algo"], row["step"], row["published_algo"]) == ("tdmpc2", 1_000_000, "tdmpc2")
    assert row["published"]["mean"] == pytest.approx(sum(expected) / 3, rel=1e-5)
    assert row["this_run"]["mean"] == pytest.approx(200.0) and row["this_run"]["n"] == 3
    assert "## Published curves at this run's step" in markdown.read_text()
