"""Image-classification task ids -> train/test datasets (torchvision datasets, scikit-learn digits).

Task ids (docs/harness.md): ``digits`` (scikit-learn's bundled 8x8 digits: real data that needs no
download), ``cifar10`` (torchvision's ``CIFAR10``; downloads only when asked) and
``imagenet:PATH`` (torchvision's ``ImageFolder`` over ``PATH/train`` and ``PATH/val``; any
dataset in that layout works). Every dataset yields ``(float image (3, S, S), class index)``.

Nothing here downloads unless the caller passes ``download=True``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from adapters.errors import ConfigError, unknown_name

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

#: the task ids this module knows, as listed in errors
TASK_IDS = ("digits", "cifar10", "imagenet:<path>")

#: files of the python version of CIFAR-10, inside ``ROOT/cifar-10-batches-py``
CIFAR10_FILES = (
    "data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
    "test_batch", "batches.meta",
)
_CIFAR10_FOLDER = "cifar-10-batches-py"
_CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"

# channel statistics used for normalisation (the usual published values)
_CIFAR10_MEAN, _CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

#: digits: one fixed, stratified split shared by every trial so seeds differ only in training
DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED = 0.2, 0


@dataclass(frozen=True)
class VisionTask:
    """A parsed task id: ``kind`` is ``digits``, ``cifar10`` or ``imagenet``; ``path`` is the
    ImageFolder root of ``imagenet:PATH``."""

    kind: str
    path: Path | None = None


@dataclass
class VisionData:
    """The datasets of one task: ``train`` and ``test`` (held-out) splits and the class names."""

    train: torch.utils.data.Dataset
    test: torch.utils.data.Dataset
    classes: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def parse_task(task: str) -> VisionTask:
    """``"digits"``, ``"cifar10"`` or ``"imagenet:PATH"`` -> :class:`VisionTask`."""
    if task in ("digits", "cifar10"):
        return VisionTask(task)
    kind, sep, path = task.partition(":")
    if kind == "imagenet" and sep:
        if not path:
            raise ConfigError("task 'imagenet:' needs a folder: use imagenet:PATH with PATH/train and PATH/val")
        return VisionTask("imagenet", Path(path).expanduser())
    raise unknown_name(
        "vision task", task, TASK_IDS,
        hint="imagenet:PATH reads any ImageFolder tree with PATH/train/CLASS/*.jpg and PATH/val/CLASS/*.jpg",
    )


def default_data_root() -> Path:
    """Where ``cifar10`` looks when no ``data_root`` is set: ``$ERA_DATA_DIR`` or
    ``~/.cache/era-harness/data``. Absolute, because Ray Tune runs trials in their own folders."""
    return Path(os.environ.get("ERA_DATA_DIR", "~/.cache/era-harness/data")).expanduser().absolute()


def check_task_data(task: VisionTask, data_root: Path | None = None, download: bool = False) -> list[str]:
    """Check that the task's data is where it should be, cheaply (no image is read, no checksum
    computed); returns the class names. Raises :class:`ConfigError` naming the fix."""
    if task.kind == "digits":
        return [str(d) for d in range(10)]
    if task.kind == "cifar10":
        root = Path(data_root) if data_root is not None else default_data_root()
        missing = [f for f in CIFAR10_FILES if not (root / _CIFAR10_FOLDER / f).is_file()]
        if missing and not download:
            raise ConfigError(_cifar_missing_message(root, missing))
        return ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    return _imagefolder_classes(task.path)


def _cifar_missing_message(root: Path, missing: list[str]) -> str:
    folder = root / _CIFAR10_FOLDER
    what = f"{folder} does not exist" if len(missing) == len(CIFAR10_FILES) else f"{folder} lacks {', '.join(missing)}"
    return (
        f"CIFAR-10 not found: {what}. Extract the python "
        f"version ({_CIFAR10_URL}) so that {root / _CIFAR10_FOLDER}/data_batch_1 exists, or set "
        f"data_root (or ERA_DATA_DIR) to the folder holding {_CIFAR10_FOLDER}, or allow the download "
        f"with the setting download: true (--set download=true)"
    )


def _imagefolder_classes(path: Path | None) -> list[str]:
    from torchvision.datasets.folder import find_classes

    layout = f"{path}/train/CLASS/*.jpg and {path}/val/CLASS/*.jpg"
    if path is None or not path.is_dir():
        raise ConfigError(f"ImageFolder root {path} does not exist: point imagenet:PATH at a folder with {layout}")
    classes = {}
    for split in ("train", "val"):
        try:
            classes[split] = find_classes(str(path / split))[0]
        except (FileNotFoundError, NotADirectoryError) as error:
            raise ConfigError(f"ImageFolder split {path / split} is missing or has no class folders ({error}): "
                              f"lay the data out as {layout}") from error
    if classes["train"] != classes["val"]:
        only = sorted(set(classes["train"]) ^ set(classes["val"]))
        raise ConfigError(f"ImageFolder {path}: train and val have different class folders ({', '.join(only[:10])}"
                          f"{'...' if len(only) > 10 else ''}): give both splits the same classes")
    if len(classes["train"]) < 2:
        raise ConfigError(f"ImageFolder {path} has {len(classes['train'])} class folder(s): a classifier needs at least 2")
    return classes["train"]


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
            f"CIFAR-10 in {root / _CIFAR10_FOLDER} failed torchvision's integrity check ({error}): "
            f"re-extract the official archive ({_CIFAR10_URL}) there, or allow the download with "
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
