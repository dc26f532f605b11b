"""Normalized scores: hand-computed values per benchmark, every shipped reference, unknown names."""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from adapters.errors import UnknownNameError
from harness.stats.normalize import (
    BENCHMARKS,
    benchmark_of_task,
    has_reference,
    normalized_score,
    reference,
    reference_tables,
)

ROOT = Path(__file__).resolve().parents[2]


def test_gym_mujoco_v4_uses_the_simbav2_table():
    # (1000 - 18.791) / (3226 - 18.791), by hand
    assert normalized_score("gym_mujoco", "gym:Hopper-v4", 1000.0) == pytest.approx(0.3059386, abs=1e-7)
    assert normalized_score(None, "gym:HalfCheetah-v4", 5142.2925) == pytest.approx(0.5, abs=1e-9)


def test_gym_mujoco_v5_uses_d4rl_expert_and_measured_random():
    measured = yaml.safe_load((ROOT / "harness/data/gym_mujoco_random.yaml").read_text())
    random = measured["tasks"]["Hopper-v5"]["mean"]
    assert normalized_score("gym", "gym:Hopper-v5", 3234.3) == pytest.approx(1.0)
    assert normalized_score("gym", "gym:Hopper-v5", random) == pytest.approx(0.0, abs=1e-12)
    assert normalized_score("gym", "gym:Hopper-v5", 1617.0) == pytest.approx((1617.0 - random) / (3234.3 - random))
    assert "scripts/measure_random_scores.py" in measured["command"]
    assert measured["gymnasium"] == "1.4.0" and measured["mujoco"] == "3.17.0"


def test_dmc_is_score_over_1000_for_every_task():
    assert normalized_score("dmc", "dmc:dog-run", 500.0) == 0.5
    assert normalized_score(None, "dmc:cartpole-swingup", 873.0) == pytest.approx(0.873)


def test_humanoidbench_uses_success_bar_and_robot_random():
    # h1-walk: (351.1885 - 2.377) / (700 - 2.377) = 0.5; h1hand-reach: (5974.988 + 50.024) / 12050.024
    assert normalized_score("humanoidbench", "hb:h1-walk-v0", 351.1885) == pytest.approx(0.5)
    assert normalized_score(None, "hb:h1hand-reach-v0", 5974.988) == pytest.approx(0.5)
    assert not has_reference(None, "hb:h1-unknowntask-v0")


def test_classification_is_top1_over_100():
    assert normalized_score("classification", "cifar10", 93.5) == pytest.approx(0.935)
    assert normalized_score(None, "imagenet:/data/in1k", 75.0) == 0.75
    out = normalized_score(None, "digits", np.array([[90.0, 100.0]]))
    assert out.shape == (1, 2) and np.allclose(out, [[0.9, 1.0]])


@pytest.mark.parametrize(
    "benchmark, task",
    [(None, "gym:Pendulum-v1"), ("auto", "llm:gsm8k"), ("llm", "llm:math"), ("none", "gym:Hopper-v5"),
     ("dmc", "gym:Hopper-v5"), (None, "foo:bar")],
)
def test_tasks_without_reference_get_nan(benchmark, task):
    assert not has_reference(benchmark, task)
    value = normalized_score(benchmark, task, 123.0)
    assert isinstance(value, float) and math.isnan(value)
    assert np.isnan(normalized_score(benchmark, task, np.ones(3))).all()


def test_unknown_benchmark_lists_known_ones():
    with pytest.raises(UnknownNameError) as error:
        normalized_score("atari", "gym:Hopper-v5", 1.0)
    message = str(error.value)
    assert "unknown benchmark 'atari'" in message
    assert all(name in message for name in BENCHMARKS)


def test_task_ids_map_to_benchmarks():
    assert [benchmark_of_task(t) for t in ("gym:Ant-v5", "dmc:dog-run", "hb:h1-run-v0", "cifar10",
                                           "imagenet:/x", "digits", "llm:aime24")] == [
        "gym_mujoco", "dmc", "humanoidbench", "classification", "classification", "classification", "llm"]


def _shipped_tasks():
    tables = reference_tables()
    yield from (("gym_mujoco", f"gym:{k}") for k in tables["gym_mujoco"]["tasks"])
    yield from (("dmc", f"dmc:{k}") for k in tables["dmc"]["tasks"])
    yield from (("humanoidbench", f"hb:{k}") for k in tables["humanoidbench"]["random"])
    yield from (("classification", k) for k in tables["classification"]["tasks"])


@pytest.mark.parametrize("benchmark, task", list(_shipped_tasks()))
def test_every_shipped_reference_maps_low_to_0_and_high_to_1(benchmark, task):
    ref = reference(benchmark, task)
    assert ref is not None and ref.high > ref.low and ref.source
    assert normalized_score(benchmark, task, ref.low) == pytest.approx(0.0, abs=1e-12)
    assert normalized_score(None, task, ref.high) == pytest.approx(1.0)


def test_measure_random_scores_script_writes_the_table(tmp_path):
    spec = importlib.util.spec_from_file_location("measure_random_scores", ROOT / "scripts/measure_random_scores.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "random.yaml"
    assert script.main(["--tasks", "Hopper-v5", "--episodes", "3", "--seed", "1", "--out", str(out)]) == 0
    table = yaml.safe_load(out.read_text())
    row = table["tasks"]["Hopper-v5"]
    assert row["episodes"] == 3 and math.isfinite(row["mean"]) and 1 <= row["mean_length"] <= 1000
    assert "--episodes 3" in table["command"] and table["seed"] == 1
    again = script.random_returns("Hopper-v5", 3, 1)[0]
    assert round(float(again.mean()), 3) == row["mean"]  # seeded: same episodes again
