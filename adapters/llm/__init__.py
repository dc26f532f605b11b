"""The LLM reinforcement-learning family: GRPO with and without token-level ERA, run by Hugging
Face TRL's ``GRPOTrainer`` (spec section 3; optional extra ``[llm]``).

Algorithms: ``grpo`` (TRL's ``GRPOTrainer`` unchanged) and ``grpo-era``
(:class:`adapters.llm.trainer.ERAGRPOTrainer`, which changes only how per-token log-probs and
advantages are computed). Tasks:

- ``llm:arith`` (single-digit addition), ``llm:tagged-sum`` (the sum after a free tag letter the
  reward ignores: GRPO's entropy loss there is lost diversity) and ``llm:decompose`` (write ``s``
  as a sum of two digits, a free choice coupled to the reward) on a tiny Llama built from a
  config, first taught by a deterministic supervised warm-up (:mod:`adapters.llm.toy`); minutes on
  a laptop CPU.
- ``llm:hf:<dataset>``: a hub model (setting ``model``) trained on a hub dataset of math problems
  and evaluated on hub evaluation sets (:mod:`adapters.llm.hub`); for GPU clusters.

The budget counts GRPO steps (optimizer steps). Every evaluation samples ``eval_samples``
completions per evaluation prompt and reports ``score`` = their mean accuracy in %, ``entropy`` =
the mean response entropy (spec section 3: mean of the top 20% token entropies on the unmodified
logits), ``pass@k``, ``greedy_accuracy``, and what happened in training since the last evaluation
(``train_reward``, TRL's ``train_token_entropy``, and for ``grpo-era`` ``frac_scaled_up`` /
``frac_scaled_down``, the share of completion tokens whose logits ERA multiplied by k or 1/k,
``train_response_entropy`` and ``entropy_floor`` = ``omega_low``). ``authors_code: true``
reproduces the authors' code (integer-truncated advantages in the logit rule, top-20 log-probs).
A record at step 0 evaluates the model before GRPO (after the warm-up).

Checkpoints: the warm-up model (step 0), then TRL/Hugging Face's own trainer checkpoint (weights,
optimizer, scheduler, RNG, trainer state), hard-linked into the trial checkpoint; a resumed trial
continues with ``trainer.train(resume_from_checkpoint=...)``, the library's resume, and never
redoes the warm-up.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from adapters.trial.checkpoint import TrialCheckpoint
from adapters.errors import (
    ConfigError,
    MissingDependencyError,
    TrainingDivergedError,
    check_known_settings,
    unknown_name,
)
from adapters.seeding import derived_seed
from adapters.trial import EvalRecord, TrialSpec

__all__ = ["ALGORITHMS", "TASKS", "LLMSettings", "resolve_settings", "parse_task", "validate", "run"]

#: this family's algorithms -> the settings each adds to the common ones, with their defaults
ALGORITHMS: dict[str, dict[str, Any]] = {
    "grpo": {},
    # spec section 3: the authors' scripts use k = 2, band [0.45, 3.0], advantages divided by s
    "grpo-era": {
        "era_k": 2.0,
        "omega_low": 0.45,
        "omega_high": 3.0,
        "scale_advantages": True,
        "authors_code": False,
    },
}

#: task ids this family knows (``llm:hf:<dataset>`` takes any hub dataset id)
TASKS: tuple[str, ...] = ("llm:arith", "llm:tagged-sum", "llm:decompose", "llm:hf:<dataset>")

_WARMUP_FILE = "warmup_model.pt"
_TRAINER_DIR = "trainer"
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


_ERA_ONLY = set(ALGORITHMS["grpo-era"])
_COMMON = [f.name for f in fields(LLMSettings) if f.name not in _ERA_ONLY]
_LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo")


def allowed_settings(algo: str) -> list[str]:
    """The setting names ``algo`` accepts."""
    return _COMMON + list(ALGORITHMS[algo])


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
    if spec.algo not in ALGORITHMS:
        raise unknown_name("LLM algorithm", spec.algo, ALGORITHMS)
    settings: Mapping[str, Any] = spec.settings or {}
    check_known_settings(spec.algo, settings, allowed_settings(spec.algo))
    values = {**ALGORITHMS[spec.algo], **settings}
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


def _require_trl() -> None:
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
    _require_trl()
    _check_trl_fields(settings.trl)


# ------------------------------------------------------------------------------------ set-up
def _prepare_environment(offline: bool) -> None:
    """Environment for Hugging Face libraries, set before they are imported (they read it then).

    Telemetry is always off; toy tasks need nothing from the network, so they run fully offline
    (TRL's telemetry otherwise tries to reach the hub). Hub tasks keep the user's choice.
    """
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    if offline:
        for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
            os.environ[name] = "1"


@dataclass
class _Problem:
    """Everything a trial trains and evaluates on."""

    model: Any
    tokenizer: Any
    train_dataset: Any
    reward: Any
    eval_sets: dict[str, Any]  # name -> adapters.llm.evaluation.EvalBatch
    max_completion_length: int
    warmup: tuple[dict, tuple[float, ...]] | None = None  # (state dict, losses), fresh toy trials only


def _toy_problem(spec: TrialSpec, settings: LLMSettings, task: ToyTaskId, fresh: bool) -> _Problem:
    from datasets import Dataset

    from adapters.llm.evaluation import EvalBatch
    from adapters.llm.toy import TOY_TASKS, TinyModelConfig, build_tiny_model, build_tokenizer, warm_up_state

    toy = TOY_TASKS[task.name]()
    model = build_tiny_model(spec.seed)
    warmup = None
    if fresh:
        steps = toy.warmup_steps if settings.warmup_steps is None else settings.warmup_steps
        warmup = warm_up_state(task.name, TinyModelConfig(), steps, settings.warmup_lr,
                               settings.warmup_batch_size, spec.seed)
        model.load_state_dict(warmup[0])
    count = settings.eval_prompts or len(toy.prompts)
    return _Problem(
        model=model,
        tokenizer=build_tokenizer(),
        train_dataset=Dataset.from_dict({"prompt": list(toy.prompts), "answer": list(toy.answers)}),
        reward=toy.reward,
        eval_sets={task.name: EvalBatch(toy.prompts[:count], {"answer": toy.answers[:count]})},
        max_completion_length=settings.max_completion_length or toy.max_completion_length,
        warmup=warmup,
    )


def _hub_problem(settings: LLMSettings, task: HubTaskId) -> _Problem:  # pragma: no cover - needs the hub
    from datasets import Dataset

    from adapters.llm.evaluation import EvalBatch
    from adapters.llm.hub import EVAL_SETS, TRAIN_SETS, DatasetSpec, dataset_spec, load_model_and_tokenizer, load_prompts, math_reward

    train = TRAIN_SETS.get(task.dataset) or DatasetSpec(task.dataset)
    train = replace(
        train, split=settings.train_split, config=settings.dataset_config or train.config,
        prompt_column=settings.prompt_column or train.prompt_column,
        answer_column=settings.answer_column or train.answer_column,
    )
    prompts, answers = load_prompts(train)
    eval_sets = {}
    for name, entry in (settings.eval_datasets or {k: k for k in EVAL_SETS}).items():
        eval_prompts, eval_answers = load_prompts(dataset_spec(entry, EVAL_SETS), settings.eval_prompts or 64)
        eval_sets[name] = EvalBatch(eval_prompts, {"solution": eval_answers})
    model, tokenizer = load_model_and_tokenizer(settings.model, settings.model_dtype)
    return _Problem(
        model=model,
        tokenizer=tokenizer,
        train_dataset=Dataset.from_dict({"prompt": prompts, "solution": answers}),
        reward=math_reward,
        eval_sets=eval_sets,
        max_completion_length=settings.max_completion_length or 1024,
    )


def _grpo_config(spec: TrialSpec, settings: LLMSettings, problem: _Problem, output_dir: Path, cpu: bool):
    from trl import GRPOConfig

    options: dict[str, Any] = {
        "bf16": False,  # GRPOConfig defaults these two to True; on a GPU, set them in `trl`
        "gradient_checkpointing": False,
        **settings.trl,
    }
    return GRPOConfig(
        output_dir=str(output_dir),
        seed=spec.seed,
        data_seed=spec.seed,
        use_cpu=cpu,
        per_device_train_batch_size=settings.prompts_per_step * settings.num_generations,
        num_generations=settings.num_generations,
        max_completion_length=problem.max_completion_length,
        learning_rate=settings.learning_rate,
        lr_scheduler_type=settings.lr_scheduler,
        max_steps=int(spec.budget),
        temperature=settings.temperature,
        beta=settings.beta,
        num_iterations=settings.num_iterations,
        epsilon=settings.epsilon,
        epsilon_high=settings.epsilon_high if settings.epsilon_high is not None else settings.epsilon,
        loss_type=settings.loss_type,
        logging_steps=1,
        report_to="none",
        save_strategy="no",  # the segment callback asks for a save at each evaluation
        disable_tqdm=True,
        **options,
    )


def _segment_callback():
    from transformers import TrainerCallback

    class SegmentCallback(TrainerCallback):
        """Stops training (saving a trainer checkpoint) at ``stop_at`` and keeps every log line."""

        def __init__(self) -> None:
            self.stop_at = 0
            self.logs: list[dict[str, float]] = []

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= self.stop_at:
                control.should_save = True
                control.should_training_stop = True
            return control

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs:
                self.logs.append(dict(logs))

    return SegmentCallback()


def _build_trainer(spec: TrialSpec, settings: LLMSettings, problem: _Problem, output_dir: Path, cpu: bool, callback):
    from trl import GRPOTrainer

    kwargs: dict[str, Any] = dict(
        model=problem.model,
        reward_funcs=problem.reward,
        args=_grpo_config(spec, settings, problem, output_dir, cpu),
        train_dataset=problem.train_dataset,
        processing_class=problem.tokenizer,
        callbacks=[callback],
    )
    from adapters.llm.sampling import epoch_seeded

    if spec.algo == "grpo":
        trainer = epoch_seeded(GRPOTrainer)(**kwargs)
    else:
        from adapters.llm.trainer import ERAGRPOTrainer

        trainer = epoch_seeded(ERAGRPOTrainer)(
            era_k=settings.era_k, omega_low=settings.omega_low, omega_high=settings.omega_high,
            scale_advantages=settings.scale_advantages, authors_code=settings.authors_code, **kwargs,
        )
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # the records carry the numbers; no per-step printing
    return trainer


# ------------------------------------------------------------------------------------ evaluation
def _eval_seed(seed: int, step: int) -> int:
    return derived_seed(seed, step, 7)


def _evaluate(spec: TrialSpec, settings: LLMSettings, problem: _Problem, model, step: int) -> dict[str, float]:
    from adapters.llm.evaluation import evaluate_policy

    per_set = {}
    for name, batch in problem.eval_sets.items():
        per_set[name] = evaluate_policy(
            model, problem.tokenizer, batch, problem.reward, settings.eval_samples, problem.max_completion_length,
            temperature=settings.temperature, seed=_eval_seed(spec.seed, step), batch_size=settings.eval_batch_size,
            top_p=settings.eval_top_p,
        )
    if len(per_set) == 1:
        return next(iter(per_set.values()))
    merged = {key: float(np.mean([m[key] for m in per_set.values()])) for key in next(iter(per_set.values()))}
    for name, metrics in per_set.items():
        merged.update({f"{name}/{key}": value for key, value in metrics.items()})
    return merged


def _train_metrics(logs: list[dict[str, float]]) -> dict[str, float]:
    """Means over the segment's per-step TRL logs (reward, token entropy, ERA's scaled shares)."""
    names = {
        "reward": "train_reward",
        "entropy": "train_token_entropy",
        "loss": "train_loss",
        "kl": "train_kl",
        "era/frac_scaled_up": "frac_scaled_up",
        "era/frac_scaled_down": "frac_scaled_down",
        "era/response_entropy": "train_response_entropy",
    }
    out = {}
    for key, name in names.items():
        values = [float(log[key]) for log in logs if key in log and "train_runtime" not in log]
        if values:
            out[name] = float(np.mean(values))
    return out


def _record(step: int, metrics: dict[str, float], wall_time: float, extra: dict[str, float]) -> EvalRecord:
    """``score`` = sampled accuracy (%), ``entropy`` = mean response entropy; the rest as metrics."""
    metrics = dict(metrics)
    return EvalRecord(
        step=step,
        score=metrics.pop("accuracy"),
        entropy=metrics.pop("entropy"),
        wall_time_s=wall_time,
        metrics={**metrics, **extra},
    )


def _link_tree(source: Path, target: Path) -> None:
    """Copy a checkpoint folder by hard links where the filesystem allows (weights can be GBs)."""

    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link_or_copy)


def _use_warm_up_as_reference(model, folder: Path, fresh: bool) -> None:
    """The KL term's reference policy (``beta > 0``) is the warmed-up model, which TRL reloads from
    the model's ``_name_or_path``: save it once, beside the trial's checkpoint, and point there."""
    if fresh:
        model.save_pretrained(folder)
    elif not (folder / "config.json").exists():
        raise TrainingDivergedError(
            f"the KL reference model of this trial is missing from {folder}: delete the checkpoint folder "
            f"to start over"
        )
    model.config._name_or_path = str(folder)


# ------------------------------------------------------------------------------------ the trial
def run(spec: TrialSpec, checkpoint: TrialCheckpoint) -> Iterator[EvalRecord]:
    """Train for ``spec.budget`` GRPO steps, evaluating at step 0 and every ``spec.eval_every``
    steps (default: a tenth of the budget) and at the end; resumes after the last checkpointed
    evaluation (family contract, adapters.registry)."""
    import torch

    from adapters.device import select_device

    settings = resolve_settings(spec)
    task = parse_task(spec.task)
    _prepare_environment(offline=isinstance(task, ToyTaskId))
    _require_trl()
    device = select_device(spec.device)
    threads = settings.torch_threads or (1 if isinstance(task, ToyTaskId) and device.type == "cpu" else None)
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield from _run(spec, checkpoint, settings, task, device)
    finally:
        torch.set_num_threads(previous_threads)


def _run(spec: TrialSpec, checkpoint: TrialCheckpoint, settings: LLMSettings, task, device) -> Iterator[EvalRecord]:
    import torch

    restored = checkpoint.load()
    records: list[EvalRecord] = list(restored.records) if restored else []
    counters: dict[str, Any] = dict(restored.counters) if restored else {"wall_time_s": 0.0}
    wall_time = float(counters.get("wall_time_s", 0.0))

    started = time.perf_counter()
    if isinstance(task, ToyTaskId):
        problem = _toy_problem(spec, settings, task, fresh=not records)
    else:  # pragma: no cover - needs the hub
        problem = _hub_problem(settings, task)
    if restored is not None and records and records[-1].step == 0 and isinstance(task, ToyTaskId):
        problem.model.load_state_dict(torch.load(Path(restored.state_dir) / _WARMUP_FILE, weights_only=True))
    problem.model.to(device)

    owned_tmp = None
    if checkpoint.directory is not None:
        work = Path(checkpoint.directory) / "hf-work"  # the library's own checkpoints, linked into ours
        shutil.rmtree(work, ignore_errors=True)  # leftovers of an interrupted run: we resume from ours
    else:
        owned_tmp = work = Path(tempfile.mkdtemp(prefix="era-llm-"))
    if settings.beta > 0 and isinstance(task, ToyTaskId):
        _use_warm_up_as_reference(problem.model, work.parent / "reference" if owned_tmp is None else work / "reference",
                                  fresh=not records)
    callback = _segment_callback()
    trainer = _build_trainer(spec, settings, problem, work, device.type == "cpu", callback)
    model = trainer.accelerator.unwrap_model(trainer.model)
    budget = int(spec.budget)
    every = int(spec.eval_every or max(1, budget // 10))
    # the floor ERA defends (reports draw it beside the entropy curve)
    floor = {"entropy_floor": settings.omega_low} if spec.algo == "grpo-era" else {}
    try:
        resume_from: Path | None = None
        if not records:  # fresh: evaluate the warmed-up model, checkpoint it, never warm up again
            metrics = _evaluate(spec, settings, problem, model, 0)
            wall_time += time.perf_counter() - started
            extra = {"warmup_final_loss": problem.warmup[1][-1]} if problem.warmup and problem.warmup[1] else {}
            records.append(_record(0, metrics, wall_time, {**extra, **floor}))
            counters["wall_time_s"] = wall_time
            state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            checkpoint.save(lambda d: torch.save(state, Path(d) / _WARMUP_FILE), records, counters)
            yield records[-1]
        elif records[-1].step > 0:
            resume_from = Path(restored.state_dir) / _TRAINER_DIR
            if not (resume_from / "trainer_state.json").exists():
                raise TrainingDivergedError(
                    f"checkpoint in {checkpoint.directory} has records up to step {records[-1].step} but no "
                    f"trainer state: delete the checkpoint folder to start over"
                )
        step = records[-1].step
        while step < budget:
            started = time.perf_counter()
            target = min(budget, (step // every + 1) * every)
            callback.stop_at, callback.logs = target, []
            trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
            if trainer.state.global_step != target:
                raise TrainingDivergedError(
                    f"{spec.algo} on {spec.task} stopped at GRPO step {trainer.state.global_step} instead of "
                    f"{target}: check the trl settings (max_steps is the budget)"
                )
            train_metrics = _train_metrics(callback.logs)
            if not all(math.isfinite(v) for v in train_metrics.values()):
                raise TrainingDivergedError(
                    f"{spec.algo} on {spec.task} (seed {spec.seed}) reached non-finite training metrics by step "
                    f"{target}: lower the setting learning_rate (now {settings.learning_rate})"
                )
            metrics = _evaluate(spec, settings, problem, model, target)
            wall_time += time.perf_counter() - started
            records.append(_record(target, metrics, wall_time, {**train_metrics, **floor}))
            counters["wall_time_s"] = wall_time
            saved = work / f"checkpoint-{target}"
            checkpoint.save(lambda d: _link_tree(saved, Path(d) / _TRAINER_DIR), records, counters)
            if resume_from is not None and resume_from.parent == work:
                shutil.rmtree(resume_from, ignore_errors=True)
            resume_from, step = saved, target
            yield records[-1]
    finally:
        if owned_tmp is not None:
            shutil.rmtree(owned_tmp, ignore_errors=True)
        elif checkpoint.directory is not None:
            shutil.rmtree(work, ignore_errors=True)
