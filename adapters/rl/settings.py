"""The SB3 family's settings: what each algorithm accepts, checked and split by who consumes it.

``settings`` may override any scalar keyword argument of SB3's ``SAC`` / ``PPO``. On top of them:

- ERA settings (``docs/era.md``): ``entropy_per_dim`` (0.25), ``log_std_min`` (−8), ``log_std_max``
  (0); for ``sac-era`` also ``delta`` (``auto`` | ``constant`` | ``none``), ``delta_per_dim`` (0.853,
  for ``constant``), ``delta_lr`` (3e-3, for ``auto``), ``delta_lr_scale`` (``per_dim``: δ moves
  about ``delta_lr · D`` per update; ``total``: about ``delta_lr``) and ``distribution``
  (``truncated`` | ``tanh``);
- ``critic_layer_norm`` (``sac``, ``sac-era``): the ERA authors' critics, a LayerNorm after every
  hidden layer (:class:`~adapters.rl.policies.CriticNormSACPolicy`);
- ``ignore_termination``, ``action_repeat``, ``eval_seed_offset``: the environment protocol
  (:mod:`adapters.rl.protocol`; HumanoidBench tasks default to the ERA authors');
- ``policy_kwargs`` (``net_arch``, ``activation_fn`` by name, ...) go to the SB3 policy;
- ``torch_threads``: torch's CPU threads for the trial.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from adapters.errors import ConfigError, unknown_name
from adapters.registry import algorithm
from adapters.rl.protocol import PROTOCOL_SETTINGS, EnvProtocol, default_eval_every, env_protocol
from adapters.trial import TrialSpec

__all__ = ["ERA_SETTINGS", "RLSettings", "resolve_settings", "sb3_class", "eval_every", "validate", "describe"]

FAMILY = "adapters.rl"

#: ERA algorithm -> its own settings and their defaults (docs/era.md, section 1)
ERA_SETTINGS: dict[str, dict[str, Any]] = {
    "sac-era": {
        "entropy_per_dim": 0.25,
        "log_std_min": -8.0,
        "log_std_max": 0.0,
        "delta": "auto",
        "delta_per_dim": 0.853,
        "delta_lr": 3e-3,
        "delta_lr_scale": "per_dim",
        "distribution": "truncated",
    },
    "ppo-era": {"entropy_per_dim": 0.25, "log_std_min": -8.0, "log_std_max": 0.0},
}

# SB3 keyword arguments the trial sets itself, or that take Python objects a suite cannot express.
_RESERVED = {
    "self", "policy", "env", "seed", "device", "verbose", "tensorboard_log", "_init_setup_model",
    "action_noise", "replay_buffer_class", "replay_buffer_kwargs", "rollout_buffer_class",
    "rollout_buffer_kwargs", "stats_window_size",
}
# SB3 keyword arguments ERA takes over: why each is refused.
_ERA_REFUSED = {
    "ent_coef": "ERA replaces the entropy term (it is fixed at 0); set entropy_per_dim instead",
    "target_entropy": "ERA's target is entropy_per_dim",
    "use_sde": "gSDE bypasses ERA's log-std",
    "sde_sample_freq": "gSDE bypasses ERA's log-std",
    "use_sde_at_warmup": "gSDE bypasses ERA's log-std",
}
_ACTIVATIONS = ("ReLU", "Tanh", "ELU", "GELU", "SiLU", "LeakyReLU")


@dataclass
class RLSettings:
    """A trial's settings split by who consumes them."""

    sb3: dict[str, Any] = field(default_factory=dict)
    policy: dict[str, Any] = field(default_factory=dict)
    era: dict[str, Any] = field(default_factory=dict)
    delta_lr: float = 3e-3
    delta_per_dim_lr: bool = True
    torch_threads: int | None = None
    critic_layer_norm: bool = False
    protocol: EnvProtocol = field(default_factory=EnvProtocol)


def _check_family(algo: str) -> None:
    if algorithm(algo).family != FAMILY:
        from adapters.registry import ALGORITHMS

        mine = [name for name, row in ALGORITHMS.items() if row.family == FAMILY]
        raise unknown_name("algorithm", algo, mine, hint="the SB3 family runs these")


def _class_name(algo: str) -> str:
    return algorithm(algo).library.rsplit(".", 1)[-1]


def sb3_class(algo: str) -> type:
    """The SB3 class (``SAC`` or ``PPO``) that ``algo`` instantiates."""
    import stable_baselines3

    return getattr(stable_baselines3, _class_name(algo))


def _allowed_sb3_keys(algo: str) -> set[str]:
    keys = set(inspect.signature(sb3_class(algo).__init__).parameters) - _RESERVED
    return keys - set(_ERA_REFUSED) if algorithm(algo).era else keys


