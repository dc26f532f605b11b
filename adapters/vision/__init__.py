"""The image-classification family: torchvision classifiers with and without ERA (docs/era.md, section 2).

Algorithms: ``resnet`` (plain cross-entropy), ``resnet-era`` (``SoftmaxERA`` on the logits),
and the paper's baselines ``resnet-ls`` (label smoothing) and ``resnet-dropout`` (dropout before
the classifier). Tasks: ``digits``, ``cifar10``, ``imagenet:PATH`` (:mod:`adapters.vision.data`).
The budget counts epochs. Every evaluation, on the held-out split, reports top-1 accuracy in
percent as ``score``, the mean predictive entropy as ``entropy``, and ``top5``, ``nll``, ``ece``,
``entropy_min``, ``train_loss`` and ``train_top1`` as metrics.

Modules: settings in :mod:`adapters.vision.settings`, data in :mod:`adapters.vision.data`,
networks in :mod:`adapters.vision.models`, the epoch loop in :mod:`adapters.vision.training`,
metrics in :mod:`adapters.vision.metrics`. This one implements the family contract
(``adapters.registry``): ``validate`` and ``run``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from adapters.trial.checkpoint import TrialCheckpoint
from adapters.device import check_device
from adapters.errors import ConfigError
from adapters.facts import library_fact
from adapters.trial import EvalRecord, TrialSpec
from adapters.vision.settings import DEFAULTS, RECIPES, VisionSettings, allowed_settings, resolve_settings

__all__ = [
    "DEFAULTS",
    "RECIPES",
    "VisionSettings",
    "allowed_settings",
    "resolve_settings",
    "validate",
    "run",
]

#: the family's state file inside a checkpoint directory
STATE_FILE = "state.pt"


def validate(spec: TrialSpec) -> None:
    """Check algorithm, settings, task data, architecture and device without training (no image
    is read and no weight allocated: the architecture is checked on the meta device)."""
    from adapters.vision.tasks import check_task_data, parse_task

    settings = resolve_settings(spec)
    if int(spec.budget) < 1:
        raise ConfigError(f"{spec.algo} counts its budget in epochs: give at least 1, got {spec.budget}")
    if spec.eval_every is not None and int(spec.eval_every) < 1:
        raise ConfigError(f"eval_every counts epochs: give at least 1, got {spec.eval_every}")
    classes = check_task_data(parse_task(spec.task), settings.data_path, settings.download)
    if spec.algo == "resnet-era":
        _check_era_head(len(classes), settings.min_entropy, settings.tau, settings.inverse)
    _check_architecture(
        settings.architecture, len(classes), settings.image_size, settings.cifar_stem,
        spec.algo in ("resnet-era", "resnet-dropout"),
    )
    check_device(spec.device)


@library_fact("torch")
def _check_era_head(num_classes: int, min_entropy: float, tau: float, inverse: str) -> bool:
    """Whether ``SoftmaxERA`` takes the trial's floor (a ``ConfigError`` if not), remembered once it
    does (``adapters.facts``: a warm machine validates without importing torch)."""
    from adapters.vision.training import softmax_era

    softmax_era(num_classes, min_entropy, tau, inverse)
    return True


@library_fact("torch", "torchvision")
def _check_architecture(architecture: str, num_classes: int, image_size: int, cifar_stem: bool | None,
                        head: bool) -> bool:
    """:func:`adapters.vision.models.check_architecture`, remembered once it passes."""
    from adapters.vision.models import check_architecture

    check_architecture(architecture, num_classes, image_size, cifar_stem, head=head)
    return True


def run(spec: TrialSpec, checkpoint: TrialCheckpoint) -> Iterator[EvalRecord]:
    """Train for ``spec.budget`` epochs, evaluating every ``spec.eval_every`` epochs (default 1)
    and after the last; resumes after the last checkpointed evaluation, whose state holds the
    model, optimizer, scheduler, gradient scaler, epoch and generator states."""
    import torch

    from adapters.vision.training import build_trainer

    settings = resolve_settings(spec)
    trainer = build_trainer(spec, settings)
    records: list[EvalRecord] = []
    counters: dict[str, Any] = {"wall_time_s": 0.0}
    start_epoch = 0
    restored = checkpoint.load()
    if restored is not None and restored.records:
        state = torch.load(Path(restored.state_dir) / STATE_FILE, map_location=trainer.device, weights_only=True)
        start_epoch = int(state["epoch"])
        if start_epoch != restored.records[-1].step:
            raise ConfigError(
                f"checkpoint {checkpoint.directory} holds epoch {start_epoch} but its last record is "
                f"epoch {restored.records[-1].step}: delete that folder to start the trial over"
            )
        trainer.load(state)
        records, counters = list(restored.records), dict(restored.counters)

    every, budget = int(spec.eval_every or 1), int(spec.budget)
    wall_time = float(counters.get("wall_time_s", 0.0))
    for epoch in range(start_epoch + 1, budget + 1):
        started = time.perf_counter()
        train_metrics = trainer.train_epoch(spec, epoch)
        if epoch % every and epoch != budget:
            wall_time += time.perf_counter() - started
            continue
        metrics = trainer.evaluate()
        wall_time += time.perf_counter() - started
        record = EvalRecord(
            step=epoch,
            score=metrics.pop("top1"),
            entropy=metrics.pop("entropy"),
            wall_time_s=wall_time,
            metrics={**metrics, **train_metrics},
        )
        records.append(record)
        counters["wall_time_s"] = wall_time
        state = trainer.state(epoch)
        checkpoint.save(lambda directory: torch.save(state, Path(directory) / STATE_FILE), records, counters)
        yield record
