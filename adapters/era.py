"""The three ERA activations (Kang et al. 2025, arXiv 2510.08549), in pure PyTorch.

Every formula, and the facts measured about it, is in ``docs/era.md``; section numbers below refer to it.

- :class:`GaussianERA` (section 1): pins the entropy of a diagonal Gaussian policy at
  ``target_entropy + delta`` by choosing how the log-std budget is spread over dimensions.
- :class:`SoftmaxERA` (section 2): maps logits to logits whose softmax has entropy at least
  ``min_entropy``, preserving the ranking.
- :func:`token_era` and :func:`response_entropy` (section 3): the token-level rule for LLM RL
  (:func:`token_era_factors`, :func:`apply_token_factor` and
  :func:`response_entropy_from_token_entropies` are its parts, for a path that never holds logits).

Nothing here imports anything but torch, so every adapter (SB3, torchvision, TRL) shares one
implementation.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

__all__ = [
    "HALF_LOG_2PI_E",
    "GaussianERA",
    "DeltaTuner",
    "SoftmaxERA",
    "token_era",
    "token_era_factors",
    "apply_token_factor",
    "token_entropy",
    "response_entropy",
    "response_entropy_from_token_entropies",
    "gaussian_entropy",
    "softmax_entropy",
]

#: Entropy of a unit-variance 1-D Gaussian, ½·log(2πe).
HALF_LOG_2PI_E: float = 0.5 * math.log(2.0 * math.pi * math.e)


def gaussian_entropy(log_std: Tensor) -> Tensor:
    """Entropy of a diagonal Gaussian with the given log-stds, summed over the last dim."""
    return (log_std.float() + HALF_LOG_2PI_E).sum(-1)


def softmax_entropy(logits: Tensor) -> Tensor:
    """Entropy of ``softmax(logits)`` over the last dim, computed stably in fp32."""
    log_p = torch.log_softmax(logits.float(), dim=-1)
    return -(log_p.exp() * log_p).sum(-1)


# --------------------------------------------------------------------------------------------
# 1. Gaussian ERA (continuous control)
# --------------------------------------------------------------------------------------------


class GaussianERA(nn.Module):
    """Entropy-pinning activation for a diagonal Gaussian policy head (docs/era.md, section 1).

    ``log σ = clamp(hi + k·softmax(σ̂), lo, hi)`` with ``k = (H0 + δ) − D·(L + hi)``, so that
    unclipped ``Σ log σ = H0 + δ − D·L`` and the Gaussian entropy is exactly ``H0 + δ``. The lower
    clip can only raise the entropy. The mean passes through unchanged.

    Args:
        action_dim: D, the number of action dimensions.
        target_entropy: H0, the total (not per-dimension) target entropy.
        log_std_min, log_std_max: the clip bounds ``lo`` and ``hi`` on every log-std.
        delta: the compensation δ added to the target. A number keeps it constant; ``"auto"``
            starts it at 0 and marks it for tuning with :meth:`delta_loss` (see
            :class:`DeltaTuner`). δ is a buffer, not a parameter: it is saved with the module but
            never reaches an optimizer built from ``module.parameters()``.

    Raises:
        ValueError: if ``H0 + δ`` is outside ``[D·(L + lo), D·(L + hi)]``, the range in which the
            activation can actually pin the entropy.
    """

    def __init__(
        self,
        action_dim: int,
        target_entropy: float,
        log_std_min: float = -8.0,
        log_std_max: float = 0.0,
        delta: float | Literal["auto"] = 0.0,
    ) -> None:
        super().__init__()
        if int(action_dim) < 1:
            raise ValueError(f"GaussianERA needs action_dim >= 1, got {action_dim}")
        if not log_std_min < log_std_max:
            raise ValueError(
                f"GaussianERA needs log_std_min < log_std_max, got {log_std_min} >= {log_std_max}"
            )
        self.action_dim = int(action_dim)
        self.log_std_min = float(log_std_min)
        self.log_std_max = float(log_std_max)
        self.learn_delta = delta == "auto"
        if isinstance(delta, str) and not self.learn_delta:
            raise ValueError(f"GaussianERA delta must be a number or 'auto', got {delta!r}")
        initial_delta = 0.0 if self.learn_delta else float(delta)
        if initial_delta < 0:
            raise ValueError(f"GaussianERA delta must be >= 0, got {initial_delta}")
        low, high = self.reachable_range
        if not low <= float(target_entropy) + initial_delta <= high:
            raise ValueError(
                f"GaussianERA target entropy {float(target_entropy) + initial_delta:.4g} "
                f"(target {float(target_entropy):.4g} + delta {initial_delta:.4g}) is not reachable "
                f"for action_dim={self.action_dim} with log-std in [{self.log_std_min}, "
                f"{self.log_std_max}]: choose a total target in [{low:.4g}, {high:.4g}] "
                f"(per dimension [{low / self.action_dim:.4g}, {high / self.action_dim:.4g}])"
            )
        self.register_buffer("target_entropy", torch.tensor(float(target_entropy)))
        self.register_buffer("delta", torch.tensor(initial_delta))

    @property
    def reachable_range(self) -> tuple[float, float]:
        """The totals ``[D·(L + lo), D·(L + hi)]`` that the activation can pin the entropy at."""
        dim = self.action_dim
        return dim * (HALF_LOG_2PI_E + self.log_std_min), dim * (HALF_LOG_2PI_E + self.log_std_max)

    @property
    def delta_max(self) -> float:
        """Largest useful δ: beyond it every σ sits at σ_max and an auto-tuned δ would wind up."""
        return self.reachable_range[1] - float(self.target_entropy)

    @property
    def pinned_entropy(self) -> float:
        """H0 + δ: the Gaussian entropy every unclipped output has."""
        return float(self.target_entropy + self.delta)

    def forward(self, mean: Tensor, raw_log_std: Tensor) -> tuple[Tensor, Tensor]:
        """Map ``(μ, σ̂)`` of shape ``(..., D)`` to ``(μ, log σ)``; log σ is fp32 (docs/era.md, section 1)."""
        if raw_log_std.shape[-1] != self.action_dim:
            raise ValueError(
                f"GaussianERA expects raw_log_std with last dim {self.action_dim}, "
                f"got shape {tuple(raw_log_std.shape)}"
            )
        budget = (self.target_entropy + self.delta) - self.action_dim * (
            HALF_LOG_2PI_E + self.log_std_max
        )
        weights = torch.softmax(raw_log_std.float(), dim=-1)
        log_std = torch.clamp(self.log_std_max + budget * weights, self.log_std_min, self.log_std_max)
        return mean, log_std

    def delta_loss(self, entropy: Tensor, delta: Tensor | None = None) -> Tensor:
        """The paper's δ loss ``E_s[δ·(H[π(·|s)] − H0)]`` (entropy detached).

        ``entropy`` is the per-state entropy of the distribution actions are actually sampled from
        (the bounded policy). Minimising over δ ≥ 0 raises δ while that entropy is below H0 and
        lowers it otherwise, like SAC's temperature loss. ``delta`` defaults to this module's
        buffer; pass a leaf tensor that requires grad to optimise it (see :class:`DeltaTuner`).
        """
        delta = self.delta if delta is None else delta
        return (delta * (entropy.detach().float() - float(self.target_entropy))).mean()

    def set_delta(self, value: float | Tensor) -> None:
        """Set δ, clamped to ``[0, delta_max]`` (spec: unclamped δ winds up, 597 was seen)."""
        clamped = min(max(float(value), 0.0), self.delta_max)
        self.delta.fill_(clamped)

    def extra_repr(self) -> str:
        return (
            f"action_dim={self.action_dim}, target_entropy={float(self.target_entropy):.4g}, "
            f"log_std=[{self.log_std_min}, {self.log_std_max}], delta={float(self.delta):.4g}"
            f"{' (auto)' if self.learn_delta else ''}"
        )


class DeltaTuner:
    """Tunes a :class:`GaussianERA`'s δ with Adam on :meth:`GaussianERA.delta_loss`.

    δ lives in its own optimiser, never in the policy's, and is clamped to ``[0, delta_max]``
    after every step, then copied into the module's buffer.

    Adam's steps are scale-free: whatever the gradient's size, δ moves about ``lr`` per step. The
    compensation δ must make up for what bounding the policy costs *per action dimension* (up to
    0.853 nats for the truncated normal), so with ``per_dim=True`` (default) Adam tunes δ / D and δ
    moves about ``lr · D`` per step; with ``per_dim=False`` it tunes δ itself and a 61-dimensional
    policy takes 61 times longer to reach its floor (``docs/era.md``, "δ tuning").
    """

    def __init__(self, era: GaussianERA, lr: float = 3e-3, per_dim: bool = True) -> None:
        self.era = era
        self.scale = float(era.action_dim) if per_dim else 1.0
        self.param = torch.tensor(float(era.delta) / self.scale, requires_grad=True)
        self.optimizer = torch.optim.Adam([self.param], lr=lr)

    @property
    def delta(self) -> Tensor:
        """δ as Adam sees it, times the scale: the value the next step starts from."""
        return self.param.detach() * self.scale

    def step(self, entropy: Tensor) -> float:
        """One Adam step on the δ loss for a batch of per-state entropies; returns the new δ."""
        loss = self.era.delta_loss(entropy.detach().cpu(), self.param * self.scale)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            self.param.clamp_(0.0, self.era.delta_max / self.scale)
        self.era.set_delta(self.param.item() * self.scale)
        return float(self.era.delta)

    def state_dict(self) -> dict:
        return {"delta": self.delta.clone(), "scale": self.scale, "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if float(state.get("scale", 1.0)) != self.scale:
            raise ValueError(
                f"this δ tuner tunes δ / {self.scale:g}, the saved one δ / {float(state.get('scale', 1.0)):g}: "
                f"resume with the same delta_lr_scale"
            )
        with torch.no_grad():
            self.param.copy_(state["delta"] / self.scale)
        self.optimizer.load_state_dict(state["optimizer"])
        self.era.set_delta(self.param.item() * self.scale)


# --------------------------------------------------------------------------------------------
# 2. Softmax ERA (classification)
# --------------------------------------------------------------------------------------------


class SoftmaxERA(nn.Module):
    """Logit activation whose softmax has entropy at least ``min_entropy`` (docs/era.md, section 2).

    With ``u_b = log τ/τ`` and ``C = exp(H_min − 1)``, the probabilities p are mapped affinely to
    ``h = slope·p + b`` (``Σ h = C``), and each ``h`` is inverted through the lower branch of
    ``−q log q``; the new logits are ``log q``. The argmax is preserved.

    Args:
        num_classes: n, the number of classes (at least 2).
        min_entropy: H_min, the entropy floor in nats. Must lie in
            ``(1 + log u_b, 1 + log(n·u_b))``; outside it the map is undefined or reverses the
            ranking.
        tau: τ, which sets ``u_b`` (the authors use 4).
        inverse: ``"series"`` (the authors' closed-form approximation, which reproduces their
            results; floor holds to within 0.01) or ``"exact"`` (Lambert W₋₁ by Newton's method).
    """

    def __init__(
        self,
        num_classes: int,
        min_entropy: float = 0.6,
        tau: float = 4.0,
        inverse: Literal["series", "exact"] = "series",
    ) -> None:
        super().__init__()
        if int(num_classes) < 2:
            raise ValueError(f"SoftmaxERA needs num_classes >= 2, got {num_classes}")
        if tau <= 1.0:
            raise ValueError(f"SoftmaxERA needs tau > 1, got {tau}")
        if inverse not in ("series", "exact"):
            raise ValueError(f"SoftmaxERA inverse must be 'series' or 'exact', got {inverse!r}")
        n = int(num_classes)
        u_b = math.log(tau) / tau
        low, high = self.allowed_range(n, tau)
        if not low < float(min_entropy) < high:
            raise ValueError(
                f"SoftmaxERA min_entropy={min_entropy} is outside the allowed range "
                f"({low:.4f}, {high:.4f}) for num_classes={n}, tau={tau}: choose a floor strictly "
                f"inside it (above it the map reverses the class ranking or returns NaN)"
            )
        c = math.exp(float(min_entropy) - 1.0)
        self.num_classes = n
        self.min_entropy = float(min_entropy)
        self.tau = float(tau)
        self.inverse = inverse
        self.slope = (n * u_b - c) / (n - 1)
        self.offset = (c - u_b) / (n - 1)

    @staticmethod
    def allowed_range(num_classes: int, tau: float = 4.0) -> tuple[float, float]:
        """The open interval of floors ``(1 + log u_b, 1 + log(n·u_b))`` (docs/era.md, section 2)."""
        u_b = math.log(tau) / tau
        return 1.0 + math.log(u_b), 1.0 + math.log(num_classes * u_b)

    def forward(self, logits: Tensor) -> Tensor:
        if logits.shape[-1] != self.num_classes:
            raise ValueError(
                f"SoftmaxERA expects logits with last dim {self.num_classes}, "
                f"got shape {tuple(logits.shape)}"
            )
        p = torch.softmax(logits.float(), dim=-1)
        h = self.slope * p + self.offset
        if self.inverse == "series":
            u = -1.0 - torch.log(h)
            out = -1.0 - torch.sqrt(2.0 * u) - 0.75 * u
        else:
            out = _lambert_w_minus1_of_neg(h)
        # Shifting by a constant leaves the softmax unchanged and keeps outputs small (>= 0).
        out = out - out.min(dim=-1, keepdim=True).values.detach()
        return out.to(logits.dtype)

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, min_entropy={self.min_entropy}, tau={self.tau}, "
            f"inverse={self.inverse!r}"
        )


def _lambert_w_minus1_of_neg(h: Tensor, iterations: int = 6) -> Tensor:
    """``W₋₁(−h)`` for ``h ∈ (0, 1/e)``: the log of the small root q of ``−q·log q = h``.

    Solves ``g(w) = w + log(−w) − log h = 0`` on ``w < −1`` by Newton's method from the series
    guess, without autograd; a last Newton step with autograd on gives the implicit-function
    gradient ``dw/d log h = w/(w + 1)``.
    """
    log_h = torch.log(h.double())
    with torch.no_grad():
        u = -1.0 - log_h
        w = -1.0 - torch.sqrt(2.0 * u) - 0.75 * u
        for _ in range(iterations):
            w = w - (w + torch.log(-w) - log_h) * w / (w + 1.0)
            w = torch.clamp(w, max=-1.0 - 1e-12)
    w = w - (w + torch.log(-w) - log_h) * w / (w + 1.0)
    return w.float()


# --------------------------------------------------------------------------------------------
# 3. Token-level ERA (LLM RL)
# --------------------------------------------------------------------------------------------


def token_entropy(logits: Tensor) -> Tensor:
    """Per-token entropy ``(B, T)`` of logits ``(B, T, V)``, in fp32."""
    return softmax_entropy(logits)


def response_entropy(logits: Tensor, mask: Tensor, top_fraction: float = 0.2) -> Tensor:
    """Response entropy ``(B,)``: the mean of the top ``⌊top_fraction·L_b⌋`` (at least 1) token
    entropies of each response, over its ``L_b`` unmasked tokens (docs/era.md, section 3).

    ``logits`` ``(B, T, V)`` must be the *unmodified* logits (already divided by the sampling
    temperature); ``mask`` ``(B, T)`` is 1 on response tokens and 0 on padding. A response with no
    tokens gets entropy 0.
    """
    return response_entropy_from_token_entropies(token_entropy(logits), mask, top_fraction)


def response_entropy_from_token_entropies(entropies: Tensor, mask: Tensor, top_fraction: float = 0.2) -> Tensor:
    """:func:`response_entropy` from per-token entropies ``(B, T)`` (of the unmodified logits), for
    callers that never hold the logits (a fused LM head); values at masked positions are ignored."""
    if not 0.0 < top_fraction <= 1.0:
        raise ValueError(f"response_entropy top_fraction must be in (0, 1], got {top_fraction}")
    entropies = entropies.detach().float()
    valid = mask.bool()
    lengths = valid.sum(-1)
    k = torch.clamp(torch.floor(lengths.double() * top_fraction).long(), min=1)
    ranked = torch.where(valid, entropies, torch.full_like(entropies, -math.inf))
    ranked = torch.sort(ranked, dim=-1, descending=True).values
    ranked = torch.where(torch.isfinite(ranked), ranked, torch.zeros_like(ranked))
    top_sum = torch.cumsum(ranked, dim=-1).gather(-1, (k - 1).clamp(max=ranked.shape[-1] - 1)[:, None])
    result = top_sum.squeeze(-1) / k.to(top_sum.dtype)
    return torch.where(lengths > 0, result, torch.zeros_like(result))


def token_era_factors(
    advantages: Tensor,
    response_entropy: Tensor,
    k: float = 2.0,
    omega_low: float = 0.45,
    omega_high: float = 3.0,
    authors_code: bool = False,
) -> tuple[Tensor, Tensor]:
    """Token-level ERA's per-token factors ``(s for the logits, s for the advantages)``, each
    ``(B, T)`` fp32 (docs/era.md, section 3); :func:`token_era` applies them.

    Per token, ``s = k`` if the response's entropy is below ``omega_low`` and ``A > 0``,
    ``s = 1/k`` if it is above ``omega_high`` and ``A > 0``, else ``s = 1``. With
    ``authors_code`` the logit rule tests the advantage truncated to an integer and the advantage
    rule the float ``A > 0`` of the response's first token (the authors' code); otherwise both are
    the same factor.
    """
    if k <= 0:
        raise ValueError(f"token_era needs k > 0, got {k}")
    if not omega_low <= omega_high:
        raise ValueError(f"token_era needs omega_low <= omega_high, got {omega_low} > {omega_high}")
    low = (response_entropy < omega_low)[:, None]
    high = (response_entropy > omega_high)[:, None]

    def factor(positive: Tensor) -> Tensor:
        ones = torch.ones_like(advantages, dtype=torch.float32)
        s = torch.where(low & positive, torch.full_like(ones, k), ones)
        return torch.where(high & positive, torch.full_like(ones, 1.0 / k), s)

    if authors_code:
        return factor(advantages.trunc() > 0), factor((advantages[:, :1] > 0).expand_as(advantages))
    logit_factor = factor(advantages > 0)
    return logit_factor, logit_factor


def apply_token_factor(values: Tensor, factor: Tensor, divide: bool = False) -> Tensor:
    """``values · s`` (or ``values / s``) where ``s != 1``, the other entries bit-identical.

    ``factor`` is ``(B, T)``; ``values`` is ``(B, T)`` (advantages) or ``(B, T, D)`` (logits, or
    the hidden states a bias-free LM head maps to them: ``s·(W h) = W (s·h)``).
    """
    scaled = factor != 1.0
    if values.dim() == factor.dim() + 1:
        scaled, factor = scaled[..., None], factor[..., None]
    factor = factor.to(values.dtype)
    return torch.where(scaled, values / factor if divide else values * factor, values)


def token_era(
    logits: Tensor,
    advantages: Tensor,
    response_entropy: Tensor,
    k: float = 2.0,
    omega_low: float = 0.45,
    omega_high: float = 3.0,
    scale_advantages: bool = True,
    authors_code: bool = False,
) -> tuple[Tensor, Tensor]:
    """Token-level ERA (docs/era.md, section 3): returns ``(s·z, A/s)``.

    Per token, ``s = k`` if the response's entropy is below ``omega_low`` and ``A > 0``,
    ``s = 1/k`` if it is above ``omega_high`` and ``A > 0``, else ``s = 1``
    (:func:`token_era_factors`). Tokens with ``s = 1`` are returned bit-identical.

    Args:
        logits: ``(B, T, V)`` logits after temperature.
        advantages: ``(B, T)`` float advantages.
        response_entropy: ``(B,)`` from :func:`response_entropy` on the unmodified logits.
        k, omega_low, omega_high: the paper's scale and entropy band (defaults from the authors'
            scripts: 2, 0.45, 3.0).
        scale_advantages: divide the advantages by ``s``, which makes the policy gradient
            ``A·(e_a − softmax(s·z))`` (the factor k cancels). The authors' latest script does this.
        authors_code: reproduce the authors' code exactly: the logit rule tests the advantage
            after truncation to an integer (so only ``A >= 1`` scales logits), while the advantage
            rule tests the float ``A > 0`` of the response's first token.
    """
    logit_factor, adv_factor = token_era_factors(
        advantages, response_entropy, k=k, omega_low=omega_low, omega_high=omega_high, authors_code=authors_code
    )
    new_logits = apply_token_factor(logits, logit_factor)
    new_advantages = apply_token_factor(advantages, adv_factor, divide=True) if scale_advantages else advantages
    return new_logits, new_advantages
