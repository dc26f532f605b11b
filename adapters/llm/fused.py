"""Token-level ERA's LM-head computations without the ``B x T x V`` logits (docs/llm.md, "Memory").

ERA multiplies a token's logits by a factor ``s`` (docs/era.md, section 3). For an LM head without a
bias, ``s·(W h) = W (s·h)``: the log-probs of ``softmax(s·z)`` are TRL's own fused, chunked
log-prob computation (``trl.kernels.ChunkedLogProbFunction``, the one plain GRPO uses) applied to
``s·h``. What is here:

- :func:`fused_head_refusal`: why a model's head cannot take that path (bias, soft-capping, a
  logit scale, PEFT, sharded weights), so the trainer falls back to the full logits;
- :func:`completion_hidden_states`: the backbone's last hidden states, from the model's own
  forward with the LM head applied to one position only;
- :func:`head_log_probs`: TRL's kernel on given hidden states, as TRL's fused forward calls it;
- :func:`topk_indices` and :func:`selected_logits`: the authors'-code mode's top-20 logits,
  found in tiles without gradients and then recomputed with gradients for those 20 tokens only.

Nothing here holds more than one ``TOKEN_CHUNK_SIZE x 32768`` tile of logits at a time, the tile
TRL's kernel itself uses.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch
from torch import Tensor, nn
from trl.kernels import ChunkedLogProbFunction
from trl.kernels.chunked_logprob import TOKEN_CHUNK_SIZE
from trl.trainer import utils as trl_utils

__all__ = ["fused_head_refusal", "completion_hidden_states", "head_log_probs", "topk_indices", "selected_logits"]

#: vocabulary columns per tile, as TRL's fused LM head uses
VOCAB_CHUNK_SIZE: int = getattr(trl_utils, "_CHUNKED_LOGPROB_CHUNK_SIZE", 32768)
#: config fields by which models scale their logits after the head (TRL's fused forward reads the same ones)
_LOGIT_SCALES = ("logit_scale", "output_multiplier", "lm_head_multiplier", "logits_scaling")
#: floats of gathered head rows per chunk in :func:`selected_logits` (64 MB in fp32)
_GATHER_FLOATS = 1 << 24


def fused_head_refusal(model: nn.Module, trainer: Any) -> str | None:
    """Why token-level ERA cannot use the fused LM head for ``model`` (``None``: it can).

    ``s·logits = W(s·h)`` needs a linear, bias-free head whose output is the logits; the kernel
    runs outside the model's forward, which sharded (FSDP, DeepSpeed) and PEFT-wrapped heads do not
    allow. Each refusal names the reason, for the log line of the fallback.
    """
    from accelerate.utils import is_peft_model

    if is_peft_model(model):
        return "the model is PEFT-wrapped (its head was not checked with the fused path)"
    if getattr(trainer, "is_fsdp_enabled", False) or getattr(trainer, "is_deepspeed_enabled", False):
        return "FSDP / DeepSpeed shard the LM head, which the fused path reads outside the model's forward"
    head = model.get_output_embeddings()
    if not isinstance(head, nn.Linear):
        return f"its LM head is a {type(head).__name__}, not a torch.nn.Linear"
    if head.bias is not None:
        return "its LM head has a bias, so s·logits is not W(s·h)"
    config = model.config.get_text_config()
    if getattr(config, "final_logit_softcapping", None) is not None:
        return "its logits are soft-capped (final_logit_softcapping), which does not commute with s"
    for name in _LOGIT_SCALES:
        value = getattr(config, name, None)
        if value is not None and float(value) != 1.0:
            return f"its config scales the logits ({name}={value})"
    if not isinstance(getattr(model, "base_model", None), nn.Module) or model.base_model is model:
        return "its backbone is not reachable as model.base_model"
    return None


def completion_hidden_states(model: nn.Module, backbone: nn.Module, input_ids: Tensor, attention_mask: Tensor,
                             logits_to_keep: int) -> Tensor:
    """``(B, logits_to_keep, H)``: the last hidden states at the positions that predict the completion.

    The call goes through ``model`` (so wrappers such as DDP and autocast see a normal forward);
    ``logits_to_keep=1`` keeps the head to one position, and a hook on ``backbone`` keeps its output.
    """
    captured: list[Tensor] = []

    def keep(module: nn.Module, args: Any, output: Any) -> None:
        captured.append(output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0])

    handle = backbone.register_forward_hook(keep)
    try:
        model(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=1, use_cache=False)
    finally:
        handle.remove()
    if len(captured) != 1:
        raise RuntimeError(f"the backbone ran {len(captured)} times in one forward: expected once")
    return captured[0][:, -logits_to_keep - 1:-1]


def head_log_probs(hidden: Tensor, head: nn.Linear, targets: Tensor, temperature: float,
                   cast_to_fp32: bool = False, entropy: bool = True) -> tuple[Tensor, Tensor | None]:
    """Log-probs of ``targets`` ``(N,)`` and (optionally) entropies under ``softmax(W h / T)``, for
    hidden states ``(N, H)``, through TRL's chunked kernel with TRL's own tile sizes."""
    weight = head.weight
    hidden = hidden.to(weight.device)
    context = nullcontext()
    if cast_to_fp32:  # as TRL's fused forward does for GRPOConfig.cast_lm_head_to_fp32
        hidden = hidden.float()
        context = torch.autocast(hidden.device.type, enabled=False)
    outputs = ("log_probs", "entropy") if entropy else ("log_probs",)
    with context, trl_utils.maybe_gather_lm_head_ctx(weight):
        log_probs, entropies, *_ = ChunkedLogProbFunction.apply(
            hidden, weight, None, targets.to(weight.device), temperature, VOCAB_CHUNK_SIZE, None, 1.0, outputs
        )
    return log_probs, entropies


def _compute_dtype(hidden: Tensor) -> torch.dtype:
    device = hidden.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden.dtype


@torch.no_grad()
def topk_indices(hidden: Tensor, weight: Tensor, k: int, cast_to_fp32: bool = False) -> Tensor:
    """``(N, k)`` indices of the ``k`` largest logits ``W h`` of each row of ``hidden`` ``(N, H)``,
    merged tile by tile (in the autocast dtype, as the model's head would, or in fp32)."""
    if cast_to_fp32:
        with torch.autocast(hidden.device.type, enabled=False):
            return topk_indices(hidden.float(), weight, k)
    dtype = _compute_dtype(hidden)
    vocab = weight.shape[0]
    k = min(k, vocab)
    chunks = []
    for start in range(0, hidden.shape[0], TOKEN_CHUNK_SIZE):
        rows = hidden[start:start + TOKEN_CHUNK_SIZE].to(weight.device, dtype)
        best_values = best_indices = None
        for column in range(0, vocab, VOCAB_CHUNK_SIZE):
            tile = rows @ weight[column:column + VOCAB_CHUNK_SIZE].to(dtype).t()
            values, indices = tile.topk(min(k, tile.shape[1]), dim=-1)
            indices += column
            del tile
            if best_values is not None:
                values, indices = torch.cat([best_values, values], -1), torch.cat([best_indices, indices], -1)
                values, order = values.topk(k, dim=-1)
                indices = indices.gather(-1, order)
            best_values, best_indices = values, indices
        chunks.append(best_indices)
    if not chunks:
        return torch.zeros(0, k, dtype=torch.long, device=weight.device)
    return torch.cat(chunks)


class _SelectedLogits(torch.autograd.Function):
    """``out[n, j] = h_n · W[idx[n, j]]`` in fp32, gathering a bounded number of head rows at a
    time in both passes (autograd of a plain gather would keep all ``N x k x H`` of them)."""

    @staticmethod
    def forward(ctx: Any, hidden: Tensor, weight: Tensor, indices: Tensor) -> Tensor:
        ctx.save_for_backward(hidden, weight, indices)
        out = torch.empty(indices.shape, dtype=torch.float32, device=weight.device)
        step = _rows_per_chunk(indices.shape[1], hidden.shape[1])
        with torch.autocast(weight.device.type, enabled=False):
            for start in range(0, hidden.shape[0], step):
                rows = slice(start, start + step)
                out[rows] = torch.einsum("nh,nkh->nk", hidden[rows].float(), weight[indices[rows]].float())
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        hidden, weight, indices = ctx.saved_tensors
        need_hidden, need_weight = ctx.needs_input_grad[:2]
        grad_hidden = torch.zeros(hidden.shape, dtype=torch.float32, device=hidden.device) if need_hidden else None
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_weight else None
        step = _rows_per_chunk(indices.shape[1], hidden.shape[1])
        with torch.autocast(weight.device.type, enabled=False):
            for start in range(0, hidden.shape[0], step):
                rows = slice(start, start + step)
                g = grad[rows].float()
                if grad_hidden is not None:
                    grad_hidden[rows] = torch.einsum("nk,nkh->nh", g, weight[indices[rows]].float())
                if grad_weight is not None:
                    update = g[..., None] * hidden[rows].float()[:, None, :]
                    grad_weight.index_add_(0, indices[rows].reshape(-1), update.reshape(-1, hidden.shape[1]))
        return (None if grad_hidden is None else grad_hidden.to(hidden.dtype),
                None if grad_weight is None else grad_weight.to(weight.dtype), None)


def _rows_per_chunk(k: int, width: int) -> int:
    return max(1, _GATHER_FLOATS // max(1, k * width))


def selected_logits(hidden: Tensor, weight: Tensor, indices: Tensor) -> Tensor:
    """``(N, k)`` fp32 logits ``h_n · W[indices[n, j]]``, differentiable in ``hidden`` and ``weight``."""
    return _SelectedLogits.apply(hidden, weight, indices)
