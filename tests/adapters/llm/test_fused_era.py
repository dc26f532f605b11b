"""The fused ERA path (adapters/llm/fused.py) against the full-logits one and TRL's own GRPO: the
same loss, gradients, token and response entropies and scaled advantages, on a padded random batch,
in the paper's mode and the authors'-code top-20 mode. A tiny config-built Llama with a 96-token
vocabulary (top-20 is a real selection) and, where stated, tiles of 16 vocabulary columns, so that
the chunked code takes more than one tile."""

from __future__ import annotations

import copy
import logging
import os

import pytest

for _name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
    os.environ[_name] = "1"  # before TRL is imported: no network, no telemetry

pytest.importorskip("trl", reason="TRL is not installed: pip install -e '.[llm]'")

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from torch import nn  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from adapters.errors import ConfigError  # noqa: E402
from adapters.llm import fused  # noqa: E402
from adapters.llm.toy import build_tokenizer  # noqa: E402
from adapters.llm.trainer import ERAGRPOTrainer, renormalised_log_probs, topk_log_probs  # noqa: E402

VOCAB, HIDDEN, TEMPERATURE = 96, 24, 0.9
PROMPT, COMPLETION = 4, 6
# written before the first run: fp32 end to end, so only summation order differs between paths
LOSS_TOL, GRAD_TOL, ENTROPY_TOL = 1e-6, 2e-6, 1e-5


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def small_tiles(monkeypatch):
    """Vocabulary tiles of 16 columns, token chunks of 5 rows, gathers of a few rows: every
    chunked loop runs more than once (TRL's kernel takes the tile width as an argument)."""
    monkeypatch.setattr(fused, "VOCAB_CHUNK_SIZE", 16)
    monkeypatch.setattr(fused, "TOKEN_CHUNK_SIZE", 5)
    monkeypatch.setattr(fused, "_GATHER_FLOATS", 3 * 20 * HIDDEN)


def build_model(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=48, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=32, tie_word_embeddings=False,
                         pad_token_id=0, bos_token_id=2, eos_token_id=1)
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # sharper logits than the init's, so top-20 and the entropies vary by row
        model.lm_head.weight.mul_(25.0)
    return model


def make_trainer(tmp_path, model, cls=ERAGRPOTrainer, entropy_coef: float = 0.0, checkpointing: bool = False, **era):
    args = GRPOConfig(
        output_dir=str(tmp_path), use_cpu=True, bf16=False, gradient_checkpointing=checkpointing,
        per_device_train_batch_size=4, num_generations=2, max_completion_length=COMPLETION, learning_rate=1e-3,
        max_steps=1, report_to="none", save_strategy="no", disable_tqdm=True, temperature=TEMPERATURE,
        loss_type="dapo", entropy_coef=entropy_coef, seed=0,
    )
    data = Dataset.from_dict({"prompt": ["1+2="] * 4, "answer": ["3"] * 4})
    trainer = cls(model=model, reward_funcs=lambda completions, **_: [0.0] * len(completions), args=args,
                  train_dataset=data, processing_class=build_tokenizer(), **era)
    trainer.current_gradient_accumulation_steps = 1
    if checkpointing:  # what Trainer.train() does first
        trainer.model.activation_checkpointing_enable(
            activation_checkpointing_kwargs=trainer.args.activation_checkpointing_kwargs or None)
        assert trainer.model.is_activation_checkpointing
    trainer.model.train()
    return trainer


def random_batch(seed: int, advantages: list[float]) -> dict:
    """Left-padded prompts, right-padded completions of 6, 4, 2 and 5 tokens, old log-probs off
    the current ones (so the clipped ratio matters)."""
    generator = torch.Generator().manual_seed(seed)
    prompt_ids = torch.randint(3, VOCAB, (4, PROMPT), generator=generator)
    prompt_mask = torch.ones_like(prompt_ids)
    prompt_mask[1, :2] = 0
    prompt_mask[3, :1] = 0
    prompt_ids[prompt_mask == 0] = 0
    completion_ids = torch.randint(3, VOCAB, (4, COMPLETION), generator=generator)
    lengths = torch.tensor([6, 4, 2, 5])
    completion_mask = (torch.arange(COMPLETION)[None, :] < lengths[:, None]).long()
    completion_ids[completion_mask == 0] = 0
    return {
        "prompt_ids": prompt_ids, "prompt_mask": prompt_mask,
        "completion_ids": completion_ids, "completion_mask": completion_mask,
        "advantages": torch.tensor(advantages),
        "old_per_token_logps": -4.0 + 0.5 * torch.randn(4, COMPLETION, generator=generator),
        "num_items_in_batch": completion_mask.sum(),
    }


