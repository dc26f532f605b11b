"""What an SB3 trial's checkpoint holds, file by file, with a full replay buffer; and its cost.

Builds the trial's model exactly as ``era run`` does (the settings of an ``era list``-able suite's
variant, or the family's defaults), takes a few real steps so that every file has its real
content (a training episode in progress, δ's tuner, the generators), marks the replay buffer full
(``--buffer`` rows, 1M by default: what the checkpoint of a long SAC trial carries), then writes
the checkpoint and restores it, and prints each file's size and the time of both.

    python benchmarks/checkpoint_size.py [--task gym:Humanoid-v5] [--algo sac-era] [--buffer 1000000]
    python benchmarks/checkpoint_size.py --task hb:h1hand-walk-v0 --suite suites/humanoidbench-sac.yaml

The replay buffer is written uncompressed (filled rows only), so its size is
``rows x (2 x observation + action + 3 scalars) x 4 bytes`` whatever the values; needs the RAM of
one such buffer.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from adapters.rl.callbacks import DeltaTuningCallback
from adapters.rl.envs import make_env
from adapters.rl.episode_log import EpisodeLog
from adapters.rl.model import build_model
from adapters.rl.settings import resolve_settings
from adapters.rl.state import restore, write_state
from adapters.trial import TrialSpec


def _spec(args: argparse.Namespace) -> TrialSpec:
    if args.suite:
        from harness.suite import load_and_expand

        for trial in load_and_expand(args.suite)[1]:
            if trial.spec.algo == args.algo and trial.spec.task == args.task:
                return TrialSpec(algo=args.algo, task=args.task, seed=0, budget=trial.spec.budget,
                                 settings={**trial.spec.settings, "buffer_size": args.buffer})
        raise SystemExit(f"{args.suite} has no {args.algo} trial on {args.task}")
    return TrialSpec(algo=args.algo, task=args.task, seed=0, budget=1_000_000,
                     settings={"buffer_size": args.buffer, "learning_starts": 100})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="gym:Humanoid-v5")
    parser.add_argument("--algo", default="sac-era", choices=["sac", "sac-era"])
    parser.add_argument("--buffer", type=int, default=1_000_000, help="replay buffer rows, all filled")
    parser.add_argument("--suite", help="take the variant's settings from this suite")
    parser.add_argument("--steps", type=int, default=150, help="real steps before the buffer is marked full")
    args = parser.parse_args()

    spec = _spec(args)
    settings = resolve_settings(spec)
    env = EpisodeLog(make_env(spec.task, seed=spec.seed, protocol=settings.protocol))
    eval_env = make_env(spec.task, seed=spec.seed, protocol=settings.protocol)
    envs = {"train": env, "eval": eval_env}
    model = build_model(spec, env, "cpu")
    callback = DeltaTuningCallback() if spec.algo == "sac-era" else None
    model.learn(args.steps, callback=callback)

    buffer = model.replay_buffer
    for value in vars(buffer).values():  # touch every row: the file is uncompressed either way
        if isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == buffer.buffer_size:
            value[args.steps:] = 0.5
    buffer.pos, buffer.full = 0, True

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        started = time.perf_counter()
        write_state(directory, model, callback, envs)
        written_s = time.perf_counter() - started
        sizes = {path.name: path.stat().st_size for path in sorted(directory.iterdir())}
        fresh = {"train": EpisodeLog(make_env(spec.task, seed=spec.seed, protocol=settings.protocol)),
                 "eval": make_env(spec.task, seed=spec.seed, protocol=settings.protocol)}
        started = time.perf_counter()
        restored = restore(spec, directory, fresh, "cpu", DeltaTuningCallback() if callback else None)
        restored_s = time.perf_counter() - started
        assert restored.replay_buffer.full and restored.num_timesteps == model.num_timesteps

    obs, act = env.observation_space.shape, env.action_space.shape
    print(f"{spec.algo} on {spec.task}: observation {obs}, action {act}, replay buffer {args.buffer:,} rows (full), "
          f"networks {settings.policy.get('net_arch', 'SB3 default')}")
    print("| file | bytes | MB |")
    print("|---|---:|---:|")
    for name, size in sizes.items():
        print(f"| {name} | {size:,} | {size / 1e6:,.2f} |")
    total = sum(sizes.values())
    print(f"| total | {total:,} | {total / 1e6:,.1f} |")
    print(f"write {written_s:.1f} s, restore (episode replay included) {restored_s:.1f} s")


if __name__ == "__main__":
    main()
