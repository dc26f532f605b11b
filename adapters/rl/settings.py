"""The SB3 family's settings: what each algorithm accepts, checked and split by who consumes it.

``settings`` may override any scalar keyword argument of SB3's ``SAC`` / ``PPO``; each value is
checked against the type SB3's signature annotates and the range SB3 documents (``_RANGES``) before
anything runs. On top of them:

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

import collections.abc
import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from adapters.errors import ConfigError, SettingError, unknown_name
from adapters.facts import library_fact
from adapters.registry import algorithm
from adapters.rl.protocol import PROTOCOL_SETTINGS, EnvProtocol, default_eval_every, env_protocol
from adapters.trial import TrialSpec

__all__ = [
    "ERA_SETTINGS", "RLSettings", "resolve_settings", "sb3_class", "eval_every", "rollout_steps", "validate",
    "describe",
]

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

#: environments a trial trains on: ``make_env`` builds one, which SB3 wraps in a one-env VecEnv
N_ENVS = 1


@dataclass(frozen=True)
class _Range:
    """Where SB3's documentation puts a numeric keyword argument."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself is excluded (a positive number)
    note: str = ""

    def holds(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or value <= self.high

    def text(self, integer: bool) -> str:
        kind = "an integer" if integer else "a number"
        if self.low is not None and self.high is not None:
            text = f"{kind} in [{self.low:g}, {self.high:g}]"
        elif self.low == 0 and self.low_open:
            text = f"a positive {kind.split()[-1]}"
        elif self.low is not None:
            text = f"{kind} {'>' if self.low_open else '>='} {self.low:g}"
        else:
            text = kind
        return f"{text} ({self.note})" if self.note else text


_UNIT, _POSITIVE, _AT_LEAST_1, _AT_LEAST_0 = _Range(0, 1), _Range(0, low_open=True), _Range(1), _Range(0)
#: SB3's documented ranges (its SAC and PPO docstrings) for the numbers its signatures take
_RANGES: dict[str, _Range] = {
    "learning_rate": _POSITIVE, "gamma": _UNIT, "gae_lambda": _UNIT, "tau": _UNIT,
    "clip_range": _POSITIVE, "clip_range_vf": _POSITIVE, "target_kl": _POSITIVE, "max_grad_norm": _POSITIVE,
    "ent_coef": _AT_LEAST_0, "vf_coef": _AT_LEAST_0, "learning_starts": _AT_LEAST_0,
    "n_steps": _AT_LEAST_1, "batch_size": _AT_LEAST_1, "n_epochs": _AT_LEAST_1, "buffer_size": _AT_LEAST_1,
    "train_freq": _AT_LEAST_1, "target_update_interval": _AT_LEAST_1,
    "gradient_steps": _Range(-1, note="-1: as many as env steps"),
    "sde_sample_freq": _Range(-1, note="-1: only at the start of each rollout"),
}
#: with normalize_advantage (the default), SB3's PPO asserts a mini-batch and a rollout of >= 2 steps
_PPO_NORMALIZED = _Range(2, note="PPO normalizes advantages over each mini-batch")
#: the strings SB3 accepts where its signature says ``str``: (what to write, the check)
_STRINGS: dict[str, tuple[str, Callable[[str], bool]]] = {
    "ent_coef": ("'auto' or 'auto_<initial value>'",
                 lambda s: s == "auto" or (s.startswith("auto_") and _positive_number(s[5:]))),
    "target_entropy": ("'auto'", lambda s: s == "auto"),
    "train_freq": ("'step' or 'episode'", lambda s: s in ("step", "episode")),
}


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


@library_fact("stable-baselines3", "torch", "gymnasium")
def _sb3_signature(class_name: str) -> dict[str, dict[str, Any]]:
    """SB3's ``class_name.__init__`` as plain data: each keyword's annotation (:func:`_annotation`)
    and, where it is plain data, its default. Remembered between processes (``adapters.facts``), so
    checking settings needs no import of SB3 (and torch) once a machine has asked."""
    import stable_baselines3

    init = getattr(stable_baselines3, class_name).__init__
    try:
        parameters = inspect.signature(init, eval_str=True).parameters
    except (NameError, TypeError):  # an annotation that does not resolve: those parameters take anything
        parameters = inspect.signature(init).parameters
    signature = {}
    for name, parameter in parameters.items():
        entry: dict[str, Any] = {"annotation": _annotation(parameter.annotation)}
        if parameter.default is not inspect.Parameter.empty and _plain(parameter.default):
            entry["default"] = parameter.default
        signature[name] = entry
    return signature


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, str)) or (isinstance(value, float) and math.isfinite(value))


