"""ERAGRPOTrainer inside TRL's GRPOTrainer (docs/era.md, section 3): the loss against a hand computation,
which tokens ERA touches, the gradient identity, equality with TRL at k = 1, and the old
log-probs of num_iterations > 1. Everything runs offline on a tiny config-built Llama."""

from __future__ import annotations

import copy
import math
import os

import pytest

for _name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
    os.environ[_name] = "1"  # before TRL is imported: no network, no telemetry

pytest.importorskip("trl", reason="TRL is not installed: pip install -e '.[llm]'")

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from adapters.llm.toy import TOY_TASKS, TinyModelConfig, build_tiny_model, build_tokenizer  # noqa: E402
from adapters.llm.trainer import ERAGRPOTrainer, topk_log_probs  # noqa: E402

SMALL = TinyModelConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
TEMPERATURE = 0.9


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: more threads only oversubscribe a shared CI machine
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def task():
    return TOY_TASKS["arith"]()


def make_trainer(tmp_path, task, cls=ERAGRPOTrainer, model=None, reward=None, **kwargs):
    config_keys = {"num_iterations", "loss_type", "beta"}
    config = {k: kwargs.pop(k) for k in list(kwargs) if k in config_keys}
    args = GRPOConfig(
        output_dir=str(tmp_path), use_cpu=True, bf16=False, gradient_checkpointing=False,
        per_device_train_batch_size=8, num_generations=4, max_completion_length=3, learning_rate=1e-3,
        max_steps=2, logging_steps=1, report_to="none", save_strategy="no", disable_tqdm=True,
        temperature=TEMPERATURE, seed=0, **config,
    )
    data = Dataset.from_dict({"prompt": list(task.prompts), "answer": list(task.answers)})
    trainer = cls(model=model if model is not None else build_tiny_model(0, SMALL), reward_funcs=reward or task.reward,
                  args=args, train_dataset=data, processing_class=build_tokenizer(), **kwargs)
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop otherwise
    trainer.model.train()
    return trainer


def fixed_batch(task, old_logps: bool = False) -> dict:
    """Four prompts, three completion tokens each (one response padded after its eos)."""
    tok = build_tokenizer()
    prompt_ids = torch.tensor([tok(p, add_special_tokens=False)["input_ids"] for p in task.prompts[:4]])
    eos, pad = tok.eos_token_id, tok.pad_token_id
    digits = [tok.convert_tokens_to_ids(c) for c in "0123456789"]
    completion_ids = torch.tensor([
        [digits[3], eos, pad],
        [digits[1], digits[7], eos],
        [digits[4], eos, pad],
        [digits[9], digits[2], eos],
    ])
    completion_mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 1, 0], [1, 1, 1]])
    batch = {
        "prompt_ids": prompt_ids,
        "prompt_mask": torch.ones_like(prompt_ids),
        "completion_ids": completion_ids,
        "completion_mask": completion_mask,
        "advantages": torch.zeros(4),
        "num_items_in_batch": completion_mask.sum(),
    }
    if old_logps:
        batch["old_per_token_logps"] = torch.tensor(
            [[-0.9, -0.3, 0.0], [-1.4, -2.2, -0.2], [-0.6, -0.1, 0.0], [-2.5, -1.9, -0.4]]
        )
    return batch


def completion_logits(model, batch) -> torch.Tensor:
    """Logits (B, T, V) over the completion tokens, divided by the temperature, computed here."""
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
    mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
    prompt_len = batch["prompt_ids"].shape[1]
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits
    return logits[:, prompt_len - 1:-1, :].double() / TEMPERATURE


