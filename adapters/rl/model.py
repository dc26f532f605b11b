"""A fresh SB3 model for a trial: the algorithm's class, its ERA policy and the settings."""

from __future__ import annotations

from typing import Any

from adapters.errors import ConfigError
from adapters.rl.settings import resolve_settings, sb3_class
from adapters.trial import TrialSpec

__all__ = ["build_model"]


def build_model(spec: TrialSpec, env: Any, device: Any = "cpu") -> Any:
    """A fresh SB3 model for ``spec`` on ``env`` (seeded with ``spec.seed``)."""
    settings = resolve_settings(spec)
    cls = sb3_class(spec.algo)
    kwargs = dict(settings.sb3)
    policy: Any = "MlpPolicy"
    policy_kwargs = dict(settings.policy)
    if settings.critic_layer_norm:
        policy_kwargs["critic_layer_norm"] = True
    if spec.algo == "sac" and settings.critic_layer_norm:
        from adapters.rl.policies import CriticNormSACPolicy

        policy = CriticNormSACPolicy
    elif spec.algo == "sac-era":
        from adapters.rl.policies import EraSACPolicy

        policy, kwargs["ent_coef"] = EraSACPolicy, 0.0
        policy_kwargs.update(settings.era)
    elif spec.algo == "ppo-era":
        from adapters.rl.policies import EraActorCriticPolicy

        policy, kwargs["ent_coef"] = EraActorCriticPolicy, 0.0
        policy_kwargs.update(settings.era)
    try:
        return cls(policy, env, seed=spec.seed, device=device, verbose=0, policy_kwargs=policy_kwargs or None, **kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError, AssertionError) as error:
        raise ConfigError(f"stable-baselines3 {cls.__name__} rejected the settings of {spec.algo}: {error}") from error
