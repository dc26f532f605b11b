"""The TD-MPC2 family: ``tdmpc2`` and ``tdmpc2-era`` on DeepMind Control tasks, on TD-MPC2's own code.

TD-MPC2 (Hansen, Su, Wang, ICLR 2024; github nicklashansen/tdmpc2) is a model-based agent: a
latent world model, an ensemble of distributional Q-functions, a Gaussian policy prior, and MPPI
planning over the model. Its agent (``TDMPC2``: ``act``, ``update``), world model, replay buffer
and update are used unchanged (:mod:`adapters.tdmpc2.upstream` says how they are found and what
they need on this project's stack); :mod:`adapters.tdmpc2.training` runs upstream's online loop
step by step inside the trial contract (an evaluation record and a checkpoint between episodes,
exact resume).

- ``tdmpc2``: TD-MPC2 with its defaults (5M-parameter model, ``entropy_coef`` 1e-4 in the prior's
  loss); any of its configuration keys can be set by keyword (:mod:`adapters.tdmpc2.settings`).
- ``tdmpc2-era``: the prior's Gaussian passes through :class:`adapters.era.GaussianERA`
  (:mod:`adapters.tdmpc2.prior`) and the entropy bonus is removed (``entropy_coef`` 0), as the paper
  does for SAC.

Tasks: ``dmc:<domain>-<task>`` under TD-MPC2's DMC protocol (actions in [-1, 1], action repeat 2,
episodes of 500 agent steps, no termination). Budgets and ``eval_every`` count agent steps and
must be whole episodes; ``sim_steps`` records simulator steps. Implements the family contract of
:mod:`adapters.registry`.
"""

from __future__ import annotations

from collections.abc import Iterator

from adapters.errors import ConfigError, unknown_name
from adapters.rl.protocol import EnvProtocol
from adapters.tdmpc2.settings import check_budget, protocol, resolve_settings
from adapters.trial import EvalRecord, TrialCheckpoint, TrialSpec

__all__ = ["validate", "run", "describe", "default_eval_episodes", "environment_protocol"]

#: TD-MPC2's evaluation: 10 episodes (``config.yaml``'s ``eval_episodes``)
EVAL_EPISODES = 10


def validate(spec: TrialSpec) -> None:
    """Check task, budget and settings, and that TD-MPC2 is installed, without importing it."""
    from adapters.rl.envs import validate_task
    from adapters.tdmpc2.training import eval_every
    from adapters.tdmpc2.upstream import check_available

    if spec.algo not in ("tdmpc2", "tdmpc2-era"):
        raise unknown_name("algorithm", spec.algo, ("tdmpc2", "tdmpc2-era"), hint="the TD-MPC2 family runs these")
    if not str(spec.task).startswith("dmc:"):
        raise ConfigError(
            f"{spec.algo} runs DeepMind Control tasks (dmc:<domain>-<task>, e.g. dmc:dog-run) under TD-MPC2's "
            f"DMC protocol, not {spec.task!r}"
        )
    if spec.budget <= 0:
        raise ConfigError(f"the budget of {spec.algo} is in agent steps and must be positive, got {spec.budget}")
    if spec.eval_episodes <= 0:
        raise ConfigError(f"eval_episodes must be at least 1, got {spec.eval_episodes}")
    settings = resolve_settings(spec)
    check_budget(spec, settings, eval_every(spec))
    seed_steps = settings.seed_steps
    if seed_steps is not None and seed_steps < settings.episode_length:
        raise ConfigError(
            f"setting seed_steps of {spec.algo} ({seed_steps}) must be at least one episode "
            f"({settings.episode_length} agent steps): the first updates sample from finished episodes"
        )
    validate_task(spec.task)
    check_available()


def run(spec: TrialSpec, checkpoint: TrialCheckpoint) -> Iterator[EvalRecord]:
    """Train and evaluate (imports torch and TD-MPC2 only now)."""
    from adapters.tdmpc2.training import run as _run

    return _run(spec, checkpoint)


def describe(spec: TrialSpec) -> str:
    """Model size, planning, ERA and protocol in one line (``era list``)."""
    settings = resolve_settings(spec)
    up = settings.upstream
    parts = [f"TD-MPC2 {up.get('model_size', 5)}M model",
             f"MPPI {up.get('num_samples', 512)} samples x {up.get('iterations', 6)} iterations, horizon "
             f"{up.get('horizon', 3)}" if up.get("mpc", True) else "no planning (prior only)"]
    if settings.era is not None:
        era = settings.era
        delta = "auto" if era["delta"] == "auto" else f"{float(era['delta']):g}"
        parts.append(f"ERA entropy_per_dim {float(era['entropy_per_dim']):g}, delta {delta}, "
                     f"log-std [{era['log_std_min']:g}, {era['log_std_max']:g}], no entropy bonus")
    parts.append(protocol(settings).describe() + f", episodes of {settings.episode_length} agent steps")
    return "; ".join(parts)


def default_eval_episodes(task: str) -> int:
    return EVAL_EPISODES


def environment_protocol(spec: TrialSpec) -> EnvProtocol:
    return protocol(resolve_settings(spec))

