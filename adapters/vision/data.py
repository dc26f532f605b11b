"""Image-classification task ids -> train/test datasets (torchvision datasets, scikit-learn digits).

Task ids (docs/harness.md): ``digits`` (scikit-learn's bundled 8x8 digits: real data that needs no
download), ``cifar10`` (torchvision's ``CIFAR10``; downloads only when asked) and
``imagenet:PATH`` (torchvision's ``ImageFolder`` over ``PATH/train`` and ``PATH/val``; any
dataset in that layout works). Every dataset yields ``(float image (3, S, S), class index)``.

Nothing here downloads unless the caller passes ``download=True``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from adapters.errors import ConfigError
from adapters.vision.tasks import (
    CIFAR10_FILES,
    CIFAR10_FOLDER,
    CIFAR10_URL,
    TASK_IDS,
    VisionTask,
    check_task_data,
    default_data_root,
    parse_task,
)

__all__ = [
    "TASK_IDS",
    "CIFAR10_FILES",
    "VisionTask",
    "VisionData",
    "parse_task",
    "default_data_root",
    "check_task_data",
    "build_datasets",
    "cifar10_class",
    "digits_split",
]

# channel statistics used for normalisation (the usual published values)
_CIFAR10_MEAN, _CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

#: digits: one fixed, stratified split shared by every trial so seeds differ only in training
DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED = 0.2, 0


@dataclass
class VisionData:
    """The datasets of one task: ``train`` and ``test`` (held-out) splits and the class names."""

    train: torch.utils.data.Dataset
    test: torch.utils.data.Dataset
    classes: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


# --------------------------------------------------------------------------------------------
# datasets
# --------------------------------------------------------------------------------------------


def build_datasets(
    task: VisionTask,
    image_size: int,
    augmentation: str = "none",
    data_root: Path | None = None,
    download: bool = False,
    cifar_checksums: Mapping[str, str] | None = None,
) -> VisionData:
    """Build the train and held-out datasets of ``task``.

    Args:
        image_size: side S of the square images the network sees.
        augmentation: ``none`` or ``standard`` (CIFAR: random crop with 4-pixel padding + flip;
            ImageFolder: random resized crop + flip; digits: random crop with padding only, since
            mirrored digits are other symbols). Held-out images are never augmented.
        data_root: folder holding ``cifar-10-batches-py`` (default :func:`default_data_root`).
        download: let torchvision download CIFAR-10 if it is missing.
        cifar_checksums: file name -> md5 for the seven CIFAR-10 files, replacing torchvision's
            published checksums in its integrity check (the check itself still runs). For copies
            whose bytes differ from the official archive, e.g. the small archives tests generate.
    """
    if augmentation not in ("none", "standard"):
        raise ConfigError(f"augmentation must be 'none' or 'standard', got {augmentation!r}")
    classes = check_task_data(task, data_root, download)
    if task.kind == "digits":
        return _digits(image_size, augmentation)
    if task.kind == "cifar10":
        root = Path(data_root) if data_root is not None else default_data_root()
        return _cifar10(root, image_size, augmentation, download, cifar_checksums)
    return _imagefolder(task.path, classes, image_size, augmentation)


def digits_split() -> tuple[Any, Any, Any, Any]:
    """scikit-learn's digits, split once, stratified, with a fixed seed: ``(x_train, x_test,
    y_train, y_test)``, images (N, 8, 8) in [0, 1]; 1,437 train and 360 test images."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images.astype("float32") / 16.0
    return train_test_split(
        images, digits.target, test_size=DIGITS_TEST_FRACTION, stratify=digits.target,
        random_state=DIGITS_SPLIT_SEED,
    )


class _TensorImages(torch.utils.data.Dataset):
    """Images held as one tensor (N, 3, S, S) in [0, 1], with a per-item tensor transform."""

    def __init__(self, images: Tensor, labels: Tensor, transform: Any) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.transform(self.images[index]), int(self.labels[index])


