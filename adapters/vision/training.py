"""Training machinery of the vision family: model and loss per algorithm, and the epoch loop.

SGD with momentum and a per-step cosine schedule; on CUDA, autocast (bf16 where supported, else
fp16 with a gradient scaler) and channels-last; on the CPU, fp32. Every epoch reseeds torch,
numpy, ``random`` and the loader's generator from ``(seed, epoch)``, so an epoch's randomness
does not depend on what ran before it and a resumed run repeats the uninterrupted one.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from adapters.device import select_device
from adapters.errors import ConfigError, TrainingDivergedError
from adapters.seeding import derived_seed
from adapters.trial import TrialSpec
from adapters.vision.settings import VisionSettings

__all__ = ["Trainer", "build_trainer", "build_model", "build_loss", "era_module", "epoch_seed"]

_EVAL_BATCH = 256


def era_module(settings: VisionSettings, num_classes: int) -> nn.Module:
    """``SoftmaxERA`` with the trial's floor; a floor outside its domain is a ConfigError."""
    return softmax_era(num_classes, settings.min_entropy, settings.tau, settings.inverse)


def softmax_era(num_classes: int, min_entropy: float, tau: float, inverse: str) -> nn.Module:
    """``SoftmaxERA(num_classes, min_entropy, tau, inverse)``, its ``ValueError`` as a ConfigError."""
    from adapters.era import SoftmaxERA

    try:
        return SoftmaxERA(num_classes, min_entropy, tau, inverse)
    except ValueError as error:
        raise ConfigError(f"setting min_entropy: {error}") from error


def build_model(algo: str, settings: VisionSettings, num_classes: int) -> nn.Module:
    """The classifier of ``algo``: its output is what the loss and the metrics see (ERA's z')."""
    from adapters.vision.models import build_classifier

    head: tuple[nn.Module, ...] = (era_module(settings, num_classes),) if algo == "resnet-era" else ()
    pre: tuple[nn.Module, ...] = (nn.Dropout(settings.dropout),) if algo == "resnet-dropout" else ()
    return build_classifier(settings.architecture, num_classes, settings.image_size, settings.cifar_stem, head, pre)


def build_loss(settings: VisionSettings) -> nn.Module:
    """Cross-entropy on the model's output (ERA's z' for ``resnet-era``: log_softmax is applied
    once, inside the loss; docs/era.md, section 2), with the trial's label smoothing."""
    return nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of ``epoch`` (0: model initialisation) of a trial with ``seed``."""
    return derived_seed(seed, epoch)


def _seed_all(value: int) -> None:
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)  # also seeds every CUDA device


@dataclass
class Trainer:
    """The model, its optimisation state and the loaders of one trial."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    criterion: nn.Module
    train_loader: torch.utils.data.DataLoader
    test_loader: torch.utils.data.DataLoader
    generator: torch.Generator
    device: torch.device
    amp_dtype: torch.dtype | None
    memory_format: torch.memory_format

    def _autocast(self) -> Any:
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def _to_device(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images = images.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        return images, targets.to(self.device, non_blocking=True)

    def train_epoch(self, spec: TrialSpec, epoch: int) -> dict[str, float]:
        """One pass over the training split; returns its mean loss and top-1 (augmented data)."""
        seed = epoch_seed(spec.seed, epoch)
        _seed_all(seed)
        self.generator.manual_seed(seed)
        self.model.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        count = 0
        for images, targets in self.train_loader:
            images, targets = self._to_device(images, targets)
            with self._autocast():
                outputs = self.model(images)
                loss = self.criterion(outputs.float(), targets)  # the loss sees z' (docs/era.md, section 2)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            loss_sum += loss.detach().double() * len(targets)
            correct += (outputs.detach().argmax(-1) == targets).sum()
            count += len(targets)
        train_loss = float(loss_sum) / max(count, 1)
        if not math.isfinite(train_loss):
            raise TrainingDivergedError(
                f"{spec.algo} on {spec.task} (seed {spec.seed}) reached a non-finite training loss in "
                f"epoch {epoch}: lower the setting lr (now {self.optimizer.defaults['lr']})"
            )
        return {"train_loss": train_loss, "train_top1": 100.0 * float(correct) / max(count, 1)}

    @torch.inference_mode()
    def evaluate(self) -> dict[str, float]:
        """Metrics of the held-out split (:class:`~adapters.vision.metrics.MetricAccumulator`)."""
        from adapters.era import SoftmaxERA
        from adapters.vision.metrics import MetricAccumulator

        self.model.eval()
        accumulator = MetricAccumulator()
        # rank classes by the logits entering ERA: its fp32 output ties the improbable classes
        raw: dict[str, torch.Tensor] = {}
        hooks = [
            module.register_forward_pre_hook(lambda _, args: raw.__setitem__("logits", args[0]))
            for module in self.model.modules() if isinstance(module, SoftmaxERA)
        ]
        try:
            for images, targets in self.test_loader:
                images, targets = self._to_device(images, targets)
                with self._autocast():
                    outputs = self.model(images)
                accumulator.update(outputs, targets, ranking=raw.pop("logits", None))
        finally:
            for hook in hooks:
                hook.remove()
        return accumulator.compute()

    def state(self, epoch: int) -> dict[str, Any]:
        """Everything a resume needs, as tensors and plain values (``torch.load(weights_only=True)``)."""
        return {
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            "loader_rng": self.generator.get_state(),
        }

    def load(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and state["cuda_rng"]:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.generator.set_state(state["loader_rng"])


def build_trainer(spec: TrialSpec, settings: VisionSettings) -> Trainer:
    """Data, model (seeded from ``(seed, 0)``), optimizer, schedule and loaders of a trial."""
    from adapters.vision.data import build_datasets, parse_task

    device = select_device(spec.device)
    cuda = device.type == "cuda"
    task = parse_task(spec.task)
    data = build_datasets(task, settings.image_size, settings.augmentation, settings.data_path, settings.download)
    _seed_all(epoch_seed(spec.seed, 0))
    model = build_model(spec.algo, settings, data.num_classes)
    memory_format = torch.channels_last if cuda and settings.channels_last else torch.contiguous_format
    model = model.to(device, memory_format=memory_format)
    if cuda:
        torch.backends.cudnn.benchmark = True
    amp_dtype = None
    if cuda and settings.amp:
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    generator = torch.Generator()
    loader_options = {"num_workers": settings.num_workers, "pin_memory": cuda}
    train_loader = torch.utils.data.DataLoader(
        data.train, batch_size=settings.batch_size, shuffle=True, generator=generator,
        drop_last=len(data.train) > settings.batch_size,  # no batch of 1 for BatchNorm
        **loader_options,
    )
    test_loader = torch.utils.data.DataLoader(
        data.test, batch_size=max(_EVAL_BATCH, settings.batch_size), shuffle=False, **loader_options
    )
    optimizer = torch.optim.SGD(
        model.parameters(), lr=settings.lr, momentum=settings.momentum,
        weight_decay=settings.weight_decay, nesterov=settings.nesterov and settings.momentum > 0,
    )
    total_steps = max(1, int(spec.budget) * len(train_loader))
    if settings.schedule == "cosine":  # stepped per batch, to zero at the end of the budget
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    else:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return Trainer(
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16),
        criterion=build_loss(settings),
        train_loader=train_loader,
        test_loader=test_loader,
        generator=generator,
        device=device,
        amp_dtype=amp_dtype,
        memory_format=memory_format,
    )