def _annotation(annotation: Any) -> Any:
    """A typing annotation as plain data: ``"any"``, ``"none"``, ``"bool"``, ``"int"``, ``"float"``,
    ``"str"``, ``"callable"``, ``{"union": [...]}``, ``{"tuple": [...]}`` or ``{"class": "module.Name"}``."""
    origin = typing.get_origin(annotation)
    if annotation in (inspect.Parameter.empty, Any) or isinstance(annotation, (str, typing.ForwardRef)):
        return "any"
    if origin in (typing.Union, types.UnionType):
        return {"union": [_annotation(a) for a in typing.get_args(annotation)]}
    if annotation is type(None):
        return "none"
    for kind in (bool, int, float, str):
        if annotation is kind:
            return kind.__name__
    if origin is collections.abc.Callable:
        return "callable"
    if origin is tuple:
        return {"tuple": [_annotation(a) for a in typing.get_args(annotation)]}
    kind = origin if origin is not None else annotation
    return {"class": f"{kind.__module__}.{kind.__qualname__}"} if isinstance(kind, type) else "any"


def _positive_number(text: str) -> bool:
    try:
        return float(text) > 0
    except ValueError:
        return False


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _members(annotation: Any) -> list[Any]:
    if isinstance(annotation, dict) and "union" in annotation:
        return list(annotation["union"])
    return [annotation]


def _is_instance(value: Any, class_name: str) -> bool:
    """``isinstance`` by name: the class need not be imported (a suite's values are plain data)."""
    return any(f"{c.__module__}.{c.__qualname__}" == class_name for c in type(value).__mro__)


def _accepts(member: Any, key: str, value: Any, bounds: _Range | None) -> bool:
    """Whether ``value`` is one ``member`` of SB3's annotation (:func:`_annotation`), within the
    documented range."""
    if member == "any":
        return True
    if member == "none":
        return value is None
    if member == "bool":
        return isinstance(value, bool)
    if member in ("int", "float"):
        number = _is_number(value) if member == "float" else isinstance(value, int) and not isinstance(value, bool)
        return number and (bounds is None or bounds.holds(value))
    if member == "str":
        choices = _STRINGS.get(key)
        return isinstance(value, str) and (choices is None or choices[1](value))
    if member == "callable":
        return callable(value)  # a schedule, given from Python; a suite cannot write one
    if isinstance(member, dict) and "tuple" in member:
        args = member["tuple"]
        return (isinstance(value, (list, tuple)) and len(value) == len(args)
                and all(_accepts(a, key, v, bounds) for a, v in zip(args, value)))
    if isinstance(member, dict) and "union" in member:
        return any(_accepts(m, key, value, bounds) for m in member["union"])
    if isinstance(member, dict) and "class" in member:
        return _is_instance(value, member["class"])
    return True


def _wanted(members: list[Any], key: str, bounds: _Range | None) -> str:
    """What a suite may write for a parameter annotated with ``members``, in words."""
    parts = []
    if "float" in members or "int" in members:
        parts.append((bounds or _Range()).text(integer="float" not in members))
    if "bool" in members:
        parts.append("true or false")
    if "str" in members:
        parts.append(_STRINGS.get(key, ("a string",))[0])
    for member in members:
        if isinstance(member, dict) and "tuple" in member:
            parts.append("[" + ", ".join(_wanted([a], key, bounds) for a in member["tuple"]) + "]")
    if "none" in members:
        parts.append("null")
    items = [item for part in parts for item in (part.split(" or ") if part[0] != "[" else [part])]
    return ", ".join(items[:-1]) + f" or {items[-1]}" if len(items) > 1 else (items[0] if items else "plain data")


def _check_sb3_value(algo: str, key: str, value: Any, settings: Mapping[str, Any]) -> None:
    """Refuse a value SB3 would reject, or take and misbehave on, from its signature and documented range."""
    parameter = _sb3_signature(_class_name(algo)).get(key)
    if parameter is None:
        return
    bounds = _RANGES.get(key)
    if key in ("n_steps", "batch_size") and _class_name(algo) == "PPO" and settings.get("normalize_advantage", True):
        bounds = _PPO_NORMALIZED
    members = _members(parameter["annotation"])
    if not any(_accepts(member, key, value, bounds) for member in members):
        raise SettingError(f"setting {key} of {algo} must be {_wanted(members, key, bounds)}, got {value!r}", key)


def _allowed_sb3_keys(algo: str) -> set[str]:
    keys = set(_sb3_signature(_class_name(algo))) - _RESERVED
    return keys - set(_ERA_REFUSED) if algorithm(algo).era else keys


