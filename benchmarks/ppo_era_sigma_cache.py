"""Is caching PPO-ERA's σ between parameter updates worth it?

PPO-ERA's σ depends on no observation, only on ``raw_log_std``, δ and H0, so during rollouts
``EraActorCriticPolicy.era_log_std`` reuses it while those inputs keep their values. (An earlier
cache keyed on the tensors' ``_version`` and ``data_ptr`` went stale after writes through
``.data``; only a key on the values cannot.) This measures what the cache saves against
computing σ on every call:

- the cost of one σ outside autograd, looked up and computed (µs per call);
- the agent-only rate of PPO-ERA's rollouts (env time left out, as in adapter_overhead.py),
  with and without the cache, in alternating repeats; the median paired ratio is printed, and the
  saving per call as a share of an agent step.

    python benchmarks/ppo_era_sigma_cache.py [--task gym:HalfCheetah-v5] [--repeats 11]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback

from adapters.rl.envs import make_env
from adapters.rl.policies import EraActorCriticPolicy
from adapter_overhead import TimedEnv  # the sibling benchmark: run as a script, this folder is on sys.path


class ComputedSigmaPolicy(EraActorCriticPolicy):
    """PPO-ERA with σ computed on every call, the cache left out."""

    def era_log_std(self) -> torch.Tensor:
        return self.era(self.raw_log_std, self.raw_log_std)[1]


class RolloutTimer(BaseCallback):
    """Wall time inside ``collect_rollouts``, minus the time the env spent stepping."""

    def __init__(self, env_seconds) -> None:
        super().__init__()
        self.env_seconds, self.agent_seconds, self.steps = env_seconds, 0.0, 0

    def _on_rollout_start(self) -> None:
        self._started, self._env_at_start = time.perf_counter(), self.env_seconds()

    def _on_step(self) -> bool:
        self.steps += self.training_env.num_envs
        return True

    def _on_rollout_end(self) -> None:
        env = self.env_seconds() - self._env_at_start
        self.agent_seconds += time.perf_counter() - self._started - env


def per_call_us(policy: EraActorCriticPolicy, calls: int = 5_000) -> float:
    """µs per σ outside autograd (a rollout's call), over ``calls`` calls."""
    with torch.no_grad():
        policy.era_log_std()
        started = time.perf_counter()
        for _ in range(calls):
            policy.era_log_std()
    return (time.perf_counter() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="gym:HalfCheetah-v5")
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--steps", type=int, default=1024, help="env steps per timed chunk (one rollout)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    models = {}
    for name, policy in (("computed", ComputedSigmaPolicy), ("cached", EraActorCriticPolicy)):
        env = TimedEnv(make_env(args.task))
        # One epoch per update: the updates run in autograd, where nothing is cached, so only the
        # rollouts are timed and the updates need only move the parameters.
        model = PPO(policy, env, n_steps=args.steps, batch_size=64, n_epochs=1, seed=0, device="cpu")
        model.learn(args.steps)  # warm: buffers, allocator, first update
        models[name] = (model, env)
    calls: dict[str, list[float]] = {name: [] for name in models}
    rates: dict[str, list[float]] = {name: [] for name in models}
    for repeat in range(args.repeats):
        for name in (("computed", "cached") if repeat % 2 == 0 else ("cached", "computed")):
            model, env = models[name]
            calls[name].append(per_call_us(model.policy))
            timer = RolloutTimer(lambda env=env: env.seconds)
            model.learn(args.steps, callback=timer, reset_num_timesteps=False)
            rates[name].append(timer.steps / timer.agent_seconds)
    print(f"task {args.task}, torch threads 1, {args.repeats} alternating repeats of {args.steps}-step rollouts")
    for name in models:
        low, high = min(rates[name]), max(rates[name])
        print(f"{name:>9}: σ outside autograd {statistics.median(calls[name]):6.1f} µs per call; rollouts, "
              f"agent alone {statistics.median(rates[name]):7.1f} steps/s (range {low:.0f}-{high:.0f})")
    saved_us = statistics.median(c - k for c, k in zip(calls["computed"], calls["cached"]))
    step_us = 1e6 / statistics.median(rates["computed"])
    ratio = statistics.median(c / u for c, u in zip(rates["cached"], rates["computed"]))
    print(f"the cache saves {saved_us:.1f} µs of a {step_us:.0f} µs agent step ({saved_us / step_us:.1%}); "
          f"measured agent-rate ratio cached / computed {ratio:.3f} (median of paired repeats)")


if __name__ == "__main__":
    main()
