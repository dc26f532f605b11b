"""Env steps per second of SB3 with and without ERA, side by side in one process.

``sac-era`` (truncated normal, auto-tuned δ) against ``sac``, and ``ppo-era`` against ``ppo``, all
with SB3's default hyperparameters on the same MuJoCo task, built by the trial adapter exactly as
``era trial`` builds them. Timed ``learn()`` chunks alternate between the two variants of a pair so
that background load hits both alike; each repeat gives a paired ratio (ERA / baseline) and the
median of those ratios is printed. Goal: ERA costs at most 5% throughput (ratio >= 0.95).

Two ratios per pair: ``throughput`` counts everything (what a user sees), ``agent`` leaves out the
time spent inside the environment. The two policies act differently (PPO-ERA starts at σ = 0.31,
PPO at σ = 1), and MuJoCo's step time depends on the contacts that the actions cause, so only the
agent ratio isolates what ERA itself costs.

    python benchmarks/adapter_overhead.py [--task gym:HalfCheetah-v5] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import torch

from adapters.rl.model import build_model
from adapters.rl.envs import make_env
from adapters.rl.callbacks import DeltaTuningCallback
from adapters.trial import TrialSpec

GOAL = 0.95


class TimedEnv(gym.Wrapper):
    """Accumulates the wall time spent in the wrapped env's ``step`` and ``reset``."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.seconds = 0.0

    def step(self, action):
        started = time.perf_counter()
        result = self.env.step(action)
        self.seconds += time.perf_counter() - started
        return result

    def reset(self, **kwargs):
        started = time.perf_counter()
        result = self.env.reset(**kwargs)
        self.seconds += time.perf_counter() - started
        return result


def _model(algo: str, task: str, settings: dict):
    env = TimedEnv(make_env(task))
    spec = TrialSpec(algo=algo, task=task, seed=0, budget=10**9, settings=settings)
    model = build_model(spec, env, device="cpu")
    callback = DeltaTuningCallback() if algo == "sac-era" else None
    return model, callback, env


def _timed_chunk(model, callback, env: TimedEnv, steps: int) -> tuple[float, float]:
    """(env steps/s, agent steps/s) over one ``learn(steps)``."""
    env.seconds = 0.0
    started = time.perf_counter()
    model.learn(steps, callback=callback, reset_num_timesteps=False)
    wall = time.perf_counter() - started
    return steps / wall, steps / (wall - env.seconds)


def compare(baseline: str, era: str, task: str, settings: dict, steps: int, warmup: int, repeats: int) -> dict:
    """Median rates of both variants and the median paired ratios (ERA / baseline)."""
    models = {algo: _model(algo, task, settings) for algo in (baseline, era)}
    for model, callback, _ in models.values():
        model.learn(warmup, callback=callback)  # past learning_starts, buffers and caches warm
    rates: dict[str, list[tuple[float, float]]] = {baseline: [], era: []}
    for repeat in range(repeats):
        order = (baseline, era) if repeat % 2 == 0 else (era, baseline)
        for algo in order:
            rates[algo].append(_timed_chunk(*models[algo], steps))
    ratios = {
        kind: statistics.median(e[i] / b[i] for b, e in zip(rates[baseline], rates[era]))
        for i, kind in enumerate(("throughput", "agent"))
    }
    for algo in (baseline, era):
        total = [r[0] for r in rates[algo]]
        agent = statistics.median(r[1] for r in rates[algo])
        print(f"{algo:>8}: {statistics.median(total):8.1f} env steps/s (range {min(total):.0f}-{max(total):.0f}), "
              f"agent alone {agent:8.1f} steps/s")
    for kind, ratio in ratios.items():
        verdict = "meets" if ratio >= GOAL else "misses"
        print(f"  {kind:>10} ratio {era}/{baseline} = {ratio:.3f} ({verdict} the goal >= {GOAL})")
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="gym:HalfCheetah-v5")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--sac-steps", type=int, default=300, help="env steps per timed SAC chunk")
    parser.add_argument("--ppo-steps", type=int, default=2048, help="env steps per timed PPO chunk (one rollout)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"task {args.task}, torch threads {args.threads}, {args.repeats} alternating repeats, SB3 defaults")
    sac = compare("sac", "sac-era", args.task, {"learning_starts": 100}, args.sac_steps, 200, args.repeats)
    ppo = compare("ppo", "ppo-era", args.task, {}, args.ppo_steps, args.ppo_steps, args.repeats)
    print(
        f"\nsac-era/sac: throughput {sac['throughput']:.3f}, agent {sac['agent']:.3f}; "
        f"ppo-era/ppo: throughput {ppo['throughput']:.3f}, agent {ppo['agent']:.3f} (goal >= {GOAL})"
    )


if __name__ == "__main__":
    main()