def resolve_settings(spec: TrialSpec) -> RLSettings:
    """Check ``spec.settings`` against what the algorithm accepts and split it by consumer."""
    from adapters.rl.policies import check_era_kwargs

    _check_family(spec.algo)
    era_defaults = ERA_SETTINGS.get(spec.algo, {})
    sb3_keys = _allowed_sb3_keys(spec.algo)
    own = {"torch_threads", *PROTOCOL_SETTINGS} | ({"critic_layer_norm"} if _is_sac(spec.algo) else set())
    allowed = sorted(sb3_keys | set(era_defaults) | own)
    settings = RLSettings()
    era = dict(era_defaults)
    protocol: dict[str, Any] = {}
    for key, value in dict(spec.settings).items():
        if key == "torch_threads":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"setting torch_threads must be a positive integer, got {value!r}")
            settings.torch_threads = value
        elif key in PROTOCOL_SETTINGS:
            protocol[key] = value
        elif key == "critic_layer_norm" and key in own:
            if not isinstance(value, bool):
                raise ConfigError(f"setting critic_layer_norm must be true or false, got {value!r}")
            settings.critic_layer_norm = value
        elif key in era_defaults:
            era[key] = value
        elif key in sb3_keys and key != "policy_kwargs":
            settings.sb3[key] = tuple(value) if key == "train_freq" and isinstance(value, list) else value
        elif key == "policy_kwargs":
            settings.policy = _policy_kwargs(spec.algo, value, set(era_defaults))
        elif algorithm(spec.algo).era and key in _ERA_REFUSED:
            raise ConfigError(f"setting {key!r} is not available for {spec.algo}: {_ERA_REFUSED[key]}")
        else:
            raise ConfigError(
                f"unknown setting {key!r} for {spec.algo}: allowed settings are {', '.join(allowed)}"
            )
    if era:
        settings.delta_lr = era.pop("delta_lr", settings.delta_lr)
        if isinstance(settings.delta_lr, bool) or not isinstance(settings.delta_lr, (int, float)) or settings.delta_lr <= 0:
            raise ConfigError(f"setting delta_lr must be a positive number, got {settings.delta_lr!r}")
        scale = era.pop("delta_lr_scale", "per_dim")
        if scale not in ("per_dim", "total"):
            raise ConfigError(
                f"setting delta_lr_scale must be 'per_dim' (δ moves about delta_lr x action dims per update) "
                f"or 'total' (about delta_lr), got {scale!r}"
            )
        settings.delta_per_dim_lr = scale == "per_dim"
        check_era_kwargs(**era)
        settings.era = era
    settings.protocol = env_protocol(spec.task, protocol)
    return settings


def _is_sac(algo: str) -> bool:
    return _class_name(algo) == "SAC"


def _policy_kwargs(algo: str, value: Any, era_keys: set[str]) -> dict[str, Any]:
    import torch.nn as nn

    if not isinstance(value, dict):
        raise ConfigError(f"setting policy_kwargs must be a mapping (e.g. {{net_arch: [64, 64]}}), got {value!r}")
    kwargs = dict(value)
    clash = sorted(set(kwargs) & era_keys)
    if clash:
        raise ConfigError(f"set {', '.join(clash)} as top-level settings of {algo}, not inside policy_kwargs")
    if isinstance(kwargs.get("activation_fn"), str):
        by_name = {name.lower(): name for name in _ACTIVATIONS}
        name = by_name.get(kwargs["activation_fn"].lower())
        if name is None:
            raise unknown_name("activation_fn", kwargs["activation_fn"], by_name, hint="inside policy_kwargs")
        kwargs["activation_fn"] = getattr(nn, name)
    return kwargs


def eval_every(spec: TrialSpec) -> int:
    return spec.eval_every if spec.eval_every is not None else default_eval_every(spec.task, spec.budget)


def validate(spec: TrialSpec) -> None:
    """Check algorithm, task and settings without building an environment or a model."""
    from adapters.rl.envs import validate_task

    _check_family(spec.algo)
    if spec.budget <= 0:
        raise ConfigError(f"the budget of {spec.algo} is in env steps and must be positive, got {spec.budget}")
    if spec.eval_every is not None and spec.eval_every <= 0:
        raise ConfigError(f"eval_every must be a positive number of env steps, got {spec.eval_every}")
    if spec.eval_episodes <= 0:
        raise ConfigError(f"eval_episodes must be at least 1, got {spec.eval_episodes}")
    resolve_settings(spec)
    validate_task(spec.task)


#: SB3's default networks and activation per algorithm class (its policies' defaults)
_DEFAULT_NETS = {"SAC": ({"pi": [256, 256], "qf": [256, 256]}, "ReLU"),
                 "PPO": ({"pi": [64, 64], "vf": [64, 64]}, "Tanh")}


def describe(spec: TrialSpec) -> str:
    """The trial's networks, environment protocol and evaluation cadence, in one line."""
    settings = resolve_settings(spec)
    kind = _class_name(spec.algo)
    nets, activation = _DEFAULT_NETS[kind]
    arch = settings.policy.get("net_arch")
    if isinstance(arch, dict):
        nets = {**nets, **arch}
    elif isinstance(arch, list):
        nets = dict.fromkeys(nets, arch)
    act = settings.policy.get("activation_fn")
    act_name = act.__name__ if isinstance(act, type) else activation
    size = lambda layers: "x".join(str(n) for n in layers) or "linear"  # noqa: E731
    if kind == "SAC":
        norm = "LayerNorm+" if settings.critic_layer_norm else ""
        parts = [f"actor {size(nets['pi'])} {act_name}", f"critics 2 x {size(nets['qf'])} {norm}{act_name}"]
    else:
        parts = [f"policy {size(nets['pi'])} {act_name}", f"value {size(nets['vf'])} {act_name}"]
    if settings.era:
        era = settings.era
        text = f"ERA entropy_per_dim {era['entropy_per_dim']:g}"
        if "delta" in era:
            delta = era["delta"]
            if delta == "auto":
                delta = f"auto (Adam {settings.delta_lr:g}{' per dim' if settings.delta_per_dim_lr else ''})"
            elif delta == "constant":
                delta = f"{era['delta_per_dim']:g} x D"
            text += f", delta {delta}, {era['distribution']} actions"
        parts.append(text)
    episodes = f"{spec.eval_episodes} deterministic episode{'s' if spec.eval_episodes != 1 else ''}"
    parts += [settings.protocol.describe(), f"eval every {min(eval_every(spec), spec.budget)} agent steps x {episodes}"]
    return "; ".join(parts)