def hand_response_entropy(logits: torch.Tensor, mask: torch.Tensor) -> list[float]:
    """Spec section 3, written out: per response, mean of the top max(1, floor(0.2 L)) entropies."""
    out = []
    for row, row_mask in zip(logits, mask):
        entropies = []
        for t in range(row.shape[0]):
            if row_mask[t]:
                p = torch.softmax(row[t], -1)
                entropies.append(float(-(p * torch.log(p)).sum()))
        top = max(1, math.floor(0.2 * len(entropies)))
        out.append(sum(sorted(entropies, reverse=True)[:top]) / top)
    return out


def assign_band(trainer, batch, entropies: list[float]) -> tuple[int, int]:
    """Advantages and a band so that exactly one positive response is below omega_low (scaled
    by k) and one above omega_high (scaled by 1/k); returns (low row, high row)."""
    order = sorted(range(4), key=lambda i: entropies[i])
    low, mid_neg, mid_pos, high = order
    advantages = torch.zeros(4)
    advantages[low], advantages[mid_neg], advantages[mid_pos], advantages[high] = 1.2, -0.7, 0.4, 0.9
    batch["advantages"] = advantages
    trainer.omega_low = (entropies[low] + entropies[mid_neg]) / 2
    trainer.omega_high = (entropies[mid_pos] + entropies[high]) / 2
    return low, high


