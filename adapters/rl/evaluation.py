"""Evaluating an SB3 model: deterministic episodes, the entropy of the policy actions are drawn
from, and the record an evaluation yields."""

from __future__ import annotations

from typing import Any

import numpy as np

from adapters.errors import TrainingDivergedError
from adapters.registry import algorithm
from adapters.rl.protocol import EnvProtocol
from adapters.trial import EvalRecord, TrialSpec

__all__ = ["evaluate", "policy_entropies", "eval_seeds", "evaluation_record", "check_finite_parameters"]

_EVAL_SEED_STREAM = 0x45564131  # separates eval-episode seeds from the training seed


def evaluate(model: Any, env: Any, seeds: list[int | None]) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic returns, one episode per seed, and every observation the policy acted on.

    A ``None`` seed resets the environment without reseeding it (its generator runs on).
    """
    returns, states = [], []
    for seed in seeds:
        obs, _ = env.reset(seed=None if seed is None else int(seed))
        total, done = 0.0, False
        while not done:
            states.append(obs)
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return np.asarray(returns), np.stack(states)


def policy_entropies(model: Any, observations: np.ndarray) -> np.ndarray:
    """Per-state entropy of the distribution the model's actions are sampled from.

    SAC-ERA (truncated normal): analytic. SAC (tanh-squashed Gaussian): the one-sample estimate
    ``−log π(a|s)``. PPO, PPO-ERA: the Gaussian's entropy (PPO clips rather than squashes).
    """
    import torch as th

    from adapters.rl.callbacks import policy_entropy

    obs, _ = model.policy.obs_to_tensor(observations)
    with th.no_grad():
        if hasattr(model.policy, "actor"):
            entropy = policy_entropy(model.actor, obs)
        else:
            entropy = model.policy.get_distribution(obs).entropy()
    return entropy.detach().cpu().numpy().astype(np.float64)


def eval_seeds(spec: TrialSpec, protocol: EnvProtocol, evaluations_done: int) -> list[int | None]:
    """Reset seeds of one evaluation's episodes.

    With ``eval_seed_offset`` (the ERA authors' protocol) the eval env is seeded once, with
    ``seed + offset``, at the first episode of the first evaluation; its generator (kept in the
    checkpoint) draws every later start. Otherwise each episode gets a seed derived from the
    trial's, the same at every evaluation.
    """
    if protocol.eval_seed_offset is not None:
        first = spec.seed + protocol.eval_seed_offset if evaluations_done == 0 else None
        return [first] + [None] * (spec.eval_episodes - 1)
    state = np.random.SeedSequence([spec.seed, _EVAL_SEED_STREAM]).generate_state(spec.eval_episodes)
    return [int(s) for s in state]


def evaluation_record(spec: TrialSpec, model: Any, eval_env: Any, wall_time_s: float, seeds: list[int | None],
            sim_steps: int) -> EvalRecord:
    returns, states = evaluate(model, eval_env, seeds)
    entropy = policy_entropies(model, states)
    metrics = {"entropy_min": float(entropy.min()), "sim_steps": float(sim_steps)}
    if algorithm(spec.algo).era:
        from adapters.rl.policies import era_of

        era = era_of(model.policy)
        metrics.update(
            target_entropy=float(era.target_entropy),
            gaussian_entropy=era.pinned_entropy,
            delta=float(era.delta),
        )
    elif getattr(model, "log_ent_coef", None) is not None:
        metrics["ent_coef"] = float(model.log_ent_coef.detach().exp().item())
    return EvalRecord(
        step=int(model.num_timesteps),
        score=float(returns.mean()),
        entropy=float(entropy.mean()),
        wall_time_s=wall_time_s,
        metrics=metrics,
    )


def check_finite_parameters(spec: TrialSpec, model: Any) -> None:
    import torch as th

    bad = [name for name, p in model.policy.named_parameters() if not bool(th.isfinite(p).all())]
    if bad:
        raise TrainingDivergedError(
            f"trial {spec.algo} on {spec.task} (seed {spec.seed}) has non-finite weights in {bad[0]} "
            f"at step {model.num_timesteps}: lower the learning rate or check the task's rewards"
        )
