"""The stable-baselines3 family: ``sac``, ``sac-era``, ``ppo``, ``ppo-era`` as one trial function.

Implements the family contract of :mod:`adapters.registry` (``validate`` and ``run``).

- ``sac`` / ``ppo`` are SB3's SAC (automatic temperature, target entropy −D) and PPO with their
  defaults; ``settings`` may override any of their scalar keyword arguments.
- ``sac-era`` is SB3's SAC with :class:`~adapters.rl.policies.EraSACPolicy`, ``ent_coef=0.0`` (no
  entropy terms in the actor loss or the critic target) and, for ``delta: auto``, the
  :class:`~adapters.rl.callbacks.DeltaTuningCallback`.
- ``ppo-era`` is SB3's PPO with :class:`~adapters.rl.policies.EraActorCriticPolicy`, no entropy bonus.

``critic_layer_norm`` (``sac``, ``sac-era``) gives both critics a LayerNorm after every hidden
layer, the ERA authors' critic (:class:`~adapters.rl.policies.CriticNormSACPolicy`).
``ignore_termination``, ``action_repeat`` and ``eval_seed_offset`` set the environment protocol
(:mod:`adapters.rl.protocol`; HumanoidBench tasks default to the ERA authors').

``torch_threads`` sets torch's CPU threads for the trial. By default a CPU trial uses 1 thread unless
``OMP_NUM_THREADS`` is set (Ray sets it per trial): these small MLPs gain little from intra-op
threads, and several trials sharing cores with multi-threaded torch ran 15x slower here.

ERA settings (spec, "Decisions"): ``entropy_per_dim`` (0.25), ``log_std_min`` (−8),
``log_std_max`` (0); for ``sac-era`` also ``delta`` (``auto`` | ``constant`` | ``none``),
``delta_per_dim`` (0.853, for ``constant``), ``delta_lr`` (3e-3, for ``auto``),
``delta_lr_scale`` (``per_dim``: δ moves about ``delta_lr · D`` per update; ``total``: about
``delta_lr``) and
``distribution`` (``truncated`` | ``tanh``). ``policy_kwargs`` (``net_arch``, ``activation_fn``
by name, ...) go to the SB3 policy.

Training runs in ``learn()`` chunks between evaluations (``reset_num_timesteps=False``, so episodes
and counters carry over). PPO only stops at the end of a rollout, so its evaluations fall on the
first multiple of ``n_steps`` at or after each ``eval_every`` mark; ``step`` records the true count.
"""

from __future__ import annotations

import inspect
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from adapters.trial.checkpoint import TrialCheckpoint
from adapters.rl.protocol import PROTOCOL_SETTINGS, EnvProtocol, default_eval_every, env_protocol
from adapters.errors import ConfigError, TrainingDivergedError, unknown_name
from adapters.trial import EvalRecord, TrialSpec

__all__ = [
    "ALGORITHMS", "ERA_SETTINGS", "validate", "run", "build_model", "evaluate", "policy_entropies", "describe",
]

#: algorithm name -> (SB3 class name, ERA?)
ALGORITHMS: dict[str, tuple[str, bool]] = {
    "sac": ("SAC", False),
    "sac-era": ("SAC", True),
    "ppo": ("PPO", False),
    "ppo-era": ("PPO", True),
}

#: ERA algorithm -> its own settings and their defaults (spec, "Decisions")
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
_EVAL_SEED_STREAM = 0x45564131  # separates eval-episode seeds from the training seed


@dataclass
class _Settings:
    """A trial's settings split by who consumes them."""

    sb3: dict[str, Any] = field(default_factory=dict)
    policy: dict[str, Any] = field(default_factory=dict)
    era: dict[str, Any] = field(default_factory=dict)
    delta_lr: float = 3e-3
    delta_per_dim_lr: bool = True
    torch_threads: int | None = None
    critic_layer_norm: bool = False
    protocol: EnvProtocol = field(default_factory=EnvProtocol)


def _sb3_class(algo: str) -> type:
    import stable_baselines3

    return getattr(stable_baselines3, ALGORITHMS[algo][0])


def _allowed_sb3_keys(algo: str) -> set[str]:
    keys = set(inspect.signature(_sb3_class(algo).__init__).parameters) - _RESERVED
    return keys - set(_ERA_REFUSED) if ALGORITHMS[algo][1] else keys


