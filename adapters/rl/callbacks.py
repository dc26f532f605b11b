"""SB3 callbacks for ERA: tuning SAC-ERA's compensation δ without touching ``SAC.train``.

With ``ent_coef=0.0`` SB3's own SAC update already has no entropy terms, so the narrowest seam for
the paper's δ loss is a callback (docs/era.md, section 1, "δ: constant, none, or tuned"): at the end of each rollout,
just before SB3 trains, it takes the entropy of the distribution the actions are actually drawn
from, over the replay batch of the previous update, and takes one Adam step of
:class:`adapters.era.DeltaTuner`.
"""

from __future__ import annotations

from typing import Any

import torch as th
from stable_baselines3.common.callbacks import BaseCallback

from adapters.era import DeltaTuner
from adapters.rl.policies import check_no_sac_temperature, era_of

__all__ = ["DeltaTuningCallback", "policy_entropy", "distribution_entropy"]


def policy_entropy(actor: Any, observations: th.Tensor) -> th.Tensor:
    """Per-state entropy ``(B,)`` of the distribution an SB3 SAC actor samples from."""
    mean_actions, log_std, kwargs = actor.get_action_dist_params(observations)
    return distribution_entropy(actor, mean_actions, log_std, **kwargs)


def distribution_entropy(actor: Any, mean_actions: th.Tensor, log_std: th.Tensor, **kwargs: Any) -> th.Tensor:
    """Per-state entropy ``(B,)`` of an SB3 SAC actor's distribution with the given parameters.

    Analytic where the distribution has one (the truncated normal); otherwise the one-sample
    estimate ``−log π(a|s)`` with ``a ∼ π(·|s)`` (SB3's tanh-squashed Gaussian has no closed form).
    """
    entropy = actor.action_dist.proba_distribution(mean_actions, log_std, **kwargs).entropy()
    if entropy is None:
        _, log_prob = actor.action_dist.log_prob_from_params(mean_actions, log_std, **kwargs)
        entropy = -log_prob
    return entropy


class DeltaTuningCallback(BaseCallback):
    """Tunes δ of an :class:`~adapters.rl.policies.EraSACPolicy` created with ``delta="auto"``.

    Does nothing for ``delta="constant"`` or ``"none"``. δ has its own Adam optimiser (never the
    actor's) and is clamped to ``[0, δ_max]``. Reuse one instance across ``learn()`` calls to keep
    the optimiser's state; :meth:`state_dict` / :meth:`load_state_dict` checkpoint it.

    Args:
        lr: δ's Adam learning rate (3e-3).
        per_dim: tune δ / D, so that δ moves about ``lr · D`` per step (default; see
            :class:`adapters.era.DeltaTuner`), or δ itself.
    """

    def __init__(self, lr: float = 3e-3, per_dim: bool = True, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.lr = float(lr)
        self.per_dim = bool(per_dim)
        self.tuner: DeltaTuner | None = None
        self._pending_state: dict | None = None
        self._pending_params: tuple | None = None
        self.last_entropy = float("nan")

    def _init_callback(self) -> None:
        era = era_of(self.model.policy)
        if not era.learn_delta:
            self.tuner = None
            return
        check_no_sac_temperature(self.model)
        if self.tuner is None or self.tuner.era is not era:
            self.tuner = DeltaTuner(era, lr=self.lr, per_dim=self.per_dim)
            if self._pending_state is not None:
                self.tuner.load_state_dict(self._pending_state)
                self._pending_state = None
        if self._pending_params is not None:
            self.model.actor.last_update_params = self._pending_params
            self._pending_params = None

    def _on_training_start(self) -> None:
        # EraSACPolicy refuses to update a delta="auto" policy with no tuner attached; attached for
        # this learn() only, so a later learn() without the callback is refused too.
        if self.tuner is not None:
            self.model.policy.delta_tuner = self.tuner

    def _on_training_end(self) -> None:
        if getattr(self.model.policy, "delta_tuner", None) is self.tuner:
            self.model.policy.delta_tuner = None

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        # Runs just before SB3's next update. The entropy is that of the replay batch of SB3's last
        # update, kept by the actor (EraActor.last_update_params): no extra replay sample or
        # forward pass, which would cost ~8% of SAC's throughput (benchmarks/adapter_overhead.py).
        actor = self.model.actor
        params = getattr(actor, "last_update_params", None)
        if self.tuner is None or params is None:
            return
        actor.last_update_params = None
        with th.no_grad():
            entropy = distribution_entropy(actor, *params)
        delta = self.tuner.step(entropy)
        self.last_entropy = float(entropy.mean())
        self.logger.record("train/era_delta", delta)
        self.logger.record("train/era_entropy", self.last_entropy)

    def state_dict(self) -> dict:
        """δ, its optimiser's state and the batch its next step reads (empty when δ is not tuned)."""
        if self.tuner is None:
            return dict(self._pending_state or {})
        state = self.tuner.state_dict()
        model = getattr(self, "model", None)
        params = getattr(model.actor, "last_update_params", None) if model is not None else None
        if params is not None:  # the next step's input: without it a resumed trial skips one δ step
            state["last_update_params"] = params
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`; applied when the callback is next attached to a model."""
        if not state:
            return
        state = dict(state)
        self._pending_params = state.pop("last_update_params", None)
        if self.tuner is not None:
            self.tuner.load_state_dict(state)
        else:
            self._pending_state = state