def pieces(trainer, batch, fused_path: bool):
    """``(log-probs, token entropies, response entropies, A/s)`` of one path, for one batch."""
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1)
    attention = torch.cat([batch["prompt_mask"], batch["completion_mask"]], 1)
    advantages = batch["advantages"][:, None].expand(-1, COMPLETION)
    compute = trainer._era_fused if fused_path else trainer._era_full_logits
    with torch.no_grad():
        return compute(trainer.model, ids, attention, COMPLETION, batch["completion_mask"], advantages)


def assign_band(trainers, batch, by_rank: list[float]) -> None:
    """The band and the advantages by rank of response entropy: the two lowest rows below the band,
    the third inside, the highest above; ``by_rank[i]`` is the advantage of the i-th lowest."""
    response = pieces(trainers[0], batch, fused_path=False)[2]
    order = response.argsort().tolist()
    ranked = response[order].tolist()
    for trainer in trainers:
        trainer.omega_low = (ranked[1] + ranked[2]) / 2
        trainer.omega_high = (ranked[2] + ranked[3]) / 2
    advantages = torch.zeros(4)
    advantages[order] = torch.tensor(by_rank)
    batch["advantages"] = advantages


def loss_and_grads(trainer, batch):
    trainer.model.zero_grad()
    loss = trainer.compute_loss(trainer.model, dict(batch))
    loss.backward()
    return float(loss.detach()), {name: p.grad.clone() for name, p in trainer.model.named_parameters()}


def metric(trainer, name):
    return trainer._metrics["train"][name][-1]


@pytest.mark.parametrize("mode", ["paper", "authors", "paper+entropy-bonus"])
def test_fused_path_equals_the_full_logits_path(tmp_path, small_tiles, mode):
    authors = mode == "authors"
    batch = random_batch(1, [0.0] * 4)
    era = dict(era_k=2.0, authors_code=authors, entropy_coef=0.05 if "bonus" in mode else 0.0)
    model = build_model(1)
    full = make_trainer(tmp_path / "full", copy.deepcopy(model), era_path="logits", **era)
    fast = make_trainer(tmp_path / "fused", copy.deepcopy(model), era_path="fused", **era)
    assert (full.era_path, fast.era_path) == ("logits", "fused")
    # by rank of response entropy. Paper: k, unscaled (A < 0), unscaled (in the band), 1/k. Authors:
    # k, advantage-only k (0 < A < 1: int(A) = 0 leaves the logits), unscaled (in the band), 1/k
    assign_band((full, fast), batch, [1.6, 0.7, 1.2, 2.3] if authors else [1.1, -0.6, 0.4, 0.9])

    on = batch["completion_mask"].bool()
    want, got = pieces(full, batch, False), pieces(fast, batch, True)
    assert torch.allclose(got[0][on], want[0][on], atol=1e-5, rtol=0)  # log-probs
    assert torch.allclose(got[1][on], want[1][on], atol=ENTROPY_TOL, rtol=0)  # token entropies
    assert torch.allclose(got[2], want[2], atol=ENTROPY_TOL, rtol=0)  # response entropies
    assert torch.equal(got[3], want[3])  # A/s: the same factors
    scaled = (want[3] != batch["advantages"][:, None]).any(-1)
    assert int(scaled.sum()) == (3 if authors else 2)  # the band splits the batch as planned
    if authors:  # top-20 of 96: some targets fall outside it and get -1e4, on both paths
        assert bool((want[0][on] == -1.0e4).any())

    full_loss, full_grads = loss_and_grads(full, batch)
    fast_loss, fast_grads = loss_and_grads(fast, batch)
    assert fast_loss == pytest.approx(full_loss, rel=LOSS_TOL, abs=LOSS_TOL)
    scale = max(float(g.abs().max()) for g in full_grads.values())
    worst = max(float((fast_grads[n] - g).abs().max()) for n, g in full_grads.items())
    assert worst <= GRAD_TOL * max(1.0, scale), (worst, scale)
    for name in ("entropy", "era/response_entropy", "era/frac_scaled_up", "era/frac_scaled_down"):
        assert metric(fast, name) == pytest.approx(metric(full, name), abs=ENTROPY_TOL), name


