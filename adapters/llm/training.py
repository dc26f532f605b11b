"""The LLM family's trial: set up the problem (toy or hub), TRL's trainer, and train between
evaluations, checkpointing after each."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from adapters.errors import TrainingDivergedError
from adapters.llm.settings import HubTaskId, LLMSettings, ToyTaskId, parse_task, require_trl, resolve_settings
from adapters.seeding import derived_seed
from adapters.trial import EvalRecord, TrialCheckpoint, TrialSpec

__all__ = ["run"]

_WARMUP_FILE = "warmup_model.pt"
_TRAINER_DIR = "trainer"


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
            scale_advantages=settings.scale_advantages, authors_code=settings.authors_code,
            era_path=settings.era_path, **kwargs,
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
    require_trl()
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

    # TRL writes its own checkpoints outside the trial's folder, and each is hard-linked (or copied)
    # into the trial checkpoint: the folder a checkpoint upload takes (Ray Tune copies the trial's
    # whole folder, and copies do not keep hard links) then holds the trainer state once, not twice
    work = Path(tempfile.mkdtemp(prefix="era-llm-"))
    if settings.beta > 0 and isinstance(task, ToyTaskId):
        reference = (Path(checkpoint.directory) if checkpoint.directory is not None else work) / "reference"
        _use_warm_up_as_reference(problem.model, reference, fresh=not records)
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
        shutil.rmtree(work, ignore_errors=True)
