"""The TD-MPC2 family's settings: TD-MPC2's own configuration keys by keyword, and ERA's.

Every key of TD-MPC2's ``config.yaml`` that changes what a single-task state-based run does can be
set by keyword (:data:`UPSTREAM_SETTINGS`); anything not set keeps TD-MPC2's default (its 5M-
parameter model, ``model_size: 5``). The widths a ``model_size`` implies (``enc_dim``, ``mlp_dim``,
``latent_dim``, ``num_enc_layers``, ``num_q``) can be overridden one by one, which is how the
tests run a tiny model. Besides them:

- ``compile``: ``torch.compile`` TD-MPC2's update and planner, as upstream does by default; unset,
  it is on when the trial runs on CUDA and off on the CPU (compiling costs minutes and gains little
  there);
- ``seed_steps``: random-action steps before planning starts, and updates in the pretraining burst
  (TD-MPC2 derives ``max(1000, 5 x episode length)`` = 2,500 on DMC);
- ``episode_length`` (500, TD-MPC2's DMC time limit in agent steps) and ``eval_seed_offset`` (42):
  the environment protocol (:func:`protocol`);
- ``torch_threads``: torch's CPU threads (1 by default on the CPU, as in the SB3 family);
- ERA (``tdmpc2-era`` only): ``entropy_per_dim`` (0.25: target H0 = 0.25 x action dims),
  ``log_std_min`` / ``log_std_max`` (ERA's clip bounds, -8 and 0, which must lie strictly inside
  TD-MPC2's own [-10, 2]), ``delta`` (``auto`` or a number >= 0), ``delta_lr`` (3e-3) and
  ``delta_lr_scale`` (``per_dim`` | ``total``), as for SAC-ERA (``docs/tdmpc2.md``).

``tdmpc2-era`` refuses ``entropy_coef``: ERA replaces TD-MPC2's entropy bonus, which it sets to 0.

This module is pure Python (no torch, no TD-MPC2 import): ``era list`` validates with it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from adapters.errors import ConfigError, SettingError
from adapters.rl.protocol import EnvProtocol
from adapters.trial import TrialSpec

__all__ = [
    "UPSTREAM_SETTINGS", "ERA_DEFAULTS", "MODEL_SIZES", "TDMPC2Settings", "resolve_settings", "protocol",
    "DMC_EPISODE_LENGTH", "ACTION_REPEAT",
]

#: TD-MPC2's DMC protocol: episodes of 500 agent steps, each action applied twice (rewards summed)
DMC_EPISODE_LENGTH = 500
ACTION_REPEAT = 2
#: the evaluation environment is seeded once with ``seed + eval_seed_offset`` (as the SB3 family's
#: HumanoidBench protocol); TD-MPC2 itself evaluates on its training environment
EVAL_SEED_OFFSET = 42
#: the parameter counts ``model_size`` may name (TD-MPC2's ``common.MODEL_SIZE``)
MODEL_SIZES = (1, 5, 19, 48, 317)
#: TD-MPC2's own bounds on the prior's log-std (``config.yaml``); ERA's must lie strictly inside
UPSTREAM_LOG_STD = (-10.0, 2.0)


@dataclass(frozen=True)
class _Kind:
    """What one setting may be: an integer, a number or a boolean, with an optional range."""

    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def check(self, key: str, value: Any, algo: str) -> Any:
        if self.kind is bool:
            if not isinstance(value, bool):
                raise SettingError(f"setting {key} of {algo} must be true or false, got {value!r}", key)
            return value
        integer = self.kind is int
        ok = (isinstance(value, int) if integer else isinstance(value, (int, float))) and not isinstance(value, bool)
        if ok and not integer:
            ok = math.isfinite(value)
        if ok and self.low is not None:
            ok = value > self.low if self.low_open else value >= self.low
        if ok and self.high is not None:
            ok = value < self.high if self.high_open else value <= self.high
        if not ok:
            raise SettingError(f"setting {key} of {algo} must be {self.text()}, got {value!r}", key)
        return int(value) if integer else float(value)

    def text(self) -> str:
        what = "an integer" if self.kind is int else "a number"
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{what} in {left}{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            return f"{what} {'>' if self.low_open else '>='} {self.low:g}"
        return what


_POS_INT, _NONNEG_INT = _Kind(int, 1), _Kind(int, 0)
_POS, _NONNEG, _UNIT = _Kind(float, 0, low_open=True), _Kind(float, 0), _Kind(float, 0, 1, low_open=True)

#: TD-MPC2 configuration keys a suite may set, and what each may be (names as in its ``config.yaml``)
UPSTREAM_SETTINGS: dict[str, _Kind] = {
    "model_size": _Kind(int),  # checked against MODEL_SIZES
    # architecture (defaults from model_size)
    "enc_dim": _POS_INT, "mlp_dim": _POS_INT, "latent_dim": _POS_INT, "num_enc_layers": _POS_INT,
    "num_q": _Kind(int, 2), "simnorm_dim": _POS_INT, "num_bins": _Kind(int, 2), "dropout": _Kind(float, 0, 1, high_open=True),
    # planning
    "mpc": _Kind(bool), "horizon": _POS_INT, "iterations": _POS_INT, "num_samples": _POS_INT,
    "num_elites": _POS_INT, "num_pi_trajs": _NONNEG_INT, "min_std": _POS, "max_std": _POS, "temperature": _POS,
    # training
    "batch_size": _POS_INT, "buffer_size": _POS_INT, "lr": _POS, "enc_lr_scale": _POS, "grad_clip_norm": _POS,
    "tau": _UNIT, "rho": _UNIT, "reward_coef": _NONNEG, "value_coef": _NONNEG, "consistency_coef": _NONNEG,
    "discount_denom": _POS, "discount_min": _UNIT, "discount_max": _UNIT,
    "vmin": _Kind(float), "vmax": _Kind(float),
    # actor (the prior)
    "entropy_coef": _NONNEG, "log_std_min": _Kind(float), "log_std_max": _Kind(float),
    "compile": _Kind(bool), "seed_steps": _POS_INT,
}
#: the family's own settings (not TD-MPC2 configuration keys)
OWN_SETTINGS: dict[str, _Kind] = {
    "episode_length": _POS_INT, "eval_seed_offset": _NONNEG_INT, "torch_threads": _POS_INT,
}
#: ERA's settings of ``tdmpc2-era`` and their defaults
ERA_DEFAULTS: dict[str, Any] = {
    "entropy_per_dim": 0.25, "log_std_min": -8.0, "log_std_max": 0.0, "delta": "auto", "delta_lr": 3e-3,
    "delta_lr_scale": "per_dim",
}


@dataclass
class TDMPC2Settings:
    """A trial's settings split by who consumes them.

    ``upstream`` holds only the TD-MPC2 configuration keys the suite set (the rest keep TD-MPC2's
    defaults); ``compile`` is ``None`` when it follows the device.
    """

    upstream: dict[str, Any] = field(default_factory=dict)
    era: dict[str, Any] | None = None
    compile: bool | None = None
    seed_steps: int | None = None
    episode_length: int = DMC_EPISODE_LENGTH
    eval_seed_offset: int = EVAL_SEED_OFFSET
    torch_threads: int | None = None


def _era_settings(algo: str, given: Mapping[str, Any]) -> dict[str, Any]:
    era = {**ERA_DEFAULTS, **given}
    per_dim = era["entropy_per_dim"]
    if isinstance(per_dim, bool) or not isinstance(per_dim, (int, float)) or not math.isfinite(per_dim):
        raise SettingError(f"setting entropy_per_dim of {algo} must be a number, got {per_dim!r}", "entropy_per_dim")
    for key in ("log_std_min", "log_std_max"):
        era[key] = _Kind(float).check(key, era[key], algo)
    low, high = UPSTREAM_LOG_STD
    if not low < era["log_std_min"] < era["log_std_max"] < high:
        raise SettingError(
            f"settings log_std_min, log_std_max of {algo} must satisfy {low:g} < log_std_min < log_std_max < "
            f"{high:g} (ERA's bounds inside TD-MPC2's own), got {era['log_std_min']:g}, {era['log_std_max']:g}",
            "log_std_max" if "log_std_max" in given else "log_std_min",
        )
    delta = era["delta"]
    if delta != "auto" and (isinstance(delta, bool) or not isinstance(delta, (int, float)) or not delta >= 0):
        raise SettingError(f"setting delta of {algo} must be 'auto' or a number >= 0, got {delta!r}", "delta")
    era["delta_lr"] = _POS.check("delta_lr", era["delta_lr"], algo)
    if era["delta_lr_scale"] not in ("per_dim", "total"):
        raise SettingError(
            f"setting delta_lr_scale of {algo} must be 'per_dim' (δ moves about delta_lr x action dims per "
            f"update) or 'total' (about delta_lr), got {era['delta_lr_scale']!r}", "delta_lr_scale",
        )
    return era


def resolve_settings(spec: TrialSpec) -> TDMPC2Settings:
    """Check ``spec.settings`` and split them; raises ``SettingError`` naming the first bad one."""
    era_algo = spec.algo == "tdmpc2-era"
    resolved = TDMPC2Settings()
    era_given: dict[str, Any] = {}
    allowed = sorted(set(UPSTREAM_SETTINGS) | set(OWN_SETTINGS) | (set(ERA_DEFAULTS) if era_algo else set()))
    for key, value in dict(spec.settings).items():
        if era_algo and key in ERA_DEFAULTS:
            era_given[key] = value
        elif era_algo and key == "entropy_coef":
            raise SettingError(
                f"setting entropy_coef is not available for {spec.algo}: ERA replaces TD-MPC2's entropy bonus "
                f"(it is fixed at 0); set entropy_per_dim instead", key,
            )
        elif key in OWN_SETTINGS:
            setattr(resolved, key, OWN_SETTINGS[key].check(key, value, spec.algo))
        elif key in UPSTREAM_SETTINGS:
            checked = UPSTREAM_SETTINGS[key].check(key, value, spec.algo)
            if key == "model_size" and checked not in MODEL_SIZES:
                raise SettingError(
                    f"setting model_size of {spec.algo} must be one of {', '.join(map(str, MODEL_SIZES))} "
                    f"(millions of parameters), got {value!r}", key,
                )
            if key == "compile":
                resolved.compile = checked
            elif key == "seed_steps":
                resolved.seed_steps = checked
            else:
                resolved.upstream[key] = checked
        else:
            raise SettingError(
                f"unknown setting {key!r} for {spec.algo}: allowed settings are {', '.join(allowed)}", key
            )
    _check_together(spec.algo, resolved.upstream)
    if era_algo:
        resolved.era = _era_settings(spec.algo, era_given)
    return resolved


def _check_together(algo: str, upstream: Mapping[str, Any]) -> None:
    """Constraints between settings that TD-MPC2 would only hit mid-run (or silently)."""
    samples = upstream.get("num_samples", 512)
    pi_trajs = upstream.get("num_pi_trajs", 24)
    elites = upstream.get("num_elites", 64)
    if pi_trajs >= samples:
        raise SettingError(f"setting num_pi_trajs of {algo} ({pi_trajs}) must be below num_samples ({samples})",
                           "num_pi_trajs")
    if elites > samples:
        raise SettingError(f"setting num_elites of {algo} ({elites}) must be at most num_samples ({samples})",
                           "num_elites")
    latent, simnorm = upstream.get("latent_dim"), upstream.get("simnorm_dim", 8)
    if latent is not None and latent % simnorm:
        raise SettingError(
            f"setting latent_dim of {algo} ({latent}) must be a multiple of simnorm_dim ({simnorm}): TD-MPC2's "
            f"SimNorm splits the latent into groups of that size", "latent_dim",
        )
    low, high = upstream.get("log_std_min", UPSTREAM_LOG_STD[0]), upstream.get("log_std_max", UPSTREAM_LOG_STD[1])
    if algo == "tdmpc2" and not low < high:
        raise SettingError(f"settings log_std_min < log_std_max of {algo} must hold, got {low:g}, {high:g}",
                           "log_std_min")
    if upstream.get("discount_min", 0.95) > upstream.get("discount_max", 0.995):
        raise SettingError(f"setting discount_min of {algo} must be at most discount_max", "discount_min")
    if upstream.get("vmin", -10.0) >= upstream.get("vmax", 10.0):
        raise SettingError(f"setting vmin of {algo} must be below vmax", "vmin")


def protocol(settings: TDMPC2Settings) -> EnvProtocol:
    """TD-MPC2's DMC protocol as the reports state it: no termination, action repeat 2, the
    evaluation environment seeded once."""
    return EnvProtocol(ignore_termination=True, action_repeat=ACTION_REPEAT, eval_seed_offset=settings.eval_seed_offset)


def check_budget(spec: TrialSpec, settings: TDMPC2Settings, every: int) -> None:
    """Evaluations and checkpoints happen between episodes, so the budget and the evaluation
    interval must be whole episodes."""
    length = settings.episode_length
    for name, value in (("budget", spec.budget), ("eval.every", every)):
        if value % length:
            lower = value // length * length
            fix = f"{lower} or {lower + length}" if lower else f"{length}"
            raise ConfigError(
                f"{spec.algo} evaluates and checkpoints between episodes of {length} agent steps, so its {name} "
                f"must be a multiple of {length}, got {value}: use {fix}"
            )
