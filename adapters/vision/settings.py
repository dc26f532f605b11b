"""Settings of the vision family: what each algorithm accepts, per-task defaults, validation.

Unknown keys and bad values raise :class:`ConfigError` naming the allowed keys or values; nothing
here imports torchvision or reads data.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from adapters.errors import ConfigError, check_known_settings, unknown_name
from adapters.trial import TrialSpec

__all__ = ["DEFAULTS", "RECIPES", "VisionSettings", "allowed_settings", "resolve_settings"]

#: this family's algorithms (rows of adapters.registry) -> the settings each adds to the common ones, with
#: their defaults
DEFAULTS: dict[str, dict[str, Any]] = {
    "resnet": {},
    # label_smoothing is offered with ERA because the authors combined them (timm --jsd, 0.1)
    "resnet-era": {"min_entropy": 0.6, "tau": 4.0, "inverse": "series", "label_smoothing": 0.0},
    "resnet-ls": {"label_smoothing": 0.1},
    "resnet-dropout": {"dropout": 0.2},
}

#: per-task training defaults, used where the trial does not set them: the usual CIFAR ResNet
#: recipe (He et al. 2016), the torchvision ImageNet reference (lr 0.1 at batch 256), and for
#: digits' 1,437 training images a smaller batch and rate, so that 3 epochs learn (measured)
RECIPES: dict[str, dict[str, Any]] = {
    "digits": {"image_size": 32, "lr": 0.02, "batch_size": 64, "weight_decay": 5e-4},
    "cifar10": {"image_size": 32, "lr": 0.1, "batch_size": 128, "weight_decay": 5e-4},
    "imagenet": {"image_size": 224, "lr": 0.1, "batch_size": 256, "weight_decay": 1e-4},
}


@dataclass(frozen=True)
class VisionSettings:
    """The settings of one vision trial, with their defaults.

    ``image_size``, ``lr``, ``batch_size`` and ``weight_decay`` default to the task's
    :data:`RECIPES`; ``cifar_stem`` ``None`` applies the 3x3 stem to ResNets of inputs up to 64 pixels;
    ``data_root`` and ``download`` concern ``cifar10`` only; ``amp`` and ``channels_last`` take
    effect only on CUDA. ERA, smoothing and dropout settings belong to their algorithms.
    """

    image_size: int
    lr: float
    batch_size: int
    weight_decay: float
    architecture: str = "resnet18"
    momentum: float = 0.9
    nesterov: bool = False
    schedule: str = "cosine"
    augmentation: str = "none"
    cifar_stem: bool | None = None
    num_workers: int = 0
    data_root: str | None = None
    download: bool = False
    amp: bool = True
    channels_last: bool = True
    min_entropy: float = 0.6
    tau: float = 4.0
    inverse: str = "series"
    label_smoothing: float = 0.0
    dropout: float = 0.0

    @property
    def data_path(self) -> Path | None:
        """``data_root`` as an absolute path (Ray Tune runs trials in their own folders)."""
        return Path(self.data_root).expanduser().absolute() if self.data_root else None


_ALGO_ONLY = {"min_entropy", "tau", "inverse", "label_smoothing", "dropout"}
_COMMON = [f.name for f in fields(VisionSettings) if f.name not in _ALGO_ONLY]


def allowed_settings(algo: str) -> list[str]:
    """The setting names ``algo`` accepts."""
    return _COMMON + list(DEFAULTS[algo])


def _number(low: float | None = None, high: float | None = None, low_open: bool = False) -> Callable[[Any], bool]:
    def ok(value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        if low is not None and (value <= low if low_open else value < low):
            return False
        return high is None or value < high

    return ok


def _integer(low: int) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, int) and not isinstance(value, bool) and value >= low


def _one_of(*choices: Any) -> Callable[[Any], bool]:
    return lambda value: any(value is c if isinstance(c, bool) or c is None else value == c for c in choices)


#: setting -> (accepts the value?, what is expected, for the error message)
_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "image_size": (_integer(2), "an integer >= 2"),
    "lr": (_number(0.0, low_open=True), "a number > 0"),
    "batch_size": (_integer(2), "an integer >= 2"),
    "weight_decay": (_number(0.0), "a number >= 0"),
    "architecture": (lambda v: isinstance(v, str) and bool(v), "a torchvision model name, e.g. resnet18"),
    "momentum": (_number(0.0, 1.0), "a number in [0, 1)"),
    "nesterov": (_one_of(True, False), "true or false"),
    "schedule": (_one_of("cosine", "constant"), "'cosine' or 'constant'"),
    "augmentation": (_one_of("none", "standard"), "'none' or 'standard' (crop + flip)"),
    "cifar_stem": (_one_of(None, True, False), "true, false or 'auto'"),
    "num_workers": (_integer(0), "an integer >= 0"),
    "data_root": (lambda v: v is None or (isinstance(v, str) and bool(v)), "a folder path"),
    "download": (_one_of(True, False), "true or false"),
    "amp": (_one_of(True, False), "true or false"),
    "channels_last": (_one_of(True, False), "true or false"),
    "min_entropy": (_number(), "a number of nats (SoftmaxERA.allowed_range gives the range)"),
    "tau": (_number(1.0, low_open=True), "a number > 1"),
    "inverse": (_one_of("series", "exact"), "'series' (the authors') or 'exact' (Lambert W)"),
    "label_smoothing": (_number(0.0, 1.0), "a number in [0, 1)"),
    "dropout": (_number(0.0, 1.0), "a number in [0, 1)"),
}


def resolve_settings(spec: TrialSpec) -> VisionSettings:
    """The trial's settings over the task's recipe and the defaults; unknown keys and bad values
    raise ConfigError (range checks that need the data, such as min_entropy's, are in validate)."""
    if spec.algo not in DEFAULTS:
        raise unknown_name("vision algorithm", spec.algo, DEFAULTS)
    settings: Mapping[str, Any] = spec.settings or {}
    check_known_settings(spec.algo, settings, allowed_settings(spec.algo))
    from adapters.vision.tasks import parse_task

    values = {**RECIPES[parse_task(spec.task).kind], **DEFAULTS[spec.algo], **settings}
    if values.get("cifar_stem") == "auto":
        values["cifar_stem"] = None
    for key, value in values.items():
        accepts, expected = _RULES[key]
        if not accepts(value):
            raise ConfigError(f"setting {key}={value!r} is invalid: expected {expected}")
    return VisionSettings(**values)
