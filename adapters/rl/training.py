"""The SB3 family's trial: train in ``learn()`` chunks between evaluations, checkpoint after each.

``learn()`` runs with ``reset_num_timesteps=False``, so episodes and counters carry over. PPO
only stops at the end of a rollout, so ``validate`` refuses a PPO trial whose rollout
(``n_steps x n_envs``) does not divide its budget and ``eval_every`` (its default ``eval_every`` is
in whole rollouts): every chunk below then ends exactly on its target.

By default a CPU trial uses 1 torch thread unless ``OMP_NUM_THREADS`` is set (Ray sets it per
trial): these small MLPs gain little from intra-op threads, and several trials sharing cores with
multi-threaded torch ran 15x slower here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from adapters.errors import TrainingDivergedError
from adapters.rl.evaluation import check_finite_parameters, eval_seeds, evaluation_record
from adapters.rl.model import build_model
from adapters.rl.settings import RLSettings, eval_every, resolve_settings
from adapters.rl.state import check_same_trial, identity, restore, write_state
from adapters.trial import EvalRecord, TrialCheckpoint, TrialSpec

__all__ = ["run"]


def run(spec: TrialSpec, checkpoint: TrialCheckpoint) -> Iterator[EvalRecord]:
    """Train, evaluating every ``eval_every`` env steps; resumes from ``checkpoint`` if it has one."""
    from adapters.device import select_device
    from adapters.rl.envs import make_env, sim_steps
    from adapters.rl.episode_log import EpisodeLog

    settings = resolve_settings(spec)
    device = select_device(spec.device)
    env = EpisodeLog(make_env(spec.task, seed=spec.seed, protocol=settings.protocol))  # resumable mid-episode
    eval_env = make_env(spec.task, seed=spec.seed, protocol=settings.protocol)
    envs = {"train": env, "eval": eval_env}
    callback = None
    if spec.algo == "sac-era" and settings.era["delta"] == "auto":
        from adapters.rl.callbacks import DeltaTuningCallback

        callback = DeltaTuningCallback(lr=settings.delta_lr, per_dim=settings.delta_per_dim_lr)

    threads = None
    try:
        restored = checkpoint.load()
        if restored is not None:
            check_same_trial(spec, restored.counters.get("trial"), restored.state_dir)
            model = restore(spec, restored.state_dir, envs, device, callback)
            records = list(restored.records)
            wall_time_s = float(restored.counters.get("wall_time_s", 0.0))
        else:
            model = build_model(spec, env, device)
            records, wall_time_s = [], 0.0
        threads = _torch_threads(settings, device)
        every = eval_every(spec)
        while model.num_timesteps < spec.budget:
            target = min(spec.budget, (model.num_timesteps // every + 1) * every)
            started = time.perf_counter()
            try:
                model.learn(target - model.num_timesteps, callback=callback, reset_num_timesteps=False)
            except ValueError as error:  # torch.distributions rejects NaN parameters
                if "nan" not in str(error).lower():
                    raise
                raise TrainingDivergedError(
                    f"trial {spec.algo} on {spec.task} (seed {spec.seed}) diverged near step "
                    f"{model.num_timesteps}: {error}"
                ) from error
            wall_time_s += time.perf_counter() - started
            check_finite_parameters(spec, model)
            seeds = eval_seeds(spec, settings.protocol, len(records))
            record = evaluation_record(spec, model, eval_env, wall_time_s, seeds, sim_steps(env, model.num_timesteps))
            records.append(record)
            counters = {"wall_time_s": wall_time_s, "num_timesteps": int(model.num_timesteps),
                        "trial": identity(spec)}
            checkpoint.save(lambda directory: write_state(directory, model, callback, envs), records, counters)
            yield record
    finally:
        env.close()
        eval_env.close()
        if threads is not None:
            import torch

            torch.set_num_threads(threads)


def _torch_threads(settings: Any, device: Any) -> int | None:  # the trial's CPU threads
    from adapters.device import apply_torch_threads

    return apply_torch_threads(settings.torch_threads, device)
