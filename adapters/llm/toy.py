"""The toy LLM tasks: a character-level tokenizer, a tiny Llama built from a config, a task with a
verifiable answer and a deterministic supervised warm-up. Nothing is downloaded.

- ``llm:arith`` asks ``"a+b="`` for single digits ``a, b`` and rewards a completion whose leading
  digits are ``a+b`` (100 prompts). Every token of the answer decides the reward, so the ideal
  policy is deterministic: entropy falls because the model learns.
- ``llm:tagged-sum`` asks ``"a+b="`` like ``llm:arith`` but wants a free tag first: any one of the
  letters ``a``-``j``, then the sum (``"3+4="`` -> ``"c7"``). The tag stands for the many tokens
  of a reasoning trace whose choice does not decide the reward (phrasing, order of steps): the
  reward never looks at it, so its entropy can stay at log 10 = 2.30 nats at full accuracy. Under
  GRPO it still drifts down (sampling noise in the updates, and the answer tokens that follow it
  share the network); this is the collapse ERA's floor is built for (docs/era.md, section 3).
- ``llm:decompose`` asks ``"s="`` for ``s`` in 4..14 and rewards any ``"a+b"`` of digits with
  ``a+b = s`` (11 prompts, 5 to 10 correct answers each, so the first digit's entropy can stay
  between log 5 = 1.61 and log 10 = 2.30 nats at full accuracy). Which ``a`` to write does not decide the
  reward of a correct completion. But the choice is coupled to the reward: for most sums some
  digits have no partner (``9`` for ``s = 4``), and the model completes the digits it writes
  often more reliably. Negative-advantage responses then push the rarely chosen digits down, which
  token-level ERA (it rescales positive-advantage tokens only) does not counter: measured, ERA
  slows this collapse but does not hold a floor (suites/llm-toy-decompose.yaml).

Training and evaluation use the same prompts: the point is the policy's entropy under RL, not
generalisation. A randomly initialised model almost never earns a reward, so every GRPO group would
have zero variance and no gradient; a short supervised warm-up on uniformly drawn correct
completions first makes the task partly solved (docs/llm.md).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = [
    "TAGS",
    "VOCAB",
    "TinyModelConfig",
    "ToyTask",
    "TOY_TASKS",
    "build_tokenizer",
    "build_tiny_model",
    "warm_up",
    "warm_up_state",
]

#: the free tags of ``llm:tagged-sum``
TAGS = "abcdefghij"
VOCAB: tuple[str, ...] = ("<pad>", "<eos>", "<bos>", "<unk>", *"0123456789", "+", "=", " ", *TAGS)
_LEADING_NUMBER = re.compile(r"\s*(\d+)")
_DIGIT_PAIR = re.compile(r"\s*(\d)\+(\d)\s*")
_TAGGED_NUMBER = re.compile(rf"\s*[{TAGS[0]}-{TAGS[-1]}](\d+)\s*")


@dataclass(frozen=True)
class TinyModelConfig:
    """The tiny Llama (about 1.5M parameters at the defaults; docs/llm.md)."""

    hidden_size: int = 192
    intermediate_size: int = 384
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    max_position_embeddings: int = 32


@dataclass(frozen=True)
class ToyTask:
    """A toy task: prompts, the reward's ``answer`` column, every correct completion of each prompt
    (the warm-up imitates them uniformly) and the longest useful completion."""

    name: str
    prompts: tuple[str, ...]
    answers: tuple[str, ...]
    targets: tuple[tuple[str, ...], ...]
    max_completion_length: int
    warmup_steps: int  # supervised steps that leave the task partly solved
    check: Callable[[str, str], bool]  # (completion, answer) -> correct

    def reward(self, completions: list[str], answer: list[str], **_: object) -> list[float]:
        """1 for a correct completion, else 0 (TRL reward-function signature: dataset columns
        arrive as keyword arguments)."""
        return [1.0 if self.check(c, a) else 0.0 for c, a in zip(completions, answer)]


def _starts_with_number(completion: str, answer: str) -> bool:
    match = _LEADING_NUMBER.match(completion)
    return bool(match) and match.group(1) == answer


def _is_decomposition(completion: str, answer: str) -> bool:
    match = _DIGIT_PAIR.fullmatch(completion)
    return bool(match) and int(match.group(1)) + int(match.group(2)) == int(answer)


def _is_tagged_number(completion: str, answer: str) -> bool:
    match = _TAGGED_NUMBER.fullmatch(completion)
    return bool(match) and match.group(1) == answer


def _single_digit_sums(name: str, targets: Callable[[int], tuple[str, ...]], warmup_steps: int,
                       check: Callable[[str, str], bool]) -> ToyTask:
    """The 100 prompts ``"a+b="`` for single digits; ``targets(a + b)`` are the correct completions."""
    pairs = [(a, b) for a in range(10) for b in range(10)]
    return ToyTask(
        name=name,
        prompts=tuple(f"{a}+{b}=" for a, b in pairs),
        answers=tuple(str(a + b) for a, b in pairs),
        targets=tuple(targets(a + b) for a, b in pairs),
        max_completion_length=4,  # at most three characters, then <eos>
        warmup_steps=warmup_steps,
        check=check,
    )


def _arith() -> ToyTask:
    # 100 warm-up steps leave the greedy accuracy about 0.55 (docs/llm.md)
    return _single_digit_sums("arith", lambda total: (str(total),), 100, _starts_with_number)


def _tagged_sum() -> ToyTask:
    # 150 warm-up steps: sampled accuracy about 0.5, every tag about equally likely
    return _single_digit_sums("tagged-sum", lambda total: tuple(f"{tag}{total}" for tag in TAGS), 150,
                              _is_tagged_number)


def _decompose() -> ToyTask:
    sums = range(4, 15)  # every sum has 5 to 10 decompositions: a floor near 1 nat is reachable
    return ToyTask(
        name="decompose",
        prompts=tuple(f"{s}=" for s in sums),
        answers=tuple(str(s) for s in sums),
        targets=tuple(tuple(f"{a}+{s - a}" for a in range(10) if 0 <= s - a <= 9) for s in sums),
        max_completion_length=4,  # "a+b", <eos>
        warmup_steps=200,  # sampled accuracy about 0.55, first-digit choice still diverse
        check=_is_decomposition,
    )


#: toy task name (the part after ``llm:``) -> its builder
TOY_TASKS: dict[str, Callable[[], ToyTask]] = {"arith": _arith, "tagged-sum": _tagged_sum, "decompose": _decompose}


def build_tokenizer():  # -> transformers.PreTrainedTokenizerFast
    """A character-level tokenizer over :data:`VOCAB`, built with ``tokenizers`` (no hub)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel(vocab={c: i for i, c in enumerate(VOCAB)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>",
        unk_token="<unk>", padding_side="left",
    )


def build_tiny_model(seed: int, config: TinyModelConfig = TinyModelConfig()):  # -> LlamaForCausalLM
    """A randomly initialised tiny ``LlamaForCausalLM`` (fp32), seeded."""
    from transformers import LlamaConfig, LlamaForCausalLM

    llama = LlamaConfig(
        vocab_size=len(VOCAB),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_attention_heads,
        max_position_embeddings=config.max_position_embeddings,
        tie_word_embeddings=True,
        pad_token_id=VOCAB.index("<pad>"),
        eos_token_id=VOCAB.index("<eos>"),
        bos_token_id=VOCAB.index("<bos>"),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(llama)
    model.generation_config.pad_token_id = llama.pad_token_id
    model.generation_config.eos_token_id = llama.eos_token_id
    return model


def _sft_batch(task: ToyTask, tokenizer, indices: list[int], choices: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-padded ``prompt + target + <eos>`` ids, attention mask, and labels on target and eos only."""
    rows, label_rows = [], []
    for i, choice in zip(indices, choices):
        prompt = tokenizer(task.prompts[i], add_special_tokens=False)["input_ids"]
        target = task.targets[i][choice % len(task.targets[i])]
        answer = tokenizer(target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows.append(prompt + answer)
        label_rows.append([-100] * len(prompt) + answer)
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    labels = torch.tensor([[-100] * (width - len(r)) + r for r in label_rows])
    return ids, (ids != pad).long(), labels


def warm_up(model, tokenizer, task: ToyTask, steps: int, lr: float, batch_size: int, seed: int) -> list[float]:
    """Supervised training on correct completions, drawn uniformly (AdamW, plain torch loop),
    deterministic per seed.

    Returns the loss of every step. The model is left in eval mode.
    """
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        indices = torch.randint(len(task.prompts), (batch_size,), generator=generator).tolist()
        choices = torch.randint(2**31 - 1, (batch_size,), generator=generator).tolist()
        ids, attention, labels = _sft_batch(task, tokenizer, indices, choices)
        loss = model(input_ids=ids, attention_mask=attention, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return losses


@functools.lru_cache(maxsize=4)
def _cached_warm_up(
    task_name: str, model_config: TinyModelConfig, steps: int, lr: float, batch_size: int, seed: int
) -> tuple[dict[str, torch.Tensor], tuple[float, ...]]:
    task = TOY_TASKS[task_name]()
    model = build_tiny_model(seed, model_config)
    losses = warm_up(model, build_tokenizer(), task, steps, lr, batch_size, seed)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, tuple(losses)


def warm_up_state(
    task_name: str, model_config: TinyModelConfig, steps: int, lr: float, batch_size: int, seed: int
) -> tuple[dict[str, torch.Tensor], tuple[float, ...]]:
    """The warmed-up tiny model's weights and the warm-up losses, memoised in this process.

    The warm-up is a pure function of its arguments, so ``grpo`` and ``grpo-era`` trials of the
    same seed (and a test session's repeated runs) train it once. Returns copies.
    """
    state, losses = _cached_warm_up(task_name, model_config, steps, lr, batch_size, seed)
    return {k: v.clone() for k, v in state.items()}, losses
