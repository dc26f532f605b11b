"""HumanoidBench throughput: the simulator against SAC and SAC-ERA training, and what a full trial costs.

On ``h1-walk`` (19 action dims) and ``h1hand-walk`` (61), in one process and one CPU thread, it
measures side by side:

- simulator steps/s under random actions (the environment alone, resets included);
- deterministic evaluation, agent steps/s (policy forward + 2 simulator steps each);
- ``sac`` and ``sac-era`` agent steps/s in SB3's ``learn()`` with the settings of
  ``suites/humanoidbench-sac.yaml`` (the ERA authors' networks: 512x512, LayerNorm critics, two
  updates per agent step), in the random-action phase and after it, timed in alternating chunks so
  background load hits both alike;

and from those projects the wall time of one trial of that suite (1M agent steps: 5,000 random,
then training, plus 40 evaluations of 10 episodes of 500 agent steps) and of the whole suite on one
such core, so a user can size a cluster. Run it on a quiet machine (other processes halve it).

    python benchmarks/hb_throughput.py [--train-steps 200] [--repeats 3] [--warmup 300] [--device cpu]

Needs HumanoidBench (``bash scripts/install_humanoidbench.sh``).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from adapters.rl.model import build_model
from adapters.rl.settings import resolve_settings
from adapters.rl.protocol import EnvProtocol
from adapters.rl.envs import make_env
from adapters.rl.callbacks import DeltaTuningCallback
from adapters.trial import TrialSpec
from harness.suite import load_and_expand

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "suites" / "humanoidbench-sac.yaml"
TASKS = ("hb:h1-walk-v0", "hb:h1hand-walk-v0")


def _suite_spec(algo: str, task: str) -> tuple[TrialSpec, list]:
    suite, trials = load_and_expand(SUITE)
    template = next(t.spec for t in trials if t.spec.algo == algo and t.variant == algo)
    return dataclasses.replace(template, task=task), trials


def simulator_rate(task: str, steps: int) -> float:
    """Simulator steps/s with uniform random actions, resets included."""
    env = make_env(task, protocol=EnvProtocol())
    env.reset(seed=0)
    env.action_space.seed(0)
    started = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - started)


def evaluation_rate(model, task: str, protocol: EnvProtocol, steps: int) -> float:
    """Agent steps/s of deterministic evaluation (``model.predict`` + the protocol's repeat)."""
    env = make_env(task, protocol=protocol)
    obs, _ = env.reset(seed=0)
    started = time.perf_counter()
    for _ in range(steps):
        action, _ = model.predict(obs, deterministic=True)
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            obs, _ = env.reset()
    return steps / (time.perf_counter() - started)


class Learner:
    """One algorithm on one task, built as ``era trial`` builds it, trained in timed chunks."""

    def __init__(self, spec: TrialSpec, warmup: int, device: str) -> None:
        settings = {**spec.settings, "learning_starts": warmup, "buffer_size": 50_000}
        self.spec = dataclasses.replace(spec, settings=settings)
        self.protocol = resolve_settings(self.spec).protocol
        self.env = make_env(spec.task, seed=spec.seed, protocol=self.protocol)
        self.model = build_model(self.spec, self.env, device)
        self.callback = DeltaTuningCallback() if spec.algo == "sac-era" else None

    def chunk(self, steps: int) -> float:
        """Agent steps/s of the next ``steps`` agent steps of ``learn()``."""
        started = time.perf_counter()
        self.model.learn(steps, callback=self.callback, reset_num_timesteps=False)
        return steps / (time.perf_counter() - started)


def project(random_rate: float, train_rate: float, eval_rate: float, spec: TrialSpec, warmup: int) -> float:
    """Seconds for one trial of ``spec``'s budget at the measured rates."""
    evals = spec.budget // spec.eval_every
    eval_steps = evals * spec.eval_episodes * 500  # 1000 simulator steps per episode, 2 per agent step
    return warmup / random_rate + (spec.budget - warmup) / train_rate + eval_steps / eval_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-steps", type=int, default=200, help="agent steps per timed training chunk")
    parser.add_argument("--repeats", type=int, default=3, help="timed chunks per algorithm (alternating)")
    parser.add_argument("--sim-steps", type=int, default=3000, help="simulator steps timed under random actions")
    parser.add_argument("--eval-steps", type=int, default=1000, help="agent steps of deterministic evaluation timed")
    parser.add_argument("--warmup", type=int, default=300,
                        help="random-action agent steps before training starts (the suite's: 5000)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warmup = args.warmup

    rows = []
    for task in TASKS:
        specs = {algo: _suite_spec(algo, task)[0] for algo in ("sac", "sac-era")}
        sim = simulator_rate(task, args.sim_steps)
        learners = {algo: Learner(spec, warmup, args.device) for algo, spec in specs.items()}
        random_rate = {algo: learner.chunk(warmup) for algo, learner in learners.items()}
        rates: dict[str, list[float]] = {algo: [] for algo in learners}
        for _ in range(args.repeats):
            for algo, learner in learners.items():
                rates[algo].append(learner.chunk(args.train_steps))
        train = {algo: statistics.median(r) for algo, r in rates.items()}
        ratios = [era / plain for era, plain in zip(rates["sac-era"], rates["sac"])]
        evaluation = evaluation_rate(learners["sac-era"].model, task, learners["sac-era"].protocol, args.eval_steps)
        hours = {algo: project(random_rate[algo], train[algo], evaluation, specs[algo], 5000) / 3600
                 for algo in learners}
        rows.append((task, sim, evaluation, random_rate, train, statistics.median(ratios), hours))

    _, trials = _suite_spec("sac", TASKS[0])
    print(f"HumanoidBench throughput, 1 CPU thread, device {args.device}; training rates are medians of "
          f"{args.repeats} alternating chunks of {args.train_steps} agent steps after {warmup} random ones\n")
    print("| task | simulator steps/s (random actions) | eval agent steps/s | sac agent steps/s | "
          "sac-era agent steps/s | sac-era / sac | one sac trial (h) | one sac-era trial (h) |")
    print("|---|---|---|---|---|---|---|---|")
    for task, sim, evaluation, _random, train, ratio, hours in rows:
        print(f"| {task} | {sim:,.0f} | {evaluation:,.0f} | {train['sac']:.1f} | {train['sac-era']:.1f} | "
              f"{ratio:.3f} | {hours['sac']:.1f} | {hours['sac-era']:.1f} |")
    print()
    h1 = rows[0][6]
    total = sum(h1[t.spec.algo] for t in trials)
    print(f"{SUITE.relative_to(ROOT)}: {len(trials)} trials of {trials[0].spec.budget:,} agent steps "
          f"(h1 tasks, timed on {TASKS[0]}): about {total:,.0f} core-hours on this CPU, "
          f"{total / len(trials):.1f} h per trial; random-phase rates (agent steps/s): "
          + ", ".join(f"{task} sac {r['sac']:.0f} / sac-era {r['sac-era']:.0f}" for task, _, _, r, *_ in rows))


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
