"""Token-level ERA inside Hugging Face TRL's ``GRPOTrainer`` (docs/era.md, section 3; TRL 1.16).

The seam (docs/llm.md): TRL's ``_compute_loss`` asks
``_get_per_token_logps_and_entropies`` for the per-token log-probs and entropies, and reads
``inputs["advantages"]`` only afterwards. :class:`ERAGRPOTrainer` overrides just those two methods:

1. ``_compute_loss`` keeps a handle on (a copy of) the batch, then calls TRL's own loss;
2. ``_get_per_token_logps_and_entropies`` measures the response entropy on the *unmodified* logits
   ``z`` (divided by the sampling temperature; mean of the top 20% token entropies), applies
   token-level ERA (``s·z`` and ``A/s``, :mod:`adapters.era`), returns the log-probs of
   ``softmax(s·z)`` and the unmodified token entropies, and writes ``A/s`` into the batch, where
   TRL's loss reads it next.

So TRL's clipped objective, loss aggregation, KL term, entropy metric and logging all stay TRL's;
with ``k = 1`` the loss and its gradients equal TRL's own (tests/adapters/llm/test_era_trainer.py).

Old log-probs (``num_iterations > 1`` or a generation batch spanning optimizer steps) are
recomputed after the advantages are known, with the same ERA, as the authors' verl actor does, so
the importance ratio starts at 1. Reference log-probs (``beta > 0``) are the reference model's
plain ones and the KL term sees the ERA log-probs, as in the authors' actor. vLLM generation,
MoE auxiliary losses and multimodal inputs are refused: they were not checked.

Memory (docs/llm.md, "Memory"): by default (``era_path="fused"``) the log-probs and entropies go
through TRL's own chunked LM-head kernel, as plain GRPO's do, applied to ``s·h`` (a bias-free head
gives ``s·logits = W(s·h)``) after a gradient-free entropy pass over the rows ERA could scale; the
``B x T x V`` logits never exist, and peak memory and step time stay those of plain GRPO, up
to the extra pass (measured by benchmarks/llm_memory.py; docs/llm.md, "Memory"). Heads the kernel cannot serve (a bias, soft-capping, a logit
scale, PEFT, FSDP / DeepSpeed) fall back, with a logged reason, to ``era_path="logits"``: the full
completion logits in fp32, a few copies per micro-batch (4.1 MiB per completion token at a
152k vocabulary, measured), the reference the fused path is tested against
(tests/adapters/llm/test_fused_era.py).

This module imports TRL: set the ``HF_*_OFFLINE`` variables before importing it where no network
is wanted (``adapters.llm`` does).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
from torch import Tensor
from trl import GRPOTrainer

from adapters.era import (
    apply_token_factor,
    response_entropy,
    response_entropy_from_token_entropies,
    token_entropy,
    token_era,
    token_era_factors,
)
from adapters.llm.fused import completion_hidden_states, fused_head_refusal, head_log_probs, selected_logits, topk_indices

__all__ = ["ERAGRPOTrainer", "topk_log_probs", "renormalised_log_probs", "AUTHORS_TOPK", "ERA_PATHS"]

_log = logging.getLogger(__name__)
#: how the policy's ERA log-probs are computed (see ERAGRPOTrainer)
ERA_PATHS = ("fused", "logits")

#: the authors' ``topk=True`` scripts take log-probs from the renormalised top-20 logits
AUTHORS_TOPK = 20
_OUTSIDE_TOPK_LOGP = -1.0e4


def topk_log_probs(logits: Tensor, ids: Tensor, k: int = AUTHORS_TOPK) -> Tensor:
    """Log-probs ``(B, T)`` of ``ids`` under the renormalised top-``k`` of ``logits`` ``(B, T, V)``;
    a token outside the top ``k`` gets ``-1e4`` (the authors' ``logprobs_from_logits_topk``)."""
    values, indices = logits.topk(min(k, logits.shape[-1]), dim=-1)
    return renormalised_log_probs(values, indices, ids)


def renormalised_log_probs(values: Tensor, indices: Tensor, ids: Tensor) -> Tensor:
    """Log-probs of ``ids`` ``(...)`` under the softmax of the top-k logit ``values`` ``(..., k)``
    at vocabulary ``indices``; ``-1e4`` where ``ids`` is not among them."""
    log_p = torch.log_softmax(values.float(), dim=-1)
    hit = indices == ids[..., None]
    chosen = torch.where(hit, log_p, torch.zeros_like(log_p)).sum(-1)
    return torch.where(hit.any(-1), chosen, torch.full_like(chosen, _OUTSIDE_TOPK_LOGP))


class ERAGRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` with token-level ERA on the policy's logits (docs/era.md, section 3).

    Args (besides ``GRPOTrainer``'s):
        era_k: the scale ``k`` (> 0); 2 in the authors' scripts.
        omega_low, omega_high: the response-entropy band (0.45, 3.0 in the authors' scripts).
        scale_advantages: divide the advantages by ``s`` (the authors' latest script).
        authors_code: reproduce the authors' code: integer-truncated advantages in the logit rule
            and log-probs from the renormalised top-20 logits (docs/era.md, section 3, code quirks).
        top_fraction: the share of a response's tokens whose entropies are averaged (0.2).
        era_path: ``"fused"`` (default): log-probs and entropies through TRL's chunked LM-head
            kernel, never holding the ``B x T x V`` logits (:mod:`adapters.llm.fused`); heads it
            cannot serve (a bias, soft-capping, ...) fall back to ``"logits"`` with a logged
            reason. ``"logits"``: the full fp32 completion logits, the reference computation.
    """

    def __init__(
        self,
        *args: Any,
        era_k: float = 2.0,
        omega_low: float = 0.45,
        omega_high: float = 3.0,
        scale_advantages: bool = True,
        authors_code: bool = False,
        top_fraction: float = 0.2,
        era_path: str = "fused",
        **kwargs: Any,
    ) -> None:
        if not era_k > 0:
            raise ValueError(f"era_k must be > 0, got {era_k}")
        if not omega_low <= omega_high:
            raise ValueError(f"omega_low must be <= omega_high, got {omega_low} > {omega_high}")
        if not 0.0 < top_fraction <= 1.0:
            raise ValueError(f"top_fraction must be in (0, 1], got {top_fraction}")
        if era_path not in ERA_PATHS:
            raise ValueError(f"era_path must be one of {', '.join(ERA_PATHS)}, got {era_path!r}")
        self.era_k = float(era_k)
        self.omega_low = float(omega_low)
        self.omega_high = float(omega_high)
        self.scale_advantages = bool(scale_advantages)
        self.authors_code = bool(authors_code)
        self.top_fraction = float(top_fraction)
        self._era_batch: dict[str, Any] | None = None
        super().__init__(*args, **kwargs)
        if self.use_vllm:
            raise ValueError(
                "ERAGRPOTrainer does not support use_vllm=True (its old log-probs and importance "
                "ratios were not checked with ERA): set use_vllm=False"
            )
        if self.aux_loss_enabled:
            raise ValueError(
                "ERAGRPOTrainer does not support MoE auxiliary losses: set "
                "model_init_kwargs={'output_router_logits': False} or use a dense model"
            )
        self.era_path = era_path
        if era_path == "fused":
            reason = fused_head_refusal(self.model, self)
            if reason is not None:
                _log.warning("ERAGRPOTrainer: the fused ERA path cannot serve this model: %s; using the "
                             "full-logits path (B x T x V fp32 logits per micro-batch)", reason)
                self.era_path = "logits"

    # ---------------------------------------------------------------- the two overridden seams
    def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> Tensor:
        # A copy: TRL reuses its buffered batches across iterations, so never write into them.
        inputs = dict(inputs)
        self._era_batch = inputs
        try:
            return super()._compute_loss(model, inputs)
        finally:
            self._era_batch = None

    def _get_per_token_logps_and_entropies(
        self,
        model: Any,
        input_ids: Tensor,
        attention_mask: Tensor,
        logits_to_keep: int,
        batch_size: int | None = None,
        compute_entropy: bool = False,
        compute_aux_loss: bool = False,
        **multimodal: Any,
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        batch = self._era_batch
        if batch is None:  # old/reference log-probs from TRL's generation step: TRL's own path
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy,
                compute_aux_loss, **multimodal,
            )
        if any(value is not None for value in multimodal.values()):
            raise ValueError("ERAGRPOTrainer supports text-only models: this batch has multimodal inputs")
        mask = batch["completion_mask"]
        if "tool_mask" in batch:
            mask = mask * batch["tool_mask"]
        logps, entropies, advantages = self._era_log_probs(
            model, input_ids, attention_mask, logits_to_keep, mask, batch["advantages"], log=True
        )
        batch["advantages"] = advantages  # read next by TRL's _compute_loss (docs/era.md, section 3: A' = A/s)
        return logps, entropies, None

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        output = super()._generate_and_score_completions(inputs)
        if "old_per_token_logps" in output:
            # TRL computed pi_old before the advantages existed, hence without ERA; the authors'
            # actor recomputes it with ERA after the advantages, so that the ratio starts at 1.
            input_ids = torch.cat([output["prompt_ids"], output["completion_ids"]], dim=1)
            attention_mask = torch.cat([output["prompt_mask"], output["completion_mask"]], dim=1)
            mask = output["completion_mask"]
            if "tool_mask" in output:
                mask = mask * output["tool_mask"]
            chunk = self.args.per_device_train_batch_size
            old = []
            with torch.no_grad():
                for start in range(0, input_ids.shape[0], chunk):
                    rows = slice(start, start + chunk)
                    logps, _, _ = self._era_log_probs(
                        self.model, input_ids[rows], attention_mask[rows], output["completion_ids"].shape[1],
                        mask[rows], output["advantages"][rows], log=False,
                    )
                    old.append(logps)
            output["old_per_token_logps"] = torch.cat(old, dim=0)
        return output

    # ---------------------------------------------------------------- ERA itself
    def _era_log_probs(
        self,
        model: Any,
        input_ids: Tensor,
        attention_mask: Tensor,
        logits_to_keep: int,
        mask: Tensor,
        advantages: Tensor,
        log: bool,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``(log π'(a), H_t on the unmodified logits, A/s)`` for the completion tokens."""
        token_advantages = advantages if advantages.dim() == 2 else advantages[:, None].expand(-1, logits_to_keep)
        compute = self._era_fused if self.era_path == "fused" else self._era_full_logits
        logps, entropies, resp_entropy, era_advantages = compute(
            model, input_ids, attention_mask, logits_to_keep, mask, token_advantages
        )
        if log:
            self._log_era(token_advantages, resp_entropy, mask)
        return logps, entropies, era_advantages

    def _era_settings(self) -> dict[str, Any]:
        return dict(k=self.era_k, omega_low=self.omega_low, omega_high=self.omega_high,
                    authors_code=self.authors_code)

    def _era_full_logits(
        self, model: Any, input_ids: Tensor, attention_mask: Tensor, logits_to_keep: int, mask: Tensor,
        token_advantages: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The reference path: ERA on the full completion logits ``(B, T, V)`` in fp32."""
        with self.accelerator.autocast():
            outputs = model(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=logits_to_keep + 1)
        # position t predicts token t+1: drop the last position's logits
        logits = outputs.logits[:, :-1, :].float() / self.temperature
        ids = input_ids[:, -logits_to_keep:]
        entropies = token_entropy(logits)  # on the unmodified logits: TRL's entropy metric stays true
        resp_entropy = response_entropy(logits, mask, self.top_fraction)
        era_logits, era_advantages = token_era(
            logits, token_advantages, resp_entropy, scale_advantages=self.scale_advantages, **self._era_settings()
        )
        if self.authors_code:
            logps = topk_log_probs(era_logits, ids)
        else:
            logps = torch.log_softmax(era_logits, dim=-1).gather(-1, ids[..., None]).squeeze(-1)
        return logps, entropies, resp_entropy, era_advantages

    def _era_fused(
        self, model: Any, input_ids: Tensor, attention_mask: Tensor, logits_to_keep: int, mask: Tensor,
        token_advantages: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The same values through TRL's chunked LM-head kernel, never holding the logits.

        The factor s of a response needs the entropies of all its tokens first, so the rows whose
        tokens ERA could scale get a gradient-free entropy pass; then one pass over every token
        on ``s·h`` (``s·W h = W(s·h)``, bias-free head) gives the log-probs, with gradients, and
        the entropies of the rows left unscaled (their ``s·h`` is ``h``, bit for bit).
        """
        unwrapped = self.accelerator.unwrap_model(model)
        head = unwrapped.get_output_embeddings()
        cast = bool(getattr(self.args, "cast_lm_head_to_fp32", False))
        # the entropy bonus differentiates the entropies; otherwise they are metrics and masks only
        entropy_grad = torch.is_grad_enabled() and bool(getattr(self, "_entropy_bonus_enabled", False))
        settings = self._era_settings()
        with self.accelerator.autocast():
            hidden = completion_hidden_states(model, unwrapped.base_model, input_ids, attention_mask, logits_to_keep)
            ids = input_ids[:, -logits_to_keep:]
            valid = attention_mask[:, -logits_to_keep:].bool()  # the tokens TRL's fused head scores
            zeros = hidden.new_zeros(valid.shape, dtype=torch.float32)

            def score(rows: Tensor, factor: Tensor | None = None) -> tuple[Tensor, Tensor]:
                states = hidden[rows] if factor is None else apply_token_factor(hidden[rows], factor[rows])
                logps, entropies = head_log_probs(states, head, ids[rows], self.temperature, cast)
                return zeros.masked_scatter(rows, logps), zeros.masked_scatter(rows, entropies)

            if self.authors_code:
                with torch.set_grad_enabled(entropy_grad):
                    entropies = score(valid)[1]
                resp_entropy = response_entropy_from_token_entropies(entropies, mask, self.top_fraction)
                logit_factor, adv_factor = token_era_factors(token_advantages, resp_entropy, **settings)
                states = hidden[valid]
                indices = topk_indices(states, head.weight, AUTHORS_TOPK, cast)
                values = selected_logits(states, head.weight, indices) / self.temperature
                values = apply_token_factor(values, logit_factor[valid])
                logps = zeros.masked_scatter(valid, renormalised_log_probs(values, indices, ids[valid]))
            else:
                below_any_band = torch.full_like(zeros[:, 0], -math.inf)
                could_scale = ((token_era_factors(token_advantages, below_any_band, **settings)[0] != 1.0)
                               & valid).any(-1)
                first = zeros
                if bool(could_scale.any()):
                    with torch.set_grad_enabled(entropy_grad):
                        first = score(valid & could_scale[:, None])[1]
                logit_factor = token_era_factors(
                    token_advantages, response_entropy_from_token_entropies(first, mask, self.top_fraction),
                    **settings,
                )[0]
                logps, second = score(valid, logit_factor)
                entropies = torch.where(could_scale[:, None], first, second)
                resp_entropy = response_entropy_from_token_entropies(entropies, mask, self.top_fraction)
                adv_factor = token_era_factors(token_advantages, resp_entropy, **settings)[1]
        era_advantages = (apply_token_factor(token_advantages, adv_factor, divide=True)
                          if self.scale_advantages else token_advantages)
        return logps, entropies, resp_entropy, era_advantages

    @torch.no_grad()
    def _log_era(self, advantages: Tensor, resp_entropy: Tensor, mask: Tensor) -> None:
        factor = token_era_factors(advantages, resp_entropy, **self._era_settings())[0]
        valid = mask.bool()
        count = valid.sum().clamp(min=1)
        mode = "train" if self.model.training else "eval"
        metrics = self._metrics[mode]
        metrics["era/frac_scaled_up"].append(float(((factor > 1) & valid).sum() / count))
        metrics["era/frac_scaled_down"].append(float(((factor < 1) & valid).sum() / count))
        metrics["era/response_entropy"].append(float(resp_entropy.mean()))
