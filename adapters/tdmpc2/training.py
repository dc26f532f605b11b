"""The TD-MPC2 family's trial: upstream's online training loop, one episode at a time.

Each agent step does what ``OnlineTrainer.train`` does: a random action for the first
``seed_steps`` steps, then ``agent.act`` (MPPI planning); the transition goes into the episode;
from step ``seed_steps`` on, ``agent.update(buffer)`` once per step, after a pretraining burst of
``seed_steps`` updates at that step; finished episodes go into the buffer whole. The agent, its
update, its planner and its buffer are upstream's; this loop only decides when to stop, evaluate and
checkpoint (between episodes, so the budget and ``eval_every`` are whole episodes). For
``tdmpc2-era`` with ``delta: auto``, δ takes one step of its own Adam after every update, on the
update's squashed prior entropy.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from adapters.errors import TrainingDivergedError
from adapters.tdmpc2.agent import Run, build_run, quiet
from adapters.tdmpc2.evaluation import evaluation_record
from adapters.tdmpc2.settings import ACTION_REPEAT, TDMPC2Settings, resolve_settings
from adapters.tdmpc2.state import check_same_trial, identity, restore_state, write_state
from adapters.trial import EvalRecord, TrialCheckpoint, TrialSpec

__all__ = ["run", "eval_every"]


def eval_every(spec: TrialSpec) -> int:
    """Agent steps between evaluations: the trial's, or a tenth of the budget in whole episodes."""
    if spec.eval_every is not None:
        return int(spec.eval_every)
    length = resolve_settings(spec).episode_length
    return max(length, spec.budget // 10 // length * length)


def run(spec: TrialSpec, checkpoint: TrialCheckpoint) -> Iterator[EvalRecord]:
    """Train for ``spec.budget`` agent steps, evaluating every ``eval_every``; resumes from ``checkpoint``."""
    from adapters.device import select_device

    settings = resolve_settings(spec)
    device = select_device(spec.device)
    threads = _torch_threads(settings, device)
    run_ = build_run(spec, settings, device)
    try:
        restored = checkpoint.load()
        step, records, wall_time_s = 0, [], 0.0
        if restored is not None:
            check_same_trial(spec, restored.counters.get("trial"), restored.state_dir)
            step = restore_state(restored.state_dir, run_)
            records = list(restored.records)
            wall_time_s = float(restored.counters.get("wall_time_s", 0.0))
        every = eval_every(spec)
        while step < spec.budget:
            started = time.perf_counter()
            step = _episode(run_, step)
            wall_time_s += time.perf_counter() - started
            if step % every and step < spec.budget:
                continue
            _check_finite(spec, run_, step)
            record = evaluation_record(run_.agent, run_.eval_env, spec.eval_episodes, step, wall_time_s,
                                       step * ACTION_REPEAT)
            records.append(record)
            counters = {"wall_time_s": wall_time_s, "step": step, "trial": identity(spec)}
            checkpoint.save(lambda directory, at=step: write_state(directory, run_, at), records, counters)
            yield record
    finally:
        run_.env.close()
        run_.eval_env.close()
        if threads is not None:
            import torch

            torch.set_num_threads(threads)


def _episode(run: Run, step: int) -> int:
    """One training episode from agent step ``step``; returns the step after it."""
    import torch

    cfg, agent, env, to_td = run.cfg, run.agent, run.env, run.trainer.to_td
    obs, done = env.reset(), False
    tds = [to_td(obs)]
    while not done:
        if step > cfg.seed_steps:
            action = agent.act(obs, t0=len(tds) == 1)
        else:
            action = env.rand_act()
        obs, reward, done, info = env.step(action)
        tds.append(to_td(obs, action, reward, info["terminated"]))
        if step >= cfg.seed_steps:
            for _ in range(cfg.seed_steps if step == cfg.seed_steps else 1):
                update = agent.update(run.buffer)
                if run.tuner is not None:
                    run.tuner.step(update["pi_entropy"])
        step += 1
    with quiet():  # the first add prints the buffer's size and device
        run.buffer.add(torch.cat(tds))
    return step


def _check_finite(spec: TrialSpec, run: Run, step: int) -> None:
    import torch

    bad = [name for name, p in run.agent.model.named_parameters() if not bool(torch.isfinite(p).all())]
    if bad:
        raise TrainingDivergedError(
            f"trial {spec.algo} on {spec.task} (seed {spec.seed}) has non-finite weights in {bad[0]} at step "
            f"{step}: lower lr or check the task's rewards"
        )


def _torch_threads(settings: Any, device: Any) -> int | None:  # the trial's CPU threads
    from adapters.device import apply_torch_threads

    return apply_torch_threads(settings.torch_threads, device)
