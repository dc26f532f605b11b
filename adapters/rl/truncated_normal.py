"""A normal distribution truncated to an interval, elementwise, in pure PyTorch.

SAC-ERA samples its actions from it (docs/era.md, section 1): unlike a tanh-squashed
Gaussian, whose entropy loss grows without bound in |μ|, truncating to [-1, 1] loses at most
0.853 nats per dimension for σ ≤ 1, so ERA's entropy target becomes a real floor after a constant
compensation δ.

Everything here is per dimension (no summing over the last axis); the SB3 distribution in
``adapters.rl.policies`` sums and clips.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["TruncatedNormal", "truncated_normal_entropy"]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _std_normal_pdf(z: Tensor) -> Tensor:
    return torch.exp(-0.5 * z * z) * _INV_SQRT_2PI


class TruncatedNormal:
    """``Normal(loc, scale)`` restricted to ``[low, high]`` and renormalised, elementwise.

    ``loc`` must lie in ``[low, high]`` (the policy guarantees it by clipping ``tanh μ``); the
    normalising mass ``Z = Φ(b) − Φ(a)`` is then at least ``Φ(0) − Φ(−(high − low)/scale)``, so no
    tail cancellation can occur. The arithmetic follows the dtype of ``loc``.

    Args:
        loc, scale: broadcastable tensors; ``scale`` is floored at ``eps``.
        low, high: the support.
        eps: floor on the scale and on the uniform draw's distance from 0 and 1 (the authors'
            1e-6, docs/era.md, section 1).
    """

    def __init__(self, loc: Tensor, scale: Tensor, low: float, high: float, eps: float = 1e-6) -> None:
        if not low < high:
            raise ValueError(f"TruncatedNormal needs low < high, got [{low}, {high}]")
        self.loc = loc
        self.scale = torch.clamp(scale, min=eps)
        self.low, self.high, self.eps = float(low), float(high), float(eps)
        self.a = (self.low - self.loc) / self.scale
        self.b = (self.high - self.loc) / self.scale
        self.cdf_a = torch.special.ndtr(self.a)
        self.mass = torch.clamp(torch.special.ndtr(self.b) - self.cdf_a, min=eps)
        self.log_mass = torch.log(self.mass)

    def log_prob(self, x: Tensor) -> Tensor:
        """Per-dimension log-density at ``x`` (clipped into the support first)."""
        z = (torch.clamp(x, self.low, self.high) - self.loc) / self.scale
        return -0.5 * z * z - _HALF_LOG_2PI - torch.log(self.scale) - self.log_mass

    def entropy(self) -> Tensor:
        """Per-dimension analytic entropy ``log(√(2πe)·σ·Z) + (a·φ(a) − b·φ(b)) / (2Z)``."""
        a_pdf = self.a * _std_normal_pdf(self.a)
        b_pdf = self.b * _std_normal_pdf(self.b)
        return (
            0.5 + _HALF_LOG_2PI + torch.log(self.scale) + self.log_mass + (a_pdf - b_pdf) / (2.0 * self.mass)
        )

    def rsample(self, generator: torch.Generator | None = None) -> Tensor:
        """A reparameterised draw by the inverse CDF, ``u`` clipped to ``[eps, 1 − eps]``."""
        shape = torch.broadcast_shapes(self.loc.shape, self.scale.shape)
        u = torch.rand(shape, dtype=self.loc.dtype, device=self.loc.device, generator=generator)
        u = torch.clamp(u, self.eps, 1.0 - self.eps)
        z = torch.special.ndtri(self.cdf_a + self.mass * u)
        return torch.clamp(self.loc + self.scale * z, self.low, self.high)

    @property
    def mode(self) -> Tensor:
        """The most likely value: ``loc`` (which lies in the support)."""
        return self.loc


def truncated_normal_entropy(loc: Tensor, log_std: Tensor, low: float = -1.0, high: float = 1.0) -> Tensor:
    """Entropy of ``Normal(loc, exp(log_std))`` truncated to ``[low, high]``, summed over the last dim."""
    return TruncatedNormal(loc, torch.exp(log_std), low, high).entropy().sum(-1)
