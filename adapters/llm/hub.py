"""Hub tasks (``llm:hf:<dataset>``): a Hugging Face model trained with GRPO on a hub dataset of
math problems and evaluated on competition sets with a verifiable answer.

This is the path of ``suites/llm-qwen-math.yaml`` (the paper's setting: Qwen2.5-Math-7B trained on
DAPO-Math-17k, evaluated on AIME24, AIME25 and AMC as pass@k). It needs the network (or a filled
Hugging Face cache) and a GPU, and is never exercised by the tests; only the parsing and answer
checking below are.

Answers are checked with ``math_verify`` (TRL's ``accuracy_reward`` relies on it; ``pip install
math-verify``) when it is installed, else by exact comparison of the normalised strings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DatasetSpec",
    "TRAIN_SETS",
    "EVAL_SETS",
    "INSTRUCTION",
    "dataset_spec",
    "extract_answer",
    "math_reward",
    "load_prompts",
    "load_model_and_tokenizer",
]

#: appended to every problem (training and evaluation alike), the format the reward parses
INSTRUCTION = (
    "\n\nSolve the problem step by step. Put the final answer on its own line as "
    "\"Answer: $ANSWER\", or within \\boxed{}."
)


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset lives on the hub and which columns hold the problem and the answer.

    A dotted column (``reward_model.ground_truth``) reads a field of a struct column. A problem
    column holding chat messages (a list of ``{"role", "content"}``) is used as the chat prompt.
    """

    path: str
    split: str = "train"
    config: str | None = None
    prompt_column: str = "problem"
    answer_column: str = "answer"


#: training sets with known columns (others: give prompt_column / answer_column in the settings)
TRAIN_SETS: dict[str, DatasetSpec] = {
    "BytedTsinghua-SIA/DAPO-Math-17k": DatasetSpec(
        "BytedTsinghua-SIA/DAPO-Math-17k", prompt_column="prompt", answer_column="reward_model.ground_truth"
    ),
}

#: the paper's evaluation sets (AIME 2024, AIME 2025, AMC), hub copies with their columns
EVAL_SETS: dict[str, DatasetSpec] = {
    "aime24": DatasetSpec("Maxwell-Jia/AIME_2024", prompt_column="Problem", answer_column="Answer"),
    "aime25": DatasetSpec("yentinglin/aime_2025", prompt_column="problem", answer_column="answer"),
    "amc": DatasetSpec("AI-MO/aimo-validation-amc", prompt_column="problem", answer_column="answer"),
}


def dataset_spec(value: str | Mapping[str, Any], known: Mapping[str, DatasetSpec]) -> DatasetSpec:
    """A :class:`DatasetSpec` from a known name, a hub path, or a mapping of its fields."""
    if isinstance(value, str):
        return known.get(value) or DatasetSpec(value)
    fields = dict(value)
    if "path" not in fields:
        raise ValueError(f"a dataset entry needs a 'path' (the hub dataset id), got {sorted(fields)}")
    return DatasetSpec(**fields)


_BOXED = re.compile(r"\\boxed\s*\{")
_ANSWER_LINE = re.compile(r"Answer\s*:\s*(.+)", re.IGNORECASE)


def _last_boxed(text: str) -> str | None:
    starts = [m.end() for m in _BOXED.finditer(text)]
    if not starts:
        return None
    depth, start = 1, starts[-1]
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start:i]
    return None


def extract_answer(text: str) -> str | None:
    """The final answer of a completion: the last ``\\boxed{...}``, else the last "Answer: ..." line."""
    boxed = _last_boxed(text)
    if boxed is not None:
        return boxed.strip()
    lines = _ANSWER_LINE.findall(text)
    return lines[-1].strip().rstrip(".").strip("$ ") if lines else None


def _normalise(answer: str) -> str:
    return re.sub(r"\s+|\$|\\!|\\,|^\{|\}$", "", str(answer)).rstrip(".")


def _equivalent(gold: str, predicted: str) -> bool:
    try:
        from math_verify import parse, verify
    except ImportError:
        return _normalise(gold) == _normalise(predicted)
    return bool(verify(parse(f"${gold}$"), parse(f"${predicted}$")))


def math_reward(completions: Sequence[Any], solution: Sequence[str], **_: Any) -> list[float]:
    """1 when the completion's final answer equals the solution (TRL reward signature)."""
    rewards = []
    for completion, gold in zip(completions, solution):
        text = completion if isinstance(completion, str) else completion[-1]["content"]
        predicted = extract_answer(text)
        rewards.append(1.0 if predicted is not None and _equivalent(str(gold), predicted) else 0.0)
    return rewards


def _column(row: Mapping[str, Any], dotted: str) -> Any:
    value: Any = row
    for part in dotted.split("."):
        value = value[part]
    return value


def _prompt(problem: Any) -> list[dict[str, str]]:
    if isinstance(problem, list):  # already chat messages (DAPO-Math-17k)
        return [dict(m) for m in problem]
    return [{"role": "user", "content": f"{problem}{INSTRUCTION}"}]


def load_prompts(spec: DatasetSpec, limit: int | None = None) -> tuple[list, list[str]]:
    """Chat prompts and answers of a hub dataset (downloads it, or reads the local HF cache)."""
    from datasets import load_dataset

    data = load_dataset(spec.path, spec.config, split=spec.split)
    if limit is not None:
        data = data.select(range(min(limit, len(data))))
    prompts, answers = [], []
    for row in data:
        prompts.append(_prompt(_column(row, spec.prompt_column)))
        answers.append(str(_column(row, spec.answer_column)))
    return prompts, answers


def load_model_and_tokenizer(name: str, dtype: str):
    """A causal LM and its tokenizer from the hub or a local folder (left padding for generation)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
    model = AutoModelForCausalLM.from_pretrained(name, dtype=torch_dtype)
    tokenizer = AutoTokenizer.from_pretrained(name, padding_side="left")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