def _split_settings(spec: TrialSpec) -> _Settings:
    """Check ``spec.settings`` against what the algorithm accepts and split it by consumer."""
    from adapters.rl.policies import check_era_kwargs

    if spec.algo not in ALGORITHMS:
        raise unknown_name("algorithm", spec.algo, ALGORITHMS, hint="the SB3 family runs these")
    era_defaults = ERA_SETTINGS.get(spec.algo, {})
    sb3_keys = _allowed_sb3_keys(spec.algo)
    own = {"torch_threads", *PROTOCOL_SETTINGS} | ({"critic_layer_norm"} if _is_sac(spec.algo) else set())
    allowed = sorted(sb3_keys | set(era_defaults) | own)
    settings = _Settings()
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
        elif ALGORITHMS[spec.algo][1] and key in _ERA_REFUSED:
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
    return ALGORITHMS[algo][0] == "SAC"


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


def _eval_every(spec: TrialSpec) -> int:
    return spec.eval_every if spec.eval_every is not None else default_eval_every(spec.task, spec.budget)


def validate(spec: TrialSpec) -> None:
    """Check algorithm, task and settings without building an environment or a model."""
    from adapters.rl.envs import validate_task

    if spec.algo not in ALGORITHMS:
        raise unknown_name("algorithm", spec.algo, ALGORITHMS, hint="the SB3 family runs these")
    if spec.budget <= 0:
        raise ConfigError(f"the budget of {spec.algo} is in env steps and must be positive, got {spec.budget}")
    if spec.eval_every is not None and spec.eval_every <= 0:
        raise ConfigError(f"eval_every must be a positive number of env steps, got {spec.eval_every}")
    if spec.eval_episodes <= 0:
        raise ConfigError(f"eval_episodes must be at least 1, got {spec.eval_episodes}")
    _split_settings(spec)
    validate_task(spec.task)


# --------------------------------------------------------------------------------------------
# Model, evaluation, entropy
# --------------------------------------------------------------------------------------------


def build_model(spec: TrialSpec, env: Any, device: Any = "cpu") -> Any:
    """A fresh SB3 model for ``spec`` on ``env`` (seeded with ``spec.seed``)."""
    settings = _split_settings(spec)
    cls = _sb3_class(spec.algo)
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


def _eval_seeds(spec: TrialSpec, protocol: EnvProtocol, evaluations_done: int) -> list[int | None]:
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


def _record(spec: TrialSpec, model: Any, eval_env: Any, wall_time_s: float, seeds: list[int | None],
            sim_steps: int) -> EvalRecord:
    returns, states = evaluate(model, eval_env, seeds)
    entropy = policy_entropies(model, states)
    metrics = {"entropy_min": float(entropy.min()), "sim_steps": float(sim_steps)}
    if ALGORITHMS[spec.algo][1]:
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


def _check_finite_parameters(spec: TrialSpec, model: Any) -> None:
    import torch as th

    bad = [name for name, p in model.policy.named_parameters() if not bool(th.isfinite(p).all())]
    if bad:
        raise TrainingDivergedError(
            f"trial {spec.algo} on {spec.task} (seed {spec.seed}) has non-finite weights in {bad[0]} "
            f"at step {model.num_timesteps}: lower the learning rate or check the task's rewards"
        )


# --------------------------------------------------------------------------------------------
# Checkpoint state
# --------------------------------------------------------------------------------------------

_MODEL, _REPLAY, _TUNER, _RNG, _ENVS = "model.zip", "replay.npz", "delta_tuner.pt", "rng.pt", "envs.pt"


def _write_state(directory: Path, model: Any, callback: Any, envs: dict[str, Any]) -> None:
    import torch

    from adapters.rl.envs import rng_state
    from adapters.rl.state import save_replay_buffer, save_rng_state

    model.save(directory / _MODEL)  # policy, optimizers, counters, temperature (SB3's format)
    if getattr(model, "replay_buffer", None) is not None:
        save_replay_buffer(model.replay_buffer, directory / _REPLAY)
    if callback is not None:
        torch.save(callback.state_dict(), directory / _TUNER)
    save_rng_state(directory / _RNG)
    torch.save({name: rng_state(env) for name, env in envs.items()}, directory / _ENVS)


def _identity(spec: TrialSpec) -> dict[str, Any]:
    """What a checkpoint must have been written with to be resumed (JSON-normalised)."""
    identity = {"algo": spec.algo, "task": spec.task, "seed": spec.seed, "settings": dict(spec.settings)}
    return json.loads(json.dumps(identity, sort_keys=True, default=str))