def test_era_loss_equals_hand_computed_value(tmp_path, task):
    trainer = make_trainer(tmp_path, task, era_k=2.0)
    batch = fixed_batch(task, old_logps=True)
    logits = completion_logits(trainer.model, batch)
    mask = batch["completion_mask"]
    entropies = hand_response_entropy(logits, mask)
    low, high = assign_band(trainer, batch, entropies)

    before = batch["advantages"].clone()
    loss = trainer.compute_loss(trainer.model, batch)
    assert torch.equal(batch["advantages"], before)  # TRL's buffered batch is never written into

    total, count = 0.0, 0
    for b in range(4):
        adv = float(batch["advantages"][b])
        s = 2.0 if (b == low and adv > 0) else 0.5 if (b == high and adv > 0) else 1.0
        for t in range(3):
            if not mask[b, t]:
                continue
            logp = float(torch.log_softmax(s * logits[b, t], -1)[batch["completion_ids"][b, t]])
            ratio = math.exp(logp - float(batch["old_per_token_logps"][b, t]))
            a = adv / s
            total += -min(ratio * a, min(max(ratio, 0.8), 1.2) * a)
            count += 1
    assert float(loss) == pytest.approx(total / count, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("era_path", ["fused", "logits"])
def test_era_touches_only_positive_tokens_outside_the_band(tmp_path, task, era_path):
    trainer = make_trainer(tmp_path, task, era_k=2.0, era_path=era_path)
    assert trainer.era_path == era_path
    batch = fixed_batch(task)
    logits = completion_logits(trainer.model, batch).float()
    mask = batch["completion_mask"]
    low, high = assign_band(trainer, batch, hand_response_entropy(logits.double(), mask))
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
    attention = torch.cat([batch["prompt_mask"], mask], dim=1)
    with torch.no_grad():
        # the same forward with every advantage negative: ERA scales nothing
        plain, _, _ = trainer._era_log_probs(trainer.model, ids, attention, 3, mask, -batch["advantages"].abs(), log=False)
        logps, entropies, advantages = trainer._era_log_probs(
            trainer.model, ids, attention, 3, mask, batch["advantages"], log=True)

    on = mask.bool()  # padding: the fused path scores nothing there (0, as TRL's own head)
    for b in range(4):
        if b == low:
            expected = torch.log_softmax(2.0 * logits[b], -1).gather(-1, batch["completion_ids"][b, :, None]).squeeze(-1)
            assert torch.allclose(logps[b][on[b]], expected[on[b]], atol=1e-6)
            assert not torch.allclose(logps[b], plain[b], atol=1e-3)
            assert torch.equal(advantages[b], batch["advantages"][b].expand(3) / 2.0)
        elif b == high:
            expected = torch.log_softmax(0.5 * logits[b], -1).gather(-1, batch["completion_ids"][b, :, None]).squeeze(-1)
            assert torch.allclose(logps[b][on[b]], expected[on[b]], atol=1e-6)
            assert torch.equal(advantages[b], batch["advantages"][b].expand(3) * 2.0)
        else:  # negative advantage, or inside the band: bit for bit
            assert torch.equal(logps[b], plain[b])
            assert torch.equal(advantages[b], batch["advantages"][b].expand(3))
    # entropies come from the unmodified logits, and the logged shares count tokens
    unmodified = -(torch.softmax(logits, -1) * torch.log_softmax(logits, -1)).sum(-1)
    assert torch.allclose(entropies[on], unmodified[on], atol=1e-6)
    metrics = trainer._metrics["train"]
    assert metrics["era/frac_scaled_up"][-1] == pytest.approx(float(mask[low].sum() / mask.sum()))
    assert metrics["era/frac_scaled_down"][-1] == pytest.approx(float(mask[high].sum() / mask.sum()))


def test_gradient_identity_through_trl_loss(tmp_path, task):
    """Spec section 3: with A' = A/s, the gradient of the loss on the raw logits is
    -A (e_a - softmax(s z)) / (N T) per token; the factor s cancels. On the full-logits path, whose
    raw logits a hook can see; test_fused_era.py shows the fused path's gradients equal these."""
    trainer = make_trainer(tmp_path, task, era_k=2.0, era_path="logits")
    batch = fixed_batch(task)  # no old log-probs: ratio 1, TRL's default set-up
    logits = completion_logits(trainer.model, batch)
    mask = batch["completion_mask"]
    low, high = assign_band(trainer, batch, hand_response_entropy(logits, mask))
    captured = {}

    def keep(module, args, output):
        output.retain_grad()
        captured["raw"] = output

    handle = trainer.model.lm_head.register_forward_hook(keep)
    try:
        trainer.compute_loss(trainer.model, batch).backward()
    finally:
        handle.remove()
    grad = captured["raw"].grad[:, :-1].double()  # the last position predicts nothing here
    n = float(mask.sum())
    for b in range(4):
        adv = float(batch["advantages"][b])
        s = 2.0 if b == low else 0.5 if b == high else 1.0
        for t in range(3):
            one_hot = torch.zeros(logits.shape[-1], dtype=torch.float64)
            one_hot[batch["completion_ids"][b, t]] = 1.0
            expected = -float(mask[b, t]) * adv * (one_hot - torch.softmax(s * logits[b, t], -1)) / (n * TEMPERATURE)
            assert torch.allclose(grad[b, t], expected, atol=1e-6), (b, t)


def test_k_one_matches_trl_loss_and_gradients(tmp_path, task):
    model = build_tiny_model(3, SMALL)
    era = make_trainer(tmp_path / "era", task, model=copy.deepcopy(model), era_k=1.0, omega_low=10.0, omega_high=20.0)
    trl = make_trainer(tmp_path / "trl", task, cls=GRPOTrainer, model=copy.deepcopy(model))
    batch = fixed_batch(task, old_logps=True)
    batch["advantages"] = torch.tensor([1.1, -0.4, 0.6, -1.3])
    era_loss = era.compute_loss(era.model, dict(batch))
    trl_loss = trl.compute_loss(trl.model, dict(batch))
    era_loss.backward()
    trl_loss.backward()
    assert float(era_loss) == pytest.approx(float(trl_loss), abs=1e-6)
    worst = max(float((a.grad - b.grad).abs().max())
                for a, b in zip(era.model.parameters(), trl.model.parameters()))
    assert worst < 1e-5
    assert era._metrics["train"]["entropy"][-1] == pytest.approx(trl._metrics["train"]["entropy"][-1], abs=1e-5)


def test_old_log_probs_use_era_so_the_first_ratio_is_one(tmp_path, task):
    def alternate(completions, **_):  # an untrained model never adds right: every group gets 2 of 4 rewards
        return [float(i % 2) for i in range(len(completions))]

    trainer = make_trainer(tmp_path, task, reward=alternate, era_k=2.0, omega_low=50.0, omega_high=60.0,
                           num_iterations=2)
    rows = [{"prompt": p, "answer": a} for p, a in zip(task.prompts[:2], task.answers[:2]) for _ in range(4)]
    torch.manual_seed(0)
    inputs = trainer._generate_and_score_completions(rows)
    assert "old_per_token_logps" in inputs
    positive = inputs["advantages"] > 0
    assert positive.any()
    with_old = trainer.compute_loss(trainer.model, dict(inputs))
    without = {k: v for k, v in inputs.items() if k != "old_per_token_logps"}  # TRL then uses ratio 1
    assert float(with_old) == pytest.approx(float(trainer.compute_loss(trainer.model, without)), abs=1e-6)
    # ... and they are not TRL's plain log-probs, which differ on the scaled (positive) rows
    plain, _, _ = GRPOTrainer._get_per_token_logps_and_entropies(
        trainer, trainer.model, torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1),
        torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1), inputs["completion_ids"].shape[1])
    difference = ((plain - inputs["old_per_token_logps"]).abs() * inputs["completion_mask"]).sum(-1)
    assert (difference[positive] > 1e-4).all() and (difference[~positive] < 1e-5).all()


