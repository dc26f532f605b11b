"""Vision task ids -> datasets (adapters.vision.data): CIFAR-10 through torchvision's own CIFAR10
class on a small generated archive, ImageFolder on a generated tree, scikit-learn digits."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from adapters.errors import ConfigError, UnknownNameError
from adapters.vision.data import (
    CIFAR10_FILES,
    build_datasets,
    check_task_data,
    digits_split,
    parse_task,
)

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
PER_BATCH = 4


def write_cifar10(root: Path, per_batch: int = PER_BATCH, seed: int = 0) -> dict[str, np.ndarray]:
    """Write CIFAR-10's python layout (pickled dicts, rows of 3072 uint8 in CHW order, as in the
    official archive) into ``root/cifar-10-batches-py``; returns the arrays written."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written = {}
    for name in CIFAR10_FILES[:-1]:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = [int(x) for x in rng.integers(0, 10, size=per_batch)]
        batch = {"batch_label": name, "labels": labels, "data": data, "filenames": [f"{name}_{i}.png" for i in range(per_batch)]}
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle, protocol=2)
        written[name] = (data, labels)
    meta = {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
            "num_cases_per_batch": per_batch, "num_vis": 3072}
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump(meta, handle, protocol=2)
    return written


def md5s(root: Path) -> dict[str, str]:
    folder = root / "cifar-10-batches-py"
    return {name: hashlib.md5((folder / name).read_bytes()).hexdigest() for name in CIFAR10_FILES}


def test_cifar10_read_by_torchvision_with_their_checksums(tmp_path: Path) -> None:
    written = write_cifar10(tmp_path)
    data = build_datasets(parse_task("cifar10"), 32, data_root=tmp_path, cifar_checksums=md5s(tmp_path))
    assert len(data.train) == 5 * PER_BATCH and len(data.test) == PER_BATCH
    assert data.num_classes == 10 and data.classes[0] == "airplane"
    # the second image of data_batch_2, pixel (row 5, col 7) of each channel, normalised
    raw, labels = written["data_batch_2"]
    image, label = data.train[PER_BATCH + 1]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert label == labels[1]
    for channel in range(3):
        expected = (raw[1, channel * 1024 + 5 * 32 + 7] / 255.0 - CIFAR_MEAN[channel]) / CIFAR_STD[channel]
        assert float(image[channel, 5, 7]) == pytest.approx(expected, abs=1e-5)
    test_raw, test_labels = written["test_batch"]
    image, label = data.test[3]
    assert label == test_labels[3]
    assert float(image[2, 31, 0]) == pytest.approx((test_raw[3, 2048 + 31 * 32] / 255.0 - CIFAR_MEAN[2]) / CIFAR_STD[2], abs=1e-5)


def test_cifar10_official_checksums_reject_generated_files(tmp_path: Path) -> None:
    """torchvision checks every file against the published md5s: the generated copy fails it and
    the error says how to fix it."""
    write_cifar10(tmp_path)
    with pytest.raises(ConfigError, match=r"integrity check.*download: true"):
        build_datasets(parse_task("cifar10"), 32, data_root=tmp_path)


