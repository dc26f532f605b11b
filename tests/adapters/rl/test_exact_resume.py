"""A trial resumed from any of its checkpoints gives, from then on, the uninterrupted trial's rows.

Each case trains once without interruption, then once per checkpoint: stopped right after that
checkpoint is written (what a SIGKILL between two evaluations leaves) and resumed in the same
process after the global generators were scrambled, as a fresh worker would find them. Every
column but the wall time must be equal, bit for bit.
"""

from __future__ import annotations

import importlib.util
import random

import numpy as np
import pytest

from adapters.trial import TrialSpec, run_trial

TINY_SAC = {"learning_starts": 40, "batch_size": 16, "buffer_size": 2_000, "policy_kwargs": {"net_arch": [16, 16]}}
TINY_PPO = {"n_steps": 50, "batch_size": 25, "n_epochs": 2, "policy_kwargs": {"net_arch": [16, 16]}}
TINY = {"sac": TINY_SAC, "sac-era": TINY_SAC, "ppo": TINY_PPO, "ppo-era": TINY_PPO}
HB = importlib.util.find_spec("humanoid_bench") is not None


def _spec(algo: str, task: str, budget: int, every: int, episodes: int = 2, **settings) -> TrialSpec:
    return TrialSpec(algo=algo, task=task, seed=1, budget=budget, eval_every=every, eval_episodes=episodes,
                     settings={**TINY[algo], **settings})


def _rows(records) -> list[dict]:
    return [{k: v for k, v in r.as_row().items() if k != "wall_time_s"} for r in records]


def _scramble_global_generators() -> None:
    import torch

    random.seed(12345)
    np.random.seed(12345)
    torch.manual_seed(12345)


def _check_resumes_exactly(spec: TrialSpec, tmp_path) -> None:
    reference = _rows(run_trial(spec))
    evaluations = len(reference)
    assert evaluations >= 3
    for kill_after in range(1, evaluations):
        folder = tmp_path / f"killed-after-{kill_after}"
        trial = run_trial(spec, folder)
        before = [next(trial) for _ in range(kill_after)]
        trial.close()  # stopped right after checkpoint `kill_after` was written
        _scramble_global_generators()
        after = list(run_trial(spec, folder))
        assert _rows(before) + _rows(after) == reference, f"resumed after evaluation {kill_after}"


# episodes end mid-chunk (InvertedDoublePendulum terminates; its episodes are short) and span
# chunks (cartpole's 1000-step episodes), so a checkpoint falls inside an episode
@pytest.mark.parametrize("algo", ["sac", "sac-era", "ppo", "ppo-era"])
def test_gym_trial_resumes_exactly(algo, tmp_path):
    _check_resumes_exactly(_spec(algo, "gym:InvertedDoublePendulum-v5", 300, 100), tmp_path)


def test_dmc_trial_resumes_exactly(tmp_path):  # the same code path as gym's: one algorithm
    _check_resumes_exactly(_spec("sac-era", "dmc:cartpole-swingup", 300, 100, episodes=1), tmp_path)


@pytest.mark.skipif(not HB, reason="HumanoidBench is not installed: bash scripts/install_humanoidbench.sh")
def test_humanoidbench_trial_resumes_exactly(tmp_path):
    # the authors' protocol: termination ignored, action repeat 2, eval env seeded once
    spec = _spec("sac-era", "hb:h1-walk-v0", 90, 30, episodes=1, learning_starts=20)
    _check_resumes_exactly(spec, tmp_path)


@pytest.mark.parametrize("name", ["model.zip", "replay.npz", "episode.pt", "rng.pt", "envs.pt", "delta_tuner.pt"])
def test_a_corrupt_checkpoint_file_is_named_with_the_fix(name, tmp_path):
    from adapters.errors import ConfigError

    spec = _spec("sac-era", "gym:Pendulum-v1", 200, 100, episodes=1)
    trial = run_trial(spec, tmp_path)
    next(trial)
    trial.close()
    path = tmp_path / "current" / name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # truncated, as by a full disk
    with pytest.raises(ConfigError, match=f"(?s){name}.*is missing or corrupt.*delete that folder") as info:
        next(run_trial(spec, tmp_path))
    assert "\n" not in str(info.value)
