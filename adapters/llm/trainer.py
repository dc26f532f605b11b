"""Token-level ERA inside Hugging Face TRL's ``GRPOTrainer`` (docs/era.md, section 3; TRL 1.16).

The seam (docs/llm.md): TRL's ``_compute_loss`` asks
``_get_per_token_logps_and_entropies`` for the per-token log-probs and entropies, and reads
``inputs["advantages"]`` only afterwards. :class:`ERAGRPOTrainer` overrides just those two methods:

1. ``_compute_loss`` keeps a handle on (a copy of) the batch, then calls TRL's own loss;
2. ``_get_per_token_logps_and_entropies`` builds the logits ``z`` (divided by the sampling
   temperature), measures the response entropy on the *unmodified* ``z`` (mean of the top 20%
   token entropies), applies :func:`adapters.era.token_era` (``s·z`` and ``A/s``), returns the
   log-probs of ``softmax(s·z)`` and the unmodified token entropies, and writes ``A/s`` into the
   batch, where TRL's loss reads it next.

So TRL's clipped objective, loss aggregation, KL term, entropy metric and logging all stay TRL's;
with ``k = 1`` the loss and its gradients equal TRL's own (tests/adapters/llm/test_era_trainer.py).

Old log-probs (``num_iterations > 1`` or a generation batch spanning optimizer steps) are
recomputed after the advantages are known, with the same ERA, as the authors' verl actor does, so
the importance ratio starts at 1. Reference log-probs (``beta > 0``) are the reference model's
plain ones and the KL term sees the ERA log-probs, as in the authors' actor. vLLM generation,
MoE auxiliary losses and multimodal inputs are refused: they were not checked.

Memory: unlike TRL's fused LM-head kernel, this path materialises the completion logits in fp32
(``B x T x V`` floats, a few copies for log-softmax and entropy) per micro-batch: nothing for the
toy's 17 tokens, about 2 GB per completion of 3k tokens for a 152k vocabulary, so keep the
micro-batch small on 7B models (suites/llm-qwen-math.yaml uses 8 completions). A fused variant
(``s·logits = W(s·h)`` for heads without bias or soft-capping; docs/llm.md) would remove
that cost; it is not implemented.

This module imports TRL: set the ``HF_*_OFFLINE`` variables before importing it where no network
is wanted (``adapters.llm`` does).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from trl import GRPOTrainer

from adapters.era import response_entropy, token_entropy, token_era

__all__ = ["ERAGRPOTrainer", "topk_log_probs", "AUTHORS_TOPK"]

#: the authors' ``topk=True`` scripts take log-probs from the renormalised top-20 logits
AUTHORS_TOPK = 20
_OUTSIDE_TOPK_LOGP = -1.0e4


def topk_log_probs(logits: Tensor, ids: Tensor, k: int = AUTHORS_TOPK) -> Tensor:
    """Log-probs ``(B, T)`` of ``ids`` under the renormalised top-``k`` of ``logits`` ``(B, T, V)``;
    a token outside the top ``k`` gets ``-1e4`` (the authors' ``logprobs_from_logits_topk``)."""
    values, indices = logits.topk(min(k, logits.shape[-1]), dim=-1)
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
        **kwargs: Any,
    ) -> None:
        if not era_k > 0:
            raise ValueError(f"era_k must be > 0, got {era_k}")
        if not omega_low <= omega_high:
            raise ValueError(f"omega_low must be <= omega_high, got {omega_low} > {omega_high}")
        if not 0.0 < top_fraction <= 1.0:
            raise ValueError(f"top_fraction must be in (0, 1], got {top_fraction}")
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
        with self.accelerator.autocast():
            outputs = model(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=logits_to_keep + 1)
        # position t predicts token t+1: drop the last position's logits
        logits = outputs.logits[:, :-1, :].float() / self.temperature
        ids = input_ids[:, -logits_to_keep:]
        entropies = token_entropy(logits)  # on the unmodified logits: TRL's entropy metric stays true
        resp_entropy = response_entropy(logits, mask, self.top_fraction)
        token_advantages = advantages if advantages.dim() == 2 else advantages[:, None].expand(-1, logits_to_keep)
        era_kwargs = dict(
            k=self.era_k, omega_low=self.omega_low, omega_high=self.omega_high,
            scale_advantages=self.scale_advantages, authors_code=self.authors_code,
        )
        era_logits, era_advantages = token_era(logits, token_advantages, resp_entropy, **era_kwargs)
        if self.authors_code:
            logps = topk_log_probs(era_logits, ids)
        else:
            logps = torch.log_softmax(era_logits, dim=-1).gather(-1, ids[..., None]).squeeze(-1)
        if log:
            self._log_era(token_advantages, resp_entropy, mask, era_kwargs)
        return logps, entropies, era_advantages

    @torch.no_grad()
    def _log_era(self, advantages: Tensor, resp_entropy: Tensor, mask: Tensor, era_kwargs: dict) -> None:
        # token_era on unit logits returns the per-token logit factor s itself (k, 1 or 1/k)
        unit = torch.ones(*advantages.shape, 1, dtype=torch.float32, device=advantages.device)
        factor = token_era(unit, advantages, resp_entropy, **era_kwargs)[0][..., 0]
        valid = mask.bool()
        count = valid.sum().clamp(min=1)
        mode = "train" if self.model.training else "eval"
        metrics = self._metrics[mode]
        metrics["era/frac_scaled_up"].append(float(((factor > 1) & valid).sum() / count))
        metrics["era/frac_scaled_down"].append(float(((factor < 1) & valid).sum() / count))
        metrics["era/response_entropy"].append(float(resp_entropy.mean()))
