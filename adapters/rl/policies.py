"""ERA policies for stable-baselines3: drop-in policy classes for SAC and PPO.

Usable from plain SB3 code, without the harness::

    from stable_baselines3 import SAC, PPO
    from adapters.rl.policies import EraSACPolicy, EraActorCriticPolicy
    from adapters.rl.callbacks import DeltaTuningCallback

    # env: actions normalised to [-1, 1], e.g. gymnasium.wrappers.RescaleAction(env, -1, 1)
    sac = SAC(EraSACPolicy, env, ent_coef=0.0,            # ERA replaces SAC's entropy terms
              policy_kwargs=dict(entropy_per_dim=0.25, delta="auto"))
    sac.learn(100_000, callback=DeltaTuningCallback())    # tunes δ when delta="auto"

    ppo = PPO(EraActorCriticPolicy, env, policy_kwargs=dict(entropy_per_dim=0.25))

ERA enters at SB3's seams only (docs/era.md, section 1, "SB3 SAC" / "SB3 PPO"): the SAC actor's
``get_action_dist_params`` and distribution, the SAC policy's ``make_actor``, and PPO's
``_get_action_dist_from_latent``. SB3's training loops are untouched; with ``ent_coef=0.0`` SAC's
own ``train()`` has no entropy term in the actor loss or the critic target.

Misuse is refused, not silent (docs/era.md, section 1, "SB3 SAC" and "SB3 PPO"): ``EraSACPolicy``
refuses a SAC whose ``ent_coef`` is not 0, and, with ``delta="auto"``, to train without a
``DeltaTuningCallback``; ``EraActorCriticPolicy`` refuses an action space other than [-1, 1], and
its ``log_std`` is ERA's log σ, so SB3's ``train/std`` logs the real σ.
"""

from __future__ import annotations

import sys
from typing import Any, Literal

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.distributions import DiagGaussianDistribution, Distribution
from stable_baselines3.common.policies import ActorCriticPolicy, ContinuousCritic
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, create_mlp
from stable_baselines3.common.type_aliases import PyTorchObs
from stable_baselines3.sac.policies import Actor, SACPolicy
from torch import nn

from adapters.era import HALF_LOG_2PI_E, DeltaTuner, GaussianERA
from adapters.errors import ConfigError
from adapters.rl.truncated_normal import TruncatedNormal

__all__ = [
    "ERA_DEFAULTS",
    "TRUNCATED_NORMAL_FLOOR_DELTA",
    "TruncatedNormalDistribution",
    "EraActor",
    "LayerNormCritic",
    "CriticNormSACPolicy",
    "EraSACPolicy",
    "EraActorCriticPolicy",
    "era_of",
    "check_era_kwargs",
    "check_no_sac_temperature",
]

#: Per-dimension δ that makes the truncated normal's entropy a floor for σ ≤ 1 (docs/era.md, section 1:
#: truncating to [-1, 1] loses at most 0.8528 nats per dimension).
TRUNCATED_NORMAL_FLOOR_DELTA = 0.853

#: The defaults (docs/era.md, section 1): H0 = 0.25·D (the authors' train_parallel.py), log σ in [-8, 0].
ERA_DEFAULTS: dict[str, Any] = {
    "entropy_per_dim": 0.25,
    "log_std_min": -8.0,
    "log_std_max": 0.0,
    "delta": "auto",
    "delta_per_dim": TRUNCATED_NORMAL_FLOOR_DELTA,
    "distribution": "truncated",
}

DeltaMode = Literal["auto", "constant", "none"]

_EPS = 1e-6  # the authors' margin on loc, scale, support and uniform draws (docs/era.md, section 1)


