"""Where ERA enters TD-MPC2: the last layer of its policy prior.

``WorldModel.pi(z)`` splits the prior network's output into ``(mean, x)``, maps ``x`` into
``[log_std_min, log_std_max]`` with ``log_std_min + ½·dif·(tanh x + 1)``, samples
``mean + σ·ε``, squashes with tanh and returns the squashed sample with its log-prob and entropy.
:class:`EraPriorHead` replaces the prior network ``model._pi`` by the same network followed by
:class:`~adapters.era.GaussianERA` on the log-std half: it computes ERA's ``log σ`` from ``(mean,
x)`` and hands ``pi`` the preimage of that ``log σ`` under its tanh map, so upstream's ``pi``
(sampling, squash, log-prob, entropy) runs unchanged and sees exactly ERA's σ. ERA's bounds lie
strictly inside TD-MPC2's ([-8, 0] inside [-10, 2] by default), where the map is well conditioned:
the round trip moves ``log σ`` by about 1e-6.

What ERA pins, and why (``docs/tdmpc2.md``): the **pre-tanh Gaussian**'s entropy is pinned at
``H0 + δ`` in every state. The prior's actions are then squashed by tanh, which removes
``E[Σ log(1 − tanh² u)]`` nats, unbounded as the means saturate, so with ``delta: auto`` (the
default) δ is tuned, as for SAC-ERA, by the paper's loss ``δ·(H − H0)`` on the **squashed** prior's
entropy, upstream's own one-sample estimate over the update batch (``pi_entropy``): the mean
entropy of the distribution the prior's actions are drawn from is held at H0. A number fixes δ.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from adapters.era import DeltaTuner, GaussianERA

__all__ = ["EraPriorHead", "attach_era", "era_of"]

#: keep the preimage's argument this far inside (-1, 1), where atanh stays finite in fp32
_EDGE = 1e-6


class EraPriorHead(nn.Module):
    """TD-MPC2's prior network with :class:`GaussianERA` on its log-std half.

    Args:
        network: the prior network (``WorldModel._pi``), output ``(..., 2·D)``.
        era: the activation (D, H0, ERA's bounds, δ).
        upstream_low, upstream_dif: the world model's ``log_std_min`` and ``log_std_dif`` buffers.
    """

    def __init__(self, network: nn.Module, era: GaussianERA, upstream_low: Tensor, upstream_dif: Tensor) -> None:
        super().__init__()
        self.network = network
        self.era = era
        self.upstream_low = float(upstream_low)
        self.upstream_dif = float(upstream_dif)

    def forward(self, z: Tensor) -> Tensor:
        mean, raw_log_std = self.network(z).chunk(2, dim=-1)
        mean, log_std = self.era(mean, raw_log_std)
        unit = (log_std - self.upstream_low) * (2.0 / self.upstream_dif) - 1.0  # tanh x, in (-1, 1)
        preimage = torch.atanh(unit.clamp(-1.0 + _EDGE, 1.0 - _EDGE))
        return torch.cat([mean, preimage.to(mean.dtype)], dim=-1)


def attach_era(agent: Any, era_settings: dict[str, Any]) -> DeltaTuner | None:
    """Put ERA on ``agent``'s prior; returns the δ tuner when δ is ``auto``.

    The prior optimiser keeps working unchanged: it was built on the network's parameters, which
    the head wraps, and ERA itself has none (δ is a buffer, tuned by its own Adam).
    """
    model = agent.model
    dims = int(agent.cfg.action_dim)
    era = GaussianERA(
        dims, era_settings["entropy_per_dim"] * dims, era_settings["log_std_min"], era_settings["log_std_max"],
        era_settings["delta"],
    ).to(model.log_std_min.device)
    model._pi = EraPriorHead(model._pi, era, model.log_std_min, model.log_std_dif)
    if era_settings["delta"] != "auto":
        return None
    return DeltaTuner(era, lr=era_settings["delta_lr"], per_dim=era_settings["delta_lr_scale"] == "per_dim")


def era_of(agent: Any) -> GaussianERA | None:
    """The :class:`GaussianERA` on ``agent``'s prior, or ``None`` for plain TD-MPC2."""
    head = agent.model._pi
    return head.era if isinstance(head, EraPriorHead) else None
