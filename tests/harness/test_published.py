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