def check_era_kwargs(
    entropy_per_dim: float,
    log_std_min: float,
    log_std_max: float,
    delta: str = "none",
    delta_per_dim: float = 0.0,
    distribution: str = "truncated",
) -> None:
    """Raise :class:`ConfigError` for ERA settings that cannot work, before building anything.

    Every check is per dimension, so it needs no environment: the pinned target
    ``entropy_per_dim (+ delta_per_dim)`` must lie in ``[L + log_std_min, L + log_std_max]``.
    """
    for name, value in (("entropy_per_dim", entropy_per_dim), ("log_std_min", log_std_min),
                        ("log_std_max", log_std_max), ("delta_per_dim", delta_per_dim)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"ERA setting {name} must be a number, got {value!r}")
    if not log_std_min < log_std_max:
        raise ConfigError(
            f"ERA needs log_std_min < log_std_max, got {log_std_min} >= {log_std_max}: "
            f"the defaults are {ERA_DEFAULTS['log_std_min']} and {ERA_DEFAULTS['log_std_max']}"
        )
    if delta not in ("auto", "constant", "none"):
        raise ConfigError(f"ERA delta must be 'auto', 'constant' or 'none', got {delta!r}")
    if distribution not in ("truncated", "tanh"):
        raise ConfigError(
            f"ERA distribution must be 'truncated' (the authors', keeps the floor) or 'tanh' "
            f"(SB3's squash, does not keep the floor), got {distribution!r}"
        )
    if delta_per_dim < 0:
        raise ConfigError(f"ERA delta_per_dim must be >= 0, got {delta_per_dim}")
    pinned = entropy_per_dim + (delta_per_dim if delta == "constant" else 0.0)
    low, high = HALF_LOG_2PI_E + log_std_min, HALF_LOG_2PI_E + log_std_max
    if not low <= pinned <= high:
        what = "entropy_per_dim + delta_per_dim" if delta == "constant" else "entropy_per_dim"
        raise ConfigError(
            f"ERA cannot pin {what} = {pinned:.4g} nats per dimension with log-std in "
            f"[{log_std_min}, {log_std_max}]: choose a value in [{low:.4g}, {high:.4g}] "
            f"(or raise log_std_max)"
        )


def _make_era(action_dim: int, entropy_per_dim: float, log_std_min: float, log_std_max: float,
              delta: DeltaMode, delta_per_dim: float) -> GaussianERA:
    initial: float | str = {"auto": "auto", "none": 0.0}.get(delta, delta_per_dim * action_dim)
    return GaussianERA(action_dim, entropy_per_dim * action_dim, log_std_min, log_std_max, initial)


def check_no_sac_temperature(algorithm: Any) -> None:
    """Raise :class:`ConfigError` unless SB3's SAC ``algorithm`` was created with ``ent_coef=0``.

    SAC-ERA replaces SAC's entropy terms (docs/era.md, section 1, "SB3 SAC"); any other value,
    SAC's default ``"auto"`` included, adds SAC's temperature on top of ERA.
    """
    ent_coef = getattr(algorithm, "ent_coef", 0.0)
    try:
        zero = not isinstance(ent_coef, str) and float(ent_coef) == 0.0
    except (TypeError, ValueError):
        zero = False
    if not zero:
        raise ConfigError(
            f"SAC-ERA replaces SAC's entropy terms: create SAC(EraSACPolicy, env, ent_coef=0.0) "
            f"(got ent_coef={ent_coef!r})"
        )


def _algorithm_building_policy(max_depth: int = 8) -> BaseAlgorithm | None:
    """The SB3 algorithm whose ``_setup_model`` is constructing the calling policy, if any.

    SB3 gives a policy no reference to its algorithm, but builds it inside the algorithm's
    ``_setup_model``, where ``self`` is the algorithm and its arguments (``ent_coef``) are already
    set, on construction and on ``load`` alike. ``None`` when the policy is built by hand.
    """
    frame = sys._getframe(2)  # the caller of the policy's __init__
    for _ in range(max_depth):
        if frame is None:
            return None
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, BaseAlgorithm):
            return candidate
        frame = frame.f_back
    return None


def era_of(policy: nn.Module) -> GaussianERA:
    """The :class:`GaussianERA` inside an ERA SAC or PPO policy (or its actor)."""
    for module in policy.modules():
        if isinstance(module, GaussianERA):
            return module
    raise ConfigError(f"{type(policy).__name__} has no ERA activation: use EraSACPolicy or EraActorCriticPolicy")


