"""Evaluation of a causal LM policy on prompts with verifiable answers.

Per evaluation: ``n`` sampled completions per prompt at the training temperature (accuracy =
mean reward, pass@k by the unbiased estimator of Chen et al. 2021, eq. 1), one greedy completion
per prompt, and the *response entropy* of every sampled completion measured as ERA measures it
(docs/era.md, section 3: the mean of the top 20% token entropies, on the unmodified logits divided by the
temperature), averaged over the batch.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from adapters.era import response_entropy, token_entropy

__all__ = ["pass_at_k", "pass_ks", "EvalBatch", "evaluate_policy", "sampled_response_entropies"]

RewardFn = Callable[..., list[float]]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples of which ``c`` are correct: ``1 - C(n-c, k) / C(n, k)``."""
    if not 0 < k <= n or not 0 <= c <= n:
        raise ValueError(f"pass_at_k needs 0 < k <= n and 0 <= c <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def pass_ks(n: int) -> list[int]:
    """The k reported for ``n`` samples: 1, 2, 4, ... up to ``n`` (and ``n`` itself)."""
    ks = [2**i for i in range(int(math.log2(n)) + 1)] if n >= 1 else []
    return ks + ([n] if ks and ks[-1] != n else [])


@dataclass(frozen=True)
class EvalBatch:
    """What to evaluate on: prompts (text or chat messages) and the reward's extra columns."""

    prompts: Sequence
    columns: dict[str, Sequence]  # e.g. {"answer": [...]}, passed to the reward per completion


def _encode(tokenizer, prompts: Sequence, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    if prompts and not isinstance(prompts[0], str):  # conversational prompts
        prompts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    encoded = tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False)
    return encoded["input_ids"].to(device), encoded["attention_mask"].to(device)


def _completion_mask(completions: torch.Tensor, eos_id: int, pad_id: int) -> torch.Tensor:
    """1 up to and including the first eos (TRL's convention), 0 after; 0 on padding."""
    is_eos = completions == eos_id
    after = torch.cumsum(is_eos.long(), dim=1) - is_eos.long()  # eos tokens strictly before t
    mask = (after == 0).long()
    return mask * (completions != pad_id).long() if pad_id != eos_id else mask


@torch.no_grad()
def _generate(model, tokenizer, prompts: Sequence, n: int, sample: bool, max_new_tokens: int,
              temperature: float, batch_size: int, top_p: float = 1.0) -> tuple[list[str], list[torch.Tensor], list[torch.Tensor]]:
    """``n`` completions per prompt (prompt-major order): texts, and per chunk the full ids and
    the completion masks, for the entropy pass."""
    device = next(model.parameters()).device
    texts, chunks = [], []
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    for start in range(0, len(prompts), batch_size):
        ids, attention = _encode(tokenizer, prompts[start:start + batch_size], device)
        options = dict(do_sample=True, temperature=temperature, top_k=0, top_p=top_p) if sample else dict(do_sample=False)
        out = model.generate(
            input_ids=ids, attention_mask=attention, max_new_tokens=max_new_tokens,
            num_return_sequences=n, pad_token_id=pad, eos_token_id=eos, **options,
        )
        completions = out[:, ids.shape[1]:]
        mask = _completion_mask(completions, eos, pad)
        texts += tokenizer.batch_decode(completions * mask + pad * (1 - mask), skip_special_tokens=True)
        prompt_attention = attention.repeat_interleave(n, dim=0)
        chunks.append((out, torch.cat([prompt_attention, mask], dim=1), mask))
    return texts, chunks


_LOGITS_BUDGET = 2**29  # fp32 logits per forward (2 GiB): a 150k vocabulary gets a row or two at a time


@torch.no_grad()
def _entropies(model, chunks, temperature: float) -> tuple[torch.Tensor, float]:
    """Response entropy per completion and the mean token entropy, on the unmodified logits."""
    per_response, token_sum, token_count = [], 0.0, 0
    vocab = int(model.config.vocab_size)
    for ids, attention, mask in chunks:
        width = mask.shape[1]
        rows = max(1, _LOGITS_BUDGET // max(1, (width + 1) * vocab))
        for start in range(0, ids.shape[0], rows):
            part = slice(start, start + rows)
            logits = model(input_ids=ids[part], attention_mask=attention[part], logits_to_keep=width + 1).logits
            logits = logits[:, :-1, :].float() / temperature
            per_response.append(response_entropy(logits, mask[part]))
            token_sum += float((token_entropy(logits) * mask[part]).sum())
            token_count += int(mask[part].sum())
    return torch.cat(per_response), token_sum / max(token_count, 1)


@contextlib.contextmanager
def _seeded_eval(model, seed: int) -> Iterator[None]:
    """Eval mode and torch's RNG seeded at ``seed`` inside the block; both restored afterwards."""
    was_training = model.training
    model.eval()
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield
    finally:
        model.train(was_training)


def sampled_response_entropies(model, tokenizer, prompts: Sequence, n_samples: int, max_new_tokens: int,
                               temperature: float = 1.0, seed: int = 0, batch_size: int = 512) -> torch.Tensor:
    """Response entropy ``(len(prompts) * n_samples,)`` of sampled completions, prompt-major: the
    per-response numbers behind ``evaluate_policy``'s ``entropy`` (seeded, global RNG untouched)."""
    with _seeded_eval(model, seed):
        _, chunks = _generate(model, tokenizer, prompts, n_samples, True, max_new_tokens, temperature,
                              max(1, batch_size // n_samples))
        return _entropies(model, chunks, temperature)[0]


def _scores(rewards: Sequence[float | None]) -> list[float]:
    """Rewards as numbers: ``None`` (TRL's "cannot judge") counts as wrong."""
    return [0.0 if r is None else float(r) for r in rewards]


def evaluate_policy(
    model,
    tokenizer,
    batch: EvalBatch,
    reward: RewardFn,
    n_samples: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    seed: int = 0,
    batch_size: int = 64,
    top_p: float = 1.0,
) -> dict[str, float]:
    """Evaluate ``model`` on ``batch``; returns ``accuracy`` and ``greedy_accuracy`` (in %),
    ``pass@k`` (in %), ``entropy`` (mean response entropy), ``token_entropy`` and
    ``response_entropy_p10`` (its 10th percentile over responses). Seeded: the same model and
    seed give the same numbers, and the global RNG is left as it was."""
    with _seeded_eval(model, seed):
        texts, chunks = _generate(model, tokenizer, batch.prompts, n_samples, True, max_new_tokens,
                                  temperature, max(1, batch_size // n_samples), top_p)
        greedy, _ = _generate(model, tokenizer, batch.prompts, 1, False, max_new_tokens, temperature, batch_size)
        resp_entropy, token_mean = _entropies(model, chunks, temperature)
    repeated = {k: [v for v in values for _ in range(n_samples)] for k, values in batch.columns.items()}
    rewards = np.asarray(_scores(reward(completions=texts, **repeated)), dtype=float).reshape(len(batch.prompts), n_samples)
    correct = (rewards > 0.5).sum(axis=1)
    greedy_rewards = np.asarray(_scores(reward(completions=greedy, **batch.columns)), dtype=float)
    metrics = {
        "accuracy": 100.0 * float(rewards.mean()),
        "greedy_accuracy": 100.0 * float(greedy_rewards.mean()),
        "entropy": float(resp_entropy.mean()),
        "response_entropy_p10": float(torch.quantile(resp_entropy, 0.1)),
        "token_entropy": token_mean,
    }
    for k in pass_ks(n_samples):
        metrics[f"pass@{k}"] = 100.0 * float(np.mean([pass_at_k(n_samples, int(c), k) for c in correct]))
    return metrics