def test_cifar10_missing_says_where_and_how(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        check_task_data(parse_task("cifar10"), tmp_path)
    message = str(error.value)
    assert str(tmp_path / "cifar-10-batches-py") in message and "download: true" in message
    # one missing file is named
    write_cifar10(tmp_path / "partial")
    (tmp_path / "partial" / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(ConfigError, match="lacks data_batch_3"):
        check_task_data(parse_task("cifar10"), tmp_path / "partial")
    # asking for the download passes the cheap check (the download itself happens in run)
    assert len(check_task_data(parse_task("cifar10"), tmp_path, download=True)) == 10


def test_cifar10_standard_augmentation_crops_and_flips(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    sums = md5s(tmp_path)
    plain = build_datasets(parse_task("cifar10"), 32, "none", tmp_path, cifar_checksums=sums)
    augmented = build_datasets(parse_task("cifar10"), 32, "standard", tmp_path, cifar_checksums=sums)
    torch.manual_seed(0)
    views = [augmented.train[0][0] for _ in range(8)]
    assert all(v.shape == (3, 32, 32) for v in views)
    assert any(not torch.equal(v, plain.train[0][0]) for v in views)
    assert torch.equal(augmented.test[0][0], plain.test[0][0])  # held-out images never augmented


def write_image_tree(root: Path, classes: dict[str, tuple[int, int, int]], per_class: int = 3) -> None:
    from PIL import Image

    for split in ("train", "val"):
        for name, colour in classes.items():
            (root / split / name).mkdir(parents=True)
            for i in range(per_class):
                Image.new("RGB", (40 + i, 30), colour).save(root / split / name / f"{i}.png")


def test_imagefolder_tree(tmp_path: Path) -> None:
    write_image_tree(tmp_path, {"cat": (255, 0, 0), "dog": (0, 0, 255)})
    task = parse_task(f"imagenet:{tmp_path}")
    data = build_datasets(task, 24, "standard")
    assert data.classes == ["cat", "dog"] and len(data.train) == 6 and len(data.test) == 6
    image, label = data.test[4]  # val/dog/1.png: pure blue, normalised with ImageNet statistics
    assert image.shape == (3, 24, 24) and label == 1
    assert float(image[2].mean()) == pytest.approx((1.0 - 0.406) / 0.225, abs=1e-3)
    assert float(image[0].mean()) == pytest.approx((0.0 - 0.485) / 0.229, abs=1e-3)
    assert data.train[0][0].shape == (3, 24, 24) and data.train[0][1] == 0


def test_imagefolder_layout_errors(tmp_path: Path) -> None:
    write_image_tree(tmp_path / "a", {"cat": (1, 2, 3), "dog": (4, 5, 6)})
    (tmp_path / "a" / "val" / "dog").rename(tmp_path / "a" / "val" / "wolf")
    with pytest.raises(ConfigError, match="different class folders"):
        check_task_data(parse_task(f"imagenet:{tmp_path / 'a'}"))
    (tmp_path / "b" / "train" / "cat").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"val is missing"):
        check_task_data(parse_task(f"imagenet:{tmp_path / 'b'}"))
    with pytest.raises(ConfigError, match="does not exist"):
        check_task_data(parse_task(f"imagenet:{tmp_path / 'nowhere'}"))


def test_digits_split_is_fixed_and_stratified() -> None:
    x_train, x_test, y_train, y_test = digits_split()
    assert x_train.shape == (1437, 8, 8) and x_test.shape == (360, 8, 8)
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0
    # stratified: every class keeps its share of the test set (within one image)
    train_counts, test_counts = np.bincount(y_train), np.bincount(y_test)
    assert np.all(np.abs(test_counts - (train_counts + test_counts) * 0.2) <= 1)
    again = digits_split()
    assert np.array_equal(again[1], x_test) and np.array_equal(again[3], y_test)


def test_digits_datasets() -> None:
    data = build_datasets(parse_task("digits"), 16)
    image, label = data.test[0]
    assert image.shape == (3, 16, 16) and 0 <= label < 10 and data.num_classes == 10
    assert torch.equal(image[0], image[1])  # grey replicated to three channels
    stack = torch.stack([data.train[i][0] for i in range(len(data.train))])
    assert float(stack.mean()) == pytest.approx(0.0, abs=1e-4) and float(stack.std()) == pytest.approx(1.0, abs=1e-2)


def test_unknown_task_lists_known() -> None:
    with pytest.raises(UnknownNameError, match=r"cifar10, digits, imagenet:<path>"):
        parse_task("mnist")
    with pytest.raises(ConfigError, match="imagenet:PATH"):
        parse_task("imagenet:")