def _digits(image_size: int, augmentation: str) -> VisionData:
    from torchvision.transforms import v2

    x_train, x_test, y_train, y_test = digits_split()

    def prepare(images: Any) -> Tensor:
        x = torch.as_tensor(images)[:, None]  # (N, 1, 8, 8)
        x = torch.nn.functional.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
        return x.clamp(0.0, 1.0).expand(-1, 3, -1, -1).contiguous()  # grey -> 3 channels: any torchvision stem

    train_images, test_images = prepare(x_train), prepare(x_test)
    mean, std = float(train_images.mean()), float(train_images.std())
    normalize = v2.Normalize([mean] * 3, [std] * 3)
    augment = [v2.RandomCrop(image_size, padding=max(1, image_size // 8))] if augmentation == "standard" else []
    return VisionData(
        train=_TensorImages(train_images, torch.as_tensor(y_train), v2.Compose([*augment, normalize])),
        test=_TensorImages(test_images, torch.as_tensor(y_test), normalize),
        classes=[str(d) for d in range(10)],
    )


def _to_float(mean: tuple[float, ...], std: tuple[float, ...]) -> list[Any]:
    from torchvision.transforms import v2

    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]


def cifar10_class(checksums: Mapping[str, str] | None = None) -> type:
    """torchvision's ``CIFAR10``, or, given ``checksums``, a subclass that only swaps the md5
    table its integrity check compares against (every file must be listed)."""
    from torchvision.datasets import CIFAR10

    if checksums is None:
        return CIFAR10
    missing = [name for name in CIFAR10_FILES if name not in checksums]
    if missing:
        raise ValueError(f"cifar_checksums lacks {', '.join(missing)}")
    return type(
        "CIFAR10WithChecksums",
        (CIFAR10,),
        {
            "train_list": [[name, checksums[name]] for name, _ in CIFAR10.train_list],
            "test_list": [[name, checksums[name]] for name, _ in CIFAR10.test_list],
            "meta": {**CIFAR10.meta, "md5": checksums[CIFAR10.meta["filename"]]},
        },
    )


def _cifar10(
    root: Path, image_size: int, augmentation: str, download: bool, checksums: Mapping[str, str] | None
) -> VisionData:
    from torchvision.transforms import v2

    if download and checksums is not None:
        raise ValueError("cifar_checksums describe a local copy; they cannot be combined with download=True")
    resize = [v2.Resize(image_size, antialias=True)] if image_size != 32 else []
    augment = (
        [v2.RandomCrop(image_size, padding=max(1, image_size // 8)), v2.RandomHorizontalFlip()]
        if augmentation == "standard" else []
    )
    dataset_class = cifar10_class(checksums)
    train_tf = v2.Compose([v2.ToImage(), *resize, *augment, *_to_float(_CIFAR10_MEAN, _CIFAR10_STD)])
    test_tf = v2.Compose([v2.ToImage(), *resize, *_to_float(_CIFAR10_MEAN, _CIFAR10_STD)])
    try:
        train = dataset_class(str(root), train=True, transform=train_tf, download=download)
        test = dataset_class(str(root), train=False, transform=test_tf, download=False)
    except RuntimeError as error:  # torchvision: "Dataset not found or corrupted" (md5 mismatch)
        raise ConfigError(
            f"CIFAR-10 in {root / CIFAR10_FOLDER} failed torchvision's integrity check ({error}): "
            f"re-extract the official archive ({CIFAR10_URL}) there, or allow the download with "
            f"the setting download: true"
        ) from error
    return VisionData(train=train, test=test, classes=list(train.classes))


def _imagefolder(path: Path, classes: list[str], image_size: int, augmentation: str) -> VisionData:
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2

    resize = round(image_size / 0.875)  # the usual 256 -> 224 centre crop
    eval_geometry = [v2.Resize(resize, antialias=True), v2.CenterCrop(image_size)]
    train_geometry = (
        [v2.RandomResizedCrop(image_size, antialias=True), v2.RandomHorizontalFlip()]
        if augmentation == "standard" else eval_geometry
    )
    to_float = _to_float(_IMAGENET_MEAN, _IMAGENET_STD)
    train = ImageFolder(str(path / "train"), transform=v2.Compose([v2.ToImage(), *train_geometry, *to_float]))
    test = ImageFolder(str(path / "val"), transform=v2.Compose([v2.ToImage(), *eval_geometry, *to_float]))
    return VisionData(train=train, test=test, classes=classes)
