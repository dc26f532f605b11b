"""The LLM family's settings and task ids: what each algorithm accepts, checked on load."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from adapters.errors import ConfigError, MissingDependencyError, check_known_settings, unknown_name
from adapters.trial import TrialSpec

__all__ = ["DEFAULTS", "TASKS", "LLMSettings", "ToyTaskId", "HubTaskId", "allowed_settings", "parse_task",
           "resolve_settings", "validate", "require_trl"]

#: this family's algorithms (rows of adapters.registry) -> the settings each adds to the common ones, with
#: their defaults
DEFAULTS: dict[str, dict[str, Any]] = {
    "grpo": {},
    # docs/era.md, section 3: the authors' scripts use k = 2, band [0.45, 3.0], advantages divided by s
    "grpo-era": {
        "era_k": 2.0,
        "omega_low": 0.45,
        "omega_high": 3.0,
        "scale_advantages": True,
        "authors_code": False,
        # docs/llm.md, "Memory": TRL's chunked LM head instead of the B x T x V logits; same values
        "era_path": "fused",
    },
}

#: task ids this family knows (``llm:hf:<dataset>`` takes any hub dataset id)
TASKS: tuple[str, ...] = ("llm:arith", "llm:tagged-sum", "llm:decompose", "llm:hf:<dataset>")

_INSTALL_HINT = 'install the LLM extra: pip install -e ".[llm]" (trl 1.16, transformers 5.24, datasets, accelerate)'

#: GRPOConfig fields the adapter sets itself: the ``trl`` setting may not override them
_MANAGED = {
    "output_dir", "seed", "data_seed", "use_cpu", "per_device_train_batch_size", "num_generations",
    "max_completion_length", "learning_rate", "lr_scheduler_type", "max_steps", "temperature", "beta",
    "num_iterations", "epsilon", "epsilon_high", "loss_type", "logging_steps", "report_to",
    "save_strategy", "disable_tqdm", "num_train_epochs",
}


@dataclass(frozen=True)
class LLMSettings:
    """The settings of one LLM trial, with their defaults (suited to the toy; the GPU suite sets
    the paper's values).

    ``model``: ``tiny`` (the config-built toy model) or a hub id / local folder (``llm:hf`` tasks).
    ``warmup_steps``: supervised steps before GRPO (toy tasks only; ``None``: the task's own). ``prompts_per_step`` x
    ``num_generations`` completions per GRPO step. ``eval_prompts``: how many prompts each
    evaluation uses (``None``: all of a toy task's; 64 per hub evaluation set); ``eval_samples``:
    completions per prompt (pass@k up to it). ``trl``: further ``GRPOConfig`` fields, e.g.
    ``{gradient_checkpointing: true, bf16: true}`` on a GPU. ``torch_threads``: CPU threads for
    the trial (``None``: 1 for toy tasks on the CPU, where a tiny model gains nothing from more and
    loses up to 25x to oversubscription on a busy machine; else torch's default). ``eval_datasets`` (hub tasks):
    name -> a known name, hub id or ``{path, split, config, prompt_column, answer_column}``.
    """

    model: str = "tiny"
    model_dtype: str = "float32"
    warmup_steps: int | None = None
    warmup_lr: float = 1e-3
    warmup_batch_size: int = 32
    learning_rate: float = 1e-4
    lr_scheduler: str = "constant"
    prompts_per_step: int = 4
    num_generations: int = 8
    max_completion_length: int | None = None
    temperature: float = 1.0
    beta: float = 0.0
    num_iterations: int = 1
    epsilon: float = 0.2
    epsilon_high: float | None = None
    loss_type: str = "dapo"
    eval_prompts: int | None = None
    eval_samples: int = 8
    eval_batch_size: int = 512
    eval_top_p: float = 1.0
    torch_threads: int | None = None
    trl: Mapping[str, Any] = field(default_factory=dict)
    eval_datasets: Mapping[str, Any] | None = None
    prompt_column: str | None = None
    answer_column: str | None = None
    dataset_config: str | None = None
    train_split: str = "train"
    era_k: float = 2.0
    omega_low: float = 0.45
    omega_high: float = 3.0
    scale_advantages: bool = True
    authors_code: bool = False
    era_path: str = "fused"


_ERA_ONLY = set(DEFAULTS["grpo-era"])
_COMMON = [f.name for f in fields(LLMSettings) if f.name not in _ERA_ONLY]
_LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo")


def allowed_settings(algo: str) -> list[str]:
    """The setting names ``algo`` accepts."""
    return _COMMON + list(DEFAULTS[algo])


# ------------------------------------------------------------------------------------ tasks
@dataclass(frozen=True)
class ToyTaskId:
    name: str  # a key of adapters.llm.toy.TOY_TASKS


@dataclass(frozen=True)
class HubTaskId:
    dataset: str  # a hub dataset id


def parse_task(task: str) -> ToyTaskId | HubTaskId:
    """A toy task (``llm:arith``, ...) or ``llm:hf:<dataset>``; anything else lists the known tasks."""
    from adapters.llm.toy import TOY_TASKS

    if task.startswith("llm:hf:"):
        dataset = task[len("llm:hf:"):]
        if not dataset:
            raise ConfigError("task 'llm:hf:' names no dataset: write llm:hf:<owner/name>, e.g. "
                              "llm:hf:BytedTsinghua-SIA/DAPO-Math-17k")
        return HubTaskId(dataset)
    if task.startswith("llm:") and task[len("llm:"):] in TOY_TASKS:
        return ToyTaskId(task[len("llm:"):])
    raise unknown_name("LLM task", task, [f"llm:{name}" for name in TOY_TASKS] + ["llm:hf:<dataset>"])


# ------------------------------------------------------------------------------------ settings
def _check(key: str, value: Any, ok: bool, expected: str) -> None:
    if not ok:
        raise ConfigError(f"setting {key}={value!r} is invalid: expected {expected}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_value(key: str, value: Any) -> None:
    positive_ints = ("torch_threads", "warmup_batch_size", "prompts_per_step", "num_iterations", "eval_samples", "eval_batch_size")
    if key in positive_ints:
        _check(key, value, (key == "torch_threads" and value is None) or (_is_int(value) and value >= 1),
               "an integer >= 1")
    elif key == "num_generations":
        _check(key, value, _is_int(value) and value >= 2, "an integer >= 2 (GRPO compares completions within a group)")
    elif key == "warmup_steps":
        _check(key, value, value is None or (_is_int(value) and value >= 0), "an integer >= 0 or null")
    elif key in ("max_completion_length", "eval_prompts"):
        _check(key, value, value is None or (_is_int(value) and value >= 1), "an integer >= 1 or null")
    elif key in ("warmup_lr", "learning_rate", "temperature", "era_k"):
        _check(key, value, _is_number(value) and value > 0, "a number > 0")
    elif key in ("beta", "epsilon"):
        _check(key, value, _is_number(value) and value >= 0, "a number >= 0")
    elif key == "epsilon_high":
        _check(key, value, value is None or (_is_number(value) and value >= 0), "a number >= 0 or null")
    elif key in ("omega_low", "omega_high"):
        _check(key, value, _is_number(value) and value >= 0, "a number >= 0 (nats)")
    elif key == "eval_top_p":
        _check(key, value, _is_number(value) and 0 < value <= 1, "a number in (0, 1]")
    elif key in ("scale_advantages", "authors_code"):
        _check(key, value, isinstance(value, bool), "true or false")
    elif key == "era_path":
        _check(key, value, value in ("fused", "logits"),
               "fused (TRL's chunked LM head, bounded memory) or logits (the full B x T x V logits)")
    elif key == "model":
        _check(key, value, isinstance(value, str) and bool(value), "'tiny' or a hub model id / local folder")
    elif key == "model_dtype":
        _check(key, value, value in ("float32", "bfloat16", "float16", "auto"), "float32, bfloat16, float16 or auto")
    elif key == "lr_scheduler":
        _check(key, value, value in ("constant", "linear", "cosine"), "constant (the authors'), linear or cosine")
    elif key == "loss_type":
        _check(key, value, value in _LOSS_TYPES, f"one of TRL's loss types: {', '.join(_LOSS_TYPES)}")
    elif key == "trl":
        _check(key, value, isinstance(value, Mapping), "a mapping of GRPOConfig fields")
        managed = sorted(set(value) & _MANAGED)
        if managed:
            raise ConfigError(f"setting trl: {', '.join(managed)} is set by the adapter: use the adapter's own "
                              f"settings (learning_rate, prompts_per_step, ...) or the suite's budget instead")
    elif key == "eval_datasets":
        _check(key, value, value is None or (isinstance(value, Mapping) and len(value) > 0),
               "a non-empty mapping name -> dataset, or null")
    elif key in ("prompt_column", "answer_column", "dataset_config"):
        _check(key, value, value is None or (isinstance(value, str) and bool(value)), "a string or null")
    elif key == "train_split":
        _check(key, value, isinstance(value, str) and bool(value), "a split name, e.g. train")


def resolve_settings(spec: TrialSpec) -> LLMSettings:
    """The trial's settings over the defaults; unknown keys and bad values raise ConfigError."""
    if spec.algo not in DEFAULTS:
        raise unknown_name("LLM algorithm", spec.algo, DEFAULTS)
    settings: Mapping[str, Any] = spec.settings or {}
    check_known_settings(spec.algo, settings, allowed_settings(spec.algo))
    values = {**DEFAULTS[spec.algo], **settings}
    for key, value in values.items():
        _check_value(key, value)
    resolved = replace(LLMSettings(), **values)
    if resolved.omega_low > resolved.omega_high:
        raise ConfigError(f"settings omega_low={resolved.omega_low} > omega_high={resolved.omega_high}: "
                          f"the entropy band needs omega_low <= omega_high")
    return resolved


def _check_trl_fields(extra: Mapping[str, Any]) -> None:
    if not extra:
        return
    from trl import GRPOConfig

    known = {f.name for f in fields(GRPOConfig)}
    unknown = sorted(set(extra) - known)
    if unknown:
        raise ConfigError(f"setting trl: {', '.join(unknown)} is not a GRPOConfig field of the installed TRL: "
                          f"check the name against trl.GRPOConfig")


def require_trl() -> None:
    try:
        import trl  # noqa: F401
    except ImportError as error:
        raise MissingDependencyError(f"the LLM family needs TRL, which is not installed: {_INSTALL_HINT}") from error


def validate(spec: TrialSpec) -> None:
    """Check algorithm, task, settings and device without building a model or loading data."""
    from adapters.device import select_device

    settings = resolve_settings(spec)
    task = parse_task(spec.task)
    if int(spec.budget) < 1:
        raise ConfigError(f"{spec.algo} counts its budget in GRPO steps: give at least 1, got {spec.budget}")
    if spec.eval_every is not None and int(spec.eval_every) < 1:
        raise ConfigError(f"eval_every counts GRPO steps: give at least 1, got {spec.eval_every}")
    if isinstance(task, ToyTaskId) and settings.model != "tiny":
        raise ConfigError(f"task {spec.task} runs on the config-built toy model only: set model: tiny "
                          f"(hub models take llm:hf:<dataset> tasks)")
    if isinstance(task, HubTaskId) and settings.model == "tiny":
        raise ConfigError(f"task {spec.task} needs a hub model: set model to a hub id or local folder, "
                          f"e.g. Qwen/Qwen2.5-Math-7B")
    if spec.algo == "grpo-era" and settings.trl.get("use_vllm"):
        raise ConfigError("grpo-era does not support trl.use_vllm (not checked with ERA): remove it")
    if isinstance(task, HubTaskId) and settings.eval_datasets is not None:
        from adapters.llm.hub import EVAL_SETS, dataset_spec

        for name, entry in settings.eval_datasets.items():
            try:
                dataset_spec(entry, EVAL_SETS)
            except (TypeError, ValueError) as error:
                raise ConfigError(f"setting eval_datasets.{name}: {error}") from error
    select_device(spec.device)
    require_trl()
    _check_trl_fields(settings.trl)