# --------------------------------------------------------------------------------------------
# SAC
# --------------------------------------------------------------------------------------------


class TruncatedNormalDistribution(Distribution):
    """SB3 distribution: a normal with location ``tanh μ`` and scale σ, truncated to [-1, 1].

    This is the authors' SAC-ERA policy (docs/era.md, section 1): loc = tanh(μ) clipped to ±(1 − 1e-6),
    scale = max(σ, 1e-6), support [−1 + 1e-6, 1 − 1e-6], inverse-CDF sampling, per-dimension
    log-prob clipped to [−20, 20]; the deterministic action is ``tanh μ``. Its entropy is analytic.
    """

    distribution: TruncatedNormal

    def __init__(self, action_dim: int) -> None:
        super().__init__()
        self.action_dim = action_dim

    def proba_distribution_net(self, latent_dim: int) -> tuple[nn.Module, nn.Module]:
        """Mean and raw log-std heads (the SAC actor builds its own; kept for the interface)."""
        return nn.Linear(latent_dim, self.action_dim), nn.Linear(latent_dim, self.action_dim)

    def proba_distribution(self, mean_actions: th.Tensor, log_std: th.Tensor) -> "TruncatedNormalDistribution":
        loc = th.clamp(th.tanh(mean_actions), -1.0 + _EPS, 1.0 - _EPS)
        self.distribution = TruncatedNormal(loc, th.exp(log_std), -1.0 + _EPS, 1.0 - _EPS, eps=_EPS)
        return self

    def log_prob(self, actions: th.Tensor) -> th.Tensor:
        return th.clamp(self.distribution.log_prob(actions), -20.0, 20.0).sum(-1)

    def entropy(self) -> th.Tensor:
        return self.distribution.entropy().sum(-1)

    def sample(self) -> th.Tensor:
        return self.distribution.rsample()

    def mode(self) -> th.Tensor:
        return self.distribution.mode

    def actions_from_params(self, mean_actions: th.Tensor, log_std: th.Tensor, deterministic: bool = False) -> th.Tensor:
        self.proba_distribution(mean_actions, log_std)
        return self.get_actions(deterministic=deterministic)

    def log_prob_from_params(self, mean_actions: th.Tensor, log_std: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        actions = self.actions_from_params(mean_actions, log_std)
        return actions, self.log_prob(actions)


class EraActor(Actor):
    """SB3's SAC actor with its log-std passed through :class:`GaussianERA`.

    With ``distribution="truncated"`` (default) actions come from
    :class:`TruncatedNormalDistribution`; ``"tanh"`` keeps SB3's tanh-squashed Gaussian, which pins
    only the Gaussian's entropy and does **not** keep a floor on the actions' entropy (docs/era.md,
    section 1: the squash loses an amount unbounded in |μ|).
    """

    def __init__(
        self,
        *args: Any,
        entropy_per_dim: float = ERA_DEFAULTS["entropy_per_dim"],
        log_std_min: float = ERA_DEFAULTS["log_std_min"],
        log_std_max: float = ERA_DEFAULTS["log_std_max"],
        delta: DeltaMode = ERA_DEFAULTS["delta"],
        delta_per_dim: float = ERA_DEFAULTS["delta_per_dim"],
        distribution: Literal["truncated", "tanh"] = ERA_DEFAULTS["distribution"],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if self.use_sde:
            raise ConfigError("ERA needs use_sde=False: gSDE's exploration matrix bypasses the ERA log-std")
        check_era_kwargs(entropy_per_dim, log_std_min, log_std_max, delta, delta_per_dim, distribution)
        self.era_kwargs = dict(entropy_per_dim=entropy_per_dim, log_std_min=log_std_min, log_std_max=log_std_max,
                               delta=delta, delta_per_dim=delta_per_dim, distribution=distribution)
        action_dim = get_action_dim(self.action_space)
        self.era = _make_era(action_dim, entropy_per_dim, log_std_min, log_std_max, delta, delta_per_dim)
        if distribution == "truncated":
            self.action_dist = TruncatedNormalDistribution(action_dim)  # type: ignore[assignment]
        #: (μ, log σ), detached, of the last call in training mode: the replay batch of SB3's last
        #: update, from which the δ callback reads the policy's entropy without another forward pass.
        self.last_update_params: tuple[th.Tensor, th.Tensor] | None = None

    def get_action_dist_params(self, obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor, dict[str, th.Tensor]]:
        # Replaces SB3's clamp of the log-std to [-20, 2] by ERA (docs/era.md, section 1, "SB3 SAC").
        features = self.extract_features(obs, self.features_extractor)
        latent_pi = self.latent_pi(features)
        mean_actions, log_std = self.era(self.mu(latent_pi), self.log_std(latent_pi))  # type: ignore[operator]
        if self.training:  # SB3 trains in training mode and acts (rollouts, predict) in eval mode
            self.last_update_params = (mean_actions.detach(), log_std.detach())
        return mean_actions, log_std, {}

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(self.era_kwargs)
        return data


class LayerNormCritic(ContinuousCritic):
    """SB3's SAC critics with a LayerNorm after every hidden linear layer (the ERA authors' critic).

    Each Q-network is ``create_mlp(..., post_linear_modules=[nn.LayerNorm])``: Linear → LayerNorm →
    activation per hidden layer, a plain linear output. Everything else is SB3's ``ContinuousCritic``
    (it is asked for zero networks, then given these).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        net_arch: list[int],
        features_extractor: BaseFeaturesExtractor,
        features_dim: int,
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
        n_critics: int = 2,
        share_features_extractor: bool = True,
    ) -> None:
        super().__init__(observation_space, action_space, net_arch, features_extractor, features_dim,
                         activation_fn, normalize_images, n_critics=0,
                         share_features_extractor=share_features_extractor)
        self.n_critics = n_critics
        action_dim = get_action_dim(self.action_space)
        for idx in range(n_critics):
            layers = create_mlp(features_dim + action_dim, 1, net_arch, activation_fn,
                                post_linear_modules=[nn.LayerNorm])
            q_net = nn.Sequential(*layers)
            self.add_module(f"qf{idx}", q_net)
            self.q_networks.append(q_net)


class CriticNormSACPolicy(SACPolicy):
    """SB3's SAC policy with an optional LayerNorm critic (:class:`LayerNormCritic`).

    Keyword arguments (beyond :class:`~stable_baselines3.sac.policies.SACPolicy`'s):
        critic_layer_norm: LayerNorm after every hidden layer of both critics and their targets
            (default ``False``: SB3's critics exactly).
    """

    def __init__(self, *args: Any, critic_layer_norm: bool = False, **kwargs: Any) -> None:
        # Stored before super().__init__, whose _build() calls make_critic.
        self.critic_layer_norm = bool(critic_layer_norm)
        super().__init__(*args, **kwargs)

    def make_critic(self, features_extractor: BaseFeaturesExtractor | None = None) -> ContinuousCritic:
        if not self.critic_layer_norm:
            return super().make_critic(features_extractor)
        critic_kwargs = self._update_features_extractor(self.critic_kwargs, features_extractor)
        return LayerNormCritic(**critic_kwargs).to(self.device)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data["critic_layer_norm"] = self.critic_layer_norm
        return data


class EraSACPolicy(CriticNormSACPolicy):
    """SB3's SAC policy whose actor is an :class:`EraActor`. Use it with ``SAC(..., ent_coef=0.0)``;
    any other ``ent_coef`` is refused.

    Keyword arguments (beyond :class:`CriticNormSACPolicy`'s, e.g. ``critic_layer_norm``):
        entropy_per_dim: H0 / D, the target entropy per action dimension (default 0.25).
        log_std_min, log_std_max: bounds on every log σ (default -8 and 0).
        delta: the compensation δ added to the Gaussian's target so that the *truncated* policy
            keeps the target: ``"auto"`` (default; tuned by
            :class:`adapters.rl.callbacks.DeltaTuningCallback`; training without it is refused),
            ``"constant"`` (``delta_per_dim · D``) or ``"none"`` (δ = 0, the authors' code).
        delta_per_dim: δ / D for ``delta="constant"``; 0.853 guarantees the floor for σ ≤ 1.
        distribution: ``"truncated"`` (default) or ``"tanh"`` (see :class:`EraActor`).
    """

    def __init__(
        self,
        *args: Any,
        entropy_per_dim: float = ERA_DEFAULTS["entropy_per_dim"],
        log_std_min: float = ERA_DEFAULTS["log_std_min"],
        log_std_max: float = ERA_DEFAULTS["log_std_max"],
        delta: DeltaMode = ERA_DEFAULTS["delta"],
        delta_per_dim: float = ERA_DEFAULTS["delta_per_dim"],
        distribution: Literal["truncated", "tanh"] = ERA_DEFAULTS["distribution"],
        **kwargs: Any,
    ) -> None:
        algorithm = _algorithm_building_policy()
        if algorithm is not None:
            check_no_sac_temperature(algorithm)
        # Stored before super().__init__, whose _build() calls make_actor (docs/era.md, section 1).
        self.era_kwargs = dict(entropy_per_dim=entropy_per_dim, log_std_min=log_std_min, log_std_max=log_std_max,
                               delta=delta, delta_per_dim=delta_per_dim, distribution=distribution)
        #: The δ tuner of the training run under way; a DeltaTuningCallback attaches it for one learn().
        self.delta_tuner: DeltaTuner | None = None
        super().__init__(*args, **kwargs)

    def set_training_mode(self, mode: bool) -> None:
        """SB3's SAC calls this with ``True`` before each update: refuse to update a ``delta="auto"``
        policy whose δ nothing tunes (it would stay 0, the authors' ``delta="none"``)."""
        if mode and self.actor.era.learn_delta and self.delta_tuner is None:
            raise ConfigError(
                "EraSACPolicy(delta='auto') needs its δ tuner, or δ stays 0: pass "
                "callback=DeltaTuningCallback() to every learn(), or choose delta='constant' or 'none'"
            )
        super().set_training_mode(mode)

    def make_actor(self, features_extractor: Any = None) -> EraActor:
        actor_kwargs = self._update_features_extractor(self.actor_kwargs, features_extractor)
        return EraActor(**actor_kwargs, **self.era_kwargs).to(self.device)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(self.era_kwargs)
        return data


# --------------------------------------------------------------------------------------------
# PPO
# --------------------------------------------------------------------------------------------


class EraActorCriticPolicy(ActorCriticPolicy):
    """SB3's PPO policy with its state-independent log-std passed through :class:`GaussianERA`.

    The Gaussian entropy is then ``H0 = entropy_per_dim · D`` in every state (higher only where
    the lower clip binds), so PPO's entropy bonus is moot; keep ``ent_coef=0`` (PPO's default).
    PPO clips actions outside the action space instead of squashing them, so no δ is needed, and
    the action space must be [-1, 1]: anything else is refused (docs/era.md, section 1, "SB3 PPO").

    The trained parameter, ERA's input σ̂, is ``raw_log_std``; ``log_std`` is ERA's log σ, which
    is what SB3's PPO and A2C log as ``train/std`` (``exp(policy.log_std).mean()``).

    Keyword arguments (beyond :class:`~stable_baselines3.common.policies.ActorCriticPolicy`'s):
    ``entropy_per_dim`` (default 0.25), ``log_std_min`` and ``log_std_max`` (default -8 and 0).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *args: Any,
        entropy_per_dim: float = ERA_DEFAULTS["entropy_per_dim"],
        log_std_min: float = ERA_DEFAULTS["log_std_min"],
        log_std_max: float = ERA_DEFAULTS["log_std_max"],
        **kwargs: Any,
    ) -> None:
        check_era_kwargs(entropy_per_dim, log_std_min, log_std_max)
        _check_unit_box(action_space)
        self.era_kwargs = dict(entropy_per_dim=entropy_per_dim, log_std_min=log_std_min, log_std_max=log_std_max)
        super().__init__(observation_space, action_space, *args, **kwargs)
        if not isinstance(self.action_dist, DiagGaussianDistribution):
            raise ConfigError(
                "PPO-ERA needs a Box action space and use_sde=False (a diagonal Gaussian policy), "
                f"got {type(self.action_dist).__name__}"
            )
        action_dim = get_action_dim(self.action_space)
        self.era = _make_era(action_dim, entropy_per_dim, log_std_min, log_std_max, "none", 0.0)
        self._sigma_cache: tuple[tuple, th.Tensor] | None = None
        self.register_load_state_dict_pre_hook(_rename_legacy_log_std)

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)
        # SB3 registers the trained parameter as log_std (while the log_std property below is
        # still undefined, see there); for ERA it is σ̂, so it is renamed. Same Parameter object,
        # so the optimizer built in super()._build is unaffected.
        self.raw_log_std = self._parameters.pop("log_std")

    @property
    def log_std(self) -> th.Tensor:  # type: ignore[override]
        """ERA's log σ, shape ``(D,)``: what SB3 logs as ``train/std``. Read-only; train or write
        ``raw_log_std`` instead."""
        if "raw_log_std" not in self._parameters or "era" not in self._modules:
            # Inside SB3's _build: AttributeError makes nn.Module register the parameter it assigns.
            raise AttributeError("log_std")
        return self.era_log_std()

    def _get_action_dist_from_latent(self, latent_pi: th.Tensor) -> Distribution:
        mean_actions = self.action_net(latent_pi)
        return self.action_dist.proba_distribution(mean_actions, self.era_log_std())  # type: ignore[call-arg]

    def era_log_std(self) -> th.Tensor:
        """``log σ`` (shape ``(D,)``): ``raw_log_std`` through ERA.

        It depends on no observation, so outside autograd (rollouts, evaluation) it is reused while
        every input of ERA has the same *value*: keys on tensor versions or storage went stale after
        writes through ``.data``. The lookup costs about a third of computing it
        (benchmarks/ppo_era_sigma_cache.py); a copy is returned, so callers may modify it.
        """
        raw = self.raw_log_std
        if th.is_grad_enabled():
            return self.era(raw, raw)[1]
        era = self.era
        key = (raw.device, raw.dtype, raw.tolist(), era.delta.item(), era.target_entropy.item(),
               era.log_std_min, era.log_std_max)
        if self._sigma_cache is None or self._sigma_cache[0] != key:
            self._sigma_cache = (key, era(raw, raw)[1])
        return self._sigma_cache[1].clone()

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(self.era_kwargs)
        return data


def _check_unit_box(action_space: spaces.Space) -> None:
    """Refuse a Box action space other than [-1, 1] for PPO-ERA (docs/era.md, section 1, "SB3 PPO").

    PPO samples from the Gaussian and clips to the bounds, so ERA's σ is in the space's own units
    and its mean starts at 0: on [10, 20] every action would sit on the lower bound.
    """
    if not isinstance(action_space, spaces.Box):
        return  # the DiagGaussianDistribution check names the problem
    low, high = np.asarray(action_space.low), np.asarray(action_space.high)
    if not (np.all(low == -1.0) and np.all(high == 1.0)):
        raise ConfigError(
            f"PPO-ERA needs actions in [-1, 1], got low={low.tolist()}, high={high.tolist()}: "
            f"wrap the env in gymnasium.wrappers.RescaleAction(env, -1, 1)"
        )


def _rename_legacy_log_std(module: nn.Module, state_dict: dict, prefix: str, *args: Any) -> None:
    """Load checkpoints written before the rename, which stored σ̂ as ``log_std``."""
    legacy = prefix + "log_std"
    if legacy in state_dict and prefix + "raw_log_std" not in state_dict:
        state_dict[prefix + "raw_log_std"] = state_dict.pop(legacy)