@pytest.mark.parametrize("checkpointing", [False, True], ids=["plain", "gradient-checkpointing"])
def test_fused_path_at_k_one_equals_trl_grpo(tmp_path, checkpointing):
    """Also under gradient checkpointing (the GPU suite's setting), where the backbone's layers run
    again in the backward: the hook that keeps the hidden states must see one forward."""
    model = build_model(2)
    era = make_trainer(tmp_path / "era", copy.deepcopy(model), era_k=1.0, omega_low=10.0, omega_high=20.0,
                       checkpointing=checkpointing)
    trl = make_trainer(tmp_path / "trl", copy.deepcopy(model), cls=GRPOTrainer, checkpointing=checkpointing)
    batch = random_batch(2, [1.1, -0.4, 0.6, -1.3])
    era_loss, era_grads = loss_and_grads(era, batch)
    trl_loss, trl_grads = loss_and_grads(trl, batch)
    assert era_loss == pytest.approx(trl_loss, rel=LOSS_TOL, abs=LOSS_TOL)
    assert max(float((era_grads[n] - g).abs().max()) for n, g in trl_grads.items()) < GRAD_TOL
    assert metric(era, "entropy") == pytest.approx(metric(trl, "entropy"), abs=ENTROPY_TOL)


def test_topk_and_selected_logits_match_the_full_logits(small_tiles):
    torch.manual_seed(3)
    hidden = torch.randn(13, HIDDEN, requires_grad=True)
    weight = (3.0 * torch.randn(VOCAB, HIDDEN)).requires_grad_()
    logits = hidden @ weight.t()
    indices = fused.topk_indices(hidden, weight, 20)
    assert torch.equal(indices.sort(-1).values, logits.topk(20, -1).indices.sort(-1).values)
    targets = torch.randint(0, VOCAB, (13,))
    mine = renormalised_log_probs(fused.selected_logits(hidden, weight, indices), indices, targets)[None]
    reference = topk_log_probs(logits[None], targets[None])
    assert torch.allclose(mine, reference, atol=1e-5)
    inside = mine > -1.0e4
    assert 0 < int(inside.sum()) < 13  # targets inside and outside the top 20
    grads = torch.autograd.grad(mine[inside].sum(), (hidden, weight))
    expected = torch.autograd.grad(reference[inside].sum(), (hidden, weight))
    for got, want in zip(grads, expected):
        assert torch.allclose(got, want, atol=1e-5)


def test_heads_the_fused_path_cannot_serve_fall_back_with_a_reason(tmp_path, caplog):
    model = build_model(4)
    model.lm_head = nn.Linear(HIDDEN, VOCAB, bias=True)
    with caplog.at_level(logging.WARNING, logger="adapters.llm.trainer"):
        trainer = make_trainer(tmp_path, model, era_k=2.0)
    assert trainer.era_path == "logits"
    assert "LM head has a bias" in caplog.text
    capped = build_model(4)
    capped.config.final_logit_softcapping = 30.0
    assert "soft-capped" in fused.fused_head_refusal(capped, trainer)
    assert fused.fused_head_refusal(build_model(4), trainer) is None


def test_bad_era_path_is_refused(tmp_path):
    from adapters.llm.settings import resolve_settings
    from adapters.trial import TrialSpec

    with pytest.raises(ValueError, match="era_path must be one of fused, logits"):
        make_trainer(tmp_path, build_model(5), era_path="chunked")
    spec = TrialSpec(algo="grpo-era", task="llm:arith", seed=0, budget=1, settings={"era_path": "chunked"})
    with pytest.raises(ConfigError, match="era_path='chunked' is invalid"):
        resolve_settings(spec)
    assert resolve_settings(TrialSpec(algo="grpo-era", task="llm:arith", seed=0, budget=1)).era_path == "fused"
