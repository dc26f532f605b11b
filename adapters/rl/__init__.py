"""The stable-baselines3 family: ``sac``, ``sac-era``, ``ppo``, ``ppo-era`` as one trial function.

Implements the family contract of :mod:`adapters.registry` (``validate``, ``run``, ``describe``),
the two hooks of environment families: ``default_eval_episodes(task)`` and
``environment_protocol(spec)``, and ``published_settings`` (a suite's ``settings_from: rl-zoo3``,
:mod:`adapters.rl.zoo`).

- ``sac`` / ``ppo`` are SB3's SAC (automatic temperature, target entropy −D) and PPO with their
  defaults; ``settings`` may override any of their scalar keyword arguments (``settings``).
- ``sac-era`` is SB3's SAC with :class:`~adapters.rl.policies.EraSACPolicy`, ``ent_coef=0.0`` (no
  entropy terms in the actor loss or the critic target) and, for ``delta: auto``, the
  :class:`~adapters.rl.callbacks.DeltaTuningCallback`.
- ``ppo-era`` is SB3's PPO with :class:`~adapters.rl.policies.EraActorCriticPolicy`, no entropy bonus.

One module per concern: ``settings`` (what each algorithm accepts), ``model`` (building it),
``training`` (the trial loop), ``zoo`` (rl-baselines3-zoo's hyperparameters), ``evaluation``, ``state`` (checkpoints), ``policies`` and
``callbacks`` (where ERA enters SB3), ``truncated_normal``, ``envs`` (task ids), ``protocol``
(termination, action repeat, evaluation seeding) and ``humanoidbench`` (its compatibility layer).
"""

from __future__ import annotations

from adapters.rl.protocol import EnvProtocol, default_eval_episodes
from collections.abc import Iterator

from adapters.published import PublishedSettings
from adapters.rl.settings import ERA_SETTINGS, describe, resolve_settings, validate
from adapters.trial import EvalRecord, TrialCheckpoint, TrialSpec

__all__ = [
    "ERA_SETTINGS", "validate", "run", "describe", "resolve_settings", "default_eval_episodes",
    "environment_protocol", "published_settings",
]


def run(spec: TrialSpec, checkpoint: TrialCheckpoint) -> Iterator[EvalRecord]:
    """Train and evaluate (imports torch and SB3 only now: validating a suite needs neither)."""
    from adapters.rl.training import run as _run

    return _run(spec, checkpoint)


def published_settings(source: str, algo: str, task: str) -> PublishedSettings:
    """The settings ``algo`` takes from ``source`` (``rl-zoo3``) for ``task``: :mod:`adapters.rl.zoo`."""
    from adapters.rl.zoo import published_settings as _published

    return _published(source, algo, task)


def environment_protocol(spec: TrialSpec) -> EnvProtocol:
    """The environment protocol ``spec`` runs under (its settings over its benchmark's defaults)."""
    return resolve_settings(spec).protocol
