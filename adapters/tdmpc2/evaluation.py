"""One evaluation of a TD-MPC2 agent: deterministic planning episodes, and the prior's entropies.

Episodes follow upstream's ``OnlineTrainer.eval``: ``agent.act(obs, t0, eval_mode=True)`` until the
time limit, returns summed. They run on a separate environment (TD-MPC2 evaluates on its training
one), inside ``torch.random.fork_rng`` so that evaluating never changes the training run's random
stream: a trial's training is the same whatever its evaluation cadence.

The recorded ``entropy`` is that of the prior's **squashed** policy, the distribution the prior's
actions are drawn from (in planning, its ``num_pi_trajs`` trajectories and every value bootstrap),
averaged over the evaluation episodes' states; per state it is upstream's one-sample estimate
``−log π(a|z)`` averaged over :data:`ENTROPY_SAMPLES` draws. ``gaussian_entropy`` is the pre-tanh
Gaussian's, analytic; for ``tdmpc2-era`` also ``target_entropy`` (H0) and ``delta``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from adapters.era import gaussian_entropy
from adapters.tdmpc2.prior import era_of
from adapters.trial import EvalRecord

__all__ = ["evaluate", "prior_entropies", "ENTROPY_SAMPLES"]

#: samples per state of the squashed prior's entropy estimate
ENTROPY_SAMPLES = 16


def evaluate(agent: Any, env: Any, episodes: int) -> tuple[np.ndarray, Any]:
    """Returns of ``episodes`` planning episodes and the observations they visited."""
    import torch

    returns, observations = [], []
    for _ in range(episodes):
        obs, done, total, t = env.reset(), False, 0.0, 0
        while not done:
            observations.append(obs)
            action = agent.act(obs, t0=t == 0, eval_mode=True)
            obs, reward, done, _ = env.step(action)
            total += float(reward)
            t += 1
        returns.append(total)
    return np.asarray(returns, dtype=np.float64), torch.stack(observations)


def prior_entropies(agent: Any, observations: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per state: the squashed prior's entropy (Monte Carlo) and the pre-tanh Gaussian's (analytic)."""
    import torch

    with torch.no_grad():
        z = agent.model.encode(observations.to(agent.device), None)
        draws = [agent.model.pi(z, None)[1] for _ in range(ENTROPY_SAMPLES)]
        squashed = torch.stack([info["entropy"].squeeze(-1) for info in draws]).mean(0)
        gaussian = gaussian_entropy(draws[0]["log_std"])
    return squashed.double().cpu().numpy(), gaussian.double().cpu().numpy()


def evaluation_record(agent: Any, env: Any, episodes: int, step: int, wall_time_s: float,
                      sim_steps: int) -> EvalRecord:
    """Evaluate and measure; the RNG streams of training are left as they were."""
    import torch

    devices = [agent.device] if agent.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        returns, observations = evaluate(agent, env, episodes)
        squashed, gaussian = prior_entropies(agent, observations)
    metrics = {"entropy_min": float(squashed.min()), "gaussian_entropy": float(gaussian.mean()),
               "sim_steps": float(sim_steps)}
    era = era_of(agent)
    if era is not None:
        metrics.update(target_entropy=float(era.target_entropy), delta=float(era.delta))
    return EvalRecord(step=int(step), score=float(returns.mean()), entropy=float(squashed.mean()),
                      wall_time_s=float(wall_time_s), metrics=metrics)