def _check_same_trial(spec: TrialSpec, saved: dict[str, Any] | None, state_dir: Path) -> None:
    if saved is not None and saved != _identity(spec):
        raise ConfigError(
            f"the checkpoint in {state_dir.parent} belongs to another trial ({saved}); "
            f"write {spec.algo} on {spec.task} (seed {spec.seed}) to a new output folder"
        )


def _restore(spec: TrialSpec, state_dir: Path, envs: dict[str, Any], device: Any, callback: Any) -> Any:
    import torch

    from adapters.rl.envs import set_rng_state
    from adapters.rl.state import load_replay_buffer, load_rng_state

    env = envs["train"]
    try:
        model = _sb3_class(spec.algo).load(state_dir / _MODEL, env=env, device=device)
        if (state_dir / _REPLAY).exists():
            load_replay_buffer(model.replay_buffer, state_dir / _REPLAY)
    except (ValueError, KeyError) as error:  # SB3 refuses other spaces or policy kwargs
        raise ConfigError(
            f"cannot resume {spec.algo} on {spec.task} from {state_dir.parent}: {error}; the checkpoint "
            f"was written with other settings: write to a new output folder"
        ) from error
    if callback is not None and (state_dir / _TUNER).exists():
        callback.load_state_dict(torch.load(state_dir / _TUNER, weights_only=False))
    if (state_dir / _ENVS).exists():  # the eval env's generator, the simulator-step count
        for name, state in torch.load(state_dir / _ENVS, weights_only=False).items():
            set_rng_state(envs[name], state)
    # The env cannot be checkpointed: the resumed trial starts a fresh episode, seeded from the step.
    model.env.seed(spec.seed + model.num_timesteps)
    model.action_space.seed(spec.seed + model.num_timesteps)
    load_rng_state(state_dir / _RNG)
    return model


# --------------------------------------------------------------------------------------------
# The trial
# --------------------------------------------------------------------------------------------


def run(spec: TrialSpec, checkpoint: TrialCheckpoint) -> Iterator[EvalRecord]:
    """Train, evaluating every ``eval_every`` env steps; resumes from ``checkpoint`` if it has one."""
    from adapters.device import select_device
    from adapters.rl.envs import make_env, sim_steps

    validate(spec)
    settings = _split_settings(spec)
    device = select_device(spec.device)
    env = make_env(spec.task, seed=spec.seed, protocol=settings.protocol)
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
            _check_same_trial(spec, restored.counters.get("trial"), restored.state_dir)
            model = _restore(spec, restored.state_dir, envs, device, callback)
            records = list(restored.records)
            wall_time_s = float(restored.counters.get("wall_time_s", 0.0))
        else:
            model = build_model(spec, env, device)
            records, wall_time_s = [], 0.0
        threads = _torch_threads(settings, device)
        every = _eval_every(spec)
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
            _check_finite_parameters(spec, model)
            seeds = _eval_seeds(spec, settings.protocol, len(records))
            record = _record(spec, model, eval_env, wall_time_s, seeds, sim_steps(env, model.num_timesteps))
            records.append(record)
            counters = {"wall_time_s": wall_time_s, "num_timesteps": int(model.num_timesteps),
                        "trial": _identity(spec)}
            checkpoint.save(lambda directory: _write_state(directory, model, callback, envs), records, counters)
            yield record
    finally:
        env.close()
        eval_env.close()
        if threads is not None:
            import torch

            torch.set_num_threads(threads)


def _torch_threads(settings: _Settings, device: Any) -> int | None:
    """Apply the trial's torch CPU threads; returns the previous count to restore, or ``None``."""
    import torch

    wanted = settings.torch_threads
    if wanted is None and (device.type != "cpu" or "OMP_NUM_THREADS" in os.environ):
        return None
    previous = torch.get_num_threads()
    torch.set_num_threads(wanted or 1)
    return previous


# --------------------------------------------------------------------------------------------
# A one-line description (era list)
# --------------------------------------------------------------------------------------------

#: SB3's default networks and activation per algorithm class (its policies' defaults)
_DEFAULT_NETS = {"SAC": ({"pi": [256, 256], "qf": [256, 256]}, "ReLU"),
                 "PPO": ({"pi": [64, 64], "vf": [64, 64]}, "Tanh")}


def describe(spec: TrialSpec) -> str:
    """The trial's networks, environment protocol and evaluation cadence, in one line."""
    settings = _split_settings(spec)
    kind = ALGORITHMS[spec.algo][0]
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
    parts += [settings.protocol.describe(), f"eval every {min(_eval_every(spec), spec.budget)} agent steps x {episodes}"]
    return "; ".join(parts)