def test_topk_log_probs_renormalise_the_top_k():
    logits = torch.tensor([[[3.0, 1.0, 0.5, -2.0]]])
    top2 = torch.log_softmax(torch.tensor([3.0, 1.0]), -1)
    assert topk_log_probs(logits, torch.tensor([[1]]), k=2).item() == pytest.approx(float(top2[1]))
    assert topk_log_probs(logits, torch.tensor([[3]]), k=2).item() == -1.0e4
    full = torch.log_softmax(logits, -1)[0, 0, 2]
    assert topk_log_probs(logits, torch.tensor([[2]]), k=4).item() == pytest.approx(float(full))


def test_refuses_bad_band(tmp_path, task):
    with pytest.raises(ValueError, match="omega_low"):
        make_trainer(tmp_path, task, omega_low=3.0, omega_high=1.0)
    with pytest.raises(ValueError, match="era_k"):
        make_trainer(tmp_path, task, era_k=0.0)


def test_authors_code_truncates_advantages_in_the_logit_rule(tmp_path, task):
    """Spec section 3, code quirks: logits are scaled only where int(A) > 0, advantages wherever
    A > 0; log-probs from the renormalised top-20 (the whole 17-token vocabulary here)."""
    trainer = make_trainer(tmp_path, task, era_k=2.0, omega_low=50.0, omega_high=60.0, authors_code=True)
    assert trainer.era_path == "fused"
    batch = fixed_batch(task)
    advantages = torch.tensor([1.5, 0.7, -0.4, 2.9])  # every response is below omega_low = 50
    mask = batch["completion_mask"]
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
    attention = torch.cat([batch["prompt_mask"], mask], dim=1)
    with torch.no_grad():
        logps, _, scaled = trainer._era_log_probs(trainer.model, ids, attention, 3, mask, advantages, log=False)
        logits = trainer.model(input_ids=ids, attention_mask=attention, logits_to_keep=4).logits[:, :-1].float() / TEMPERATURE
    targets = batch["completion_ids"]
    for b, (logit_factor, adv_factor) in enumerate([(2.0, 2.0), (1.0, 2.0), (1.0, 1.0), (2.0, 2.0)]):
        expected = topk_log_probs(logit_factor * logits[b:b + 1], targets[b:b + 1])[0]
        on = mask[b].bool()  # padding: the fused path scores nothing there
        assert torch.allclose(logps[b][on], expected[on], atol=1e-6), b
        assert torch.allclose(scaled[b], advantages[b] / adv_factor), b
