"""Image-classification task ids and the check that their data is there, without torch.

``digits`` (scikit-learn's bundled 8x8 digits), ``cifar10`` (the python version of CIFAR-10 in a
data folder) and ``imagenet:PATH`` (any ImageFolder tree: ``PATH/train/CLASS/*`` and
``PATH/val/CLASS/*``). Validation reads only this module; :mod:`adapters.vision.data` builds the
datasets.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from adapters.errors import ConfigError, unknown_name

__all__ = ["TASK_IDS", "CIFAR10_FILES", "CIFAR10_FOLDER", "CIFAR10_URL", "VisionTask", "parse_task",
           "default_data_root", "check_task_data"]

#: the task ids this module knows, as listed in errors
TASK_IDS = ("digits", "cifar10", "imagenet:<path>")

#: files of the python version of CIFAR-10, inside ``ROOT/cifar-10-batches-py``
CIFAR10_FILES = (
    "data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
    "test_batch", "batches.meta",
)
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


@dataclass(frozen=True)
class VisionTask:
    """A parsed task id: ``kind`` is ``digits``, ``cifar10`` or ``imagenet``; ``path`` is the
    ImageFolder root of ``imagenet:PATH``."""

    kind: str
    path: Path | None = None


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
        missing = [f for f in CIFAR10_FILES if not (root / CIFAR10_FOLDER / f).is_file()]
        if missing and not download:
            raise ConfigError(_cifar_missing_message(root, missing))
        return ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    return _imagefolder_classes(task.path)


def _cifar_missing_message(root: Path, missing: list[str]) -> str:
    folder = root / CIFAR10_FOLDER
    what = f"{folder} does not exist" if len(missing) == len(CIFAR10_FILES) else f"{folder} lacks {', '.join(missing)}"
    return (
        f"CIFAR-10 not found: {what}. Extract the python "
        f"version ({CIFAR10_URL}) so that {root / CIFAR10_FOLDER}/data_batch_1 exists, or set "
        f"data_root (or ERA_DATA_DIR) to the folder holding {CIFAR10_FOLDER}, or allow the download "
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