def resolve_settings(spec: TrialSpec) -> RLSettings:
    """Check ``spec.settings`` against what the algorithm accepts and split it by consumer."""
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
                raise SettingError(f"setting torch_threads must be a positive integer, got {value!r}", key)
            settings.torch_threads = value
        elif key in PROTOCOL_SETTINGS:
            protocol[key] = value
        elif key == "critic_layer_norm" and key in own:
            if not isinstance(value, bool):
                raise SettingError(f"setting critic_layer_norm must be true or false, got {value!r}", key)
            settings.critic_layer_norm = value
        elif key in era_defaults:
            era[key] = value
        elif key in sb3_keys and key != "policy_kwargs":
            _check_sb3_value(spec.algo, key, value, spec.settings)
            settings.sb3[key] = tuple(value) if key == "train_freq" and isinstance(value, list) else value
        elif key == "policy_kwargs":
            settings.policy = _policy_kwargs(spec.algo, value, set(era_defaults))
        elif algorithm(spec.algo).era and key in _ERA_REFUSED:
            raise SettingError(f"setting {key!r} is not available for {spec.algo}: {_ERA_REFUSED[key]}", key)
        else:
            raise SettingError(
                f"unknown setting {key!r} for {spec.algo}: allowed settings are {', '.join(allowed)}", key
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
        _check_era_kwargs(**era)
        settings.era = era
    settings.protocol = env_protocol(spec.task, protocol)
    return settings


@library_fact("stable-baselines3", "torch")
def _check_era_kwargs(**era: Any) -> bool:
    """:func:`adapters.rl.policies.check_era_kwargs`, remembered once it passes (``adapters.facts``)."""
    from adapters.rl.policies import check_era_kwargs

    check_era_kwargs(**era)
    return True


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


def rollout_steps(spec: TrialSpec) -> int | None:
    """Env steps per PPO rollout (``n_steps x n_envs``), the only points where its ``learn()`` stops;
    ``None`` for SAC, which can stop after any step."""
    if _class_name(spec.algo) != "PPO":
        return None
    return spec.settings.get("n_steps", _sb3_signature("PPO")["n_steps"]["default"]) * N_ENVS


def eval_every(spec: TrialSpec) -> int:
    """Env steps between evaluations: the trial's, or its task's default in whole PPO rollouts."""
    if spec.eval_every is not None:
        return spec.eval_every
    every = default_eval_every(spec.task, spec.budget)
    rollout = rollout_steps(spec)
    return max(rollout, every // rollout * rollout) if rollout else every


def _check_rollouts(spec: TrialSpec) -> None:
    """PPO's ``learn()`` stops only at the end of a rollout, so the trial stops exactly at the budget and
    evaluates at every ``eval_every`` only if a rollout divides both (``training.run`` learns up to
    the next evaluation or the budget, whichever comes first)."""
    rollout = rollout_steps(spec)
    if rollout is None:
        return
    n_steps, budget = rollout // N_ENVS, spec.budget
    given = spec.eval_every is not None and spec.eval_every < budget  # else only the budget counts
    every = spec.eval_every if given else budget
    bad_every, bad_budget = given and every % rollout != 0, budget % rollout != 0
    if not (bad_every or bad_budget):
        return
    wrong = " or ".join([f"eval.every {every}"] * bad_every + [f"the budget {budget}"] * bad_budget)
    options = []
    if fits := _n_steps_that_fit(math.gcd(budget, every), n_steps):
        options.append(f"n_steps {' or '.join(map(str, fits))}")
    whole = lambda steps: max(rollout, round(steps / rollout) * rollout)  # noqa: E731
    if bad_every and bad_budget:
        options.append(f"budget {whole(budget)} and eval.every {min(whole(budget), whole(every))}")
    elif bad_every:  # the two whole-rollout cadences around eval.every, within the budget
        low = every // rollout * rollout
        options.append("eval.every " + " or ".join(str(x) for x in (low, low + rollout) if rollout <= x <= budget))
    else:  # the two whole-rollout budgets around it, no shorter than eval.every
        low, least = budget // rollout * rollout, max(rollout, every if given else 0)
        options.append("budget " + " or ".join(str(x) for x in (low, low + rollout) if x >= least))
    raise SettingError(
        f"{spec.algo} stops only at the end of a rollout, and n_steps x n_envs = {n_steps} x {N_ENVS} = {rollout} "
        f"does not divide {wrong}: use {', or '.join(options)}", "n_steps")


def _n_steps_that_fit(steps: int, n_steps: int) -> list[int]:
    """Up to two ``n_steps`` (>= 2) whose rollouts divide ``steps``: the largest up to ``n_steps``, then above."""
    if steps % N_ENVS:
        return []
    per_env = steps // N_ENVS
    divisors = sorted({d for k in range(1, math.isqrt(per_env) + 1) if per_env % k == 0
                       for d in (k, per_env // k)} - {1})
    below = sorted((d for d in divisors if d <= n_steps), reverse=True)
    return (below + [d for d in divisors if d > n_steps])[:2]


def validate(spec: TrialSpec) -> None:
    """Check algorithm, task, settings and device without building an environment or a model."""
    from adapters.device import check_device
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
    _check_rollouts(spec)
    check_device(spec.device)


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
