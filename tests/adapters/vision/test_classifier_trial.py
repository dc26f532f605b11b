"""Vision trials end to end (adapters.vision): learning on real data, exact resume, `era trial`."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from adapters.trial.checkpoint import TrialCheckpoint
from adapters.errors import TrainingDivergedError
from adapters.trial import EvalRecord, TrialSpec, run_trial
from adapters.vision import resolve_settings
from adapters.vision.training import build_loss, build_model
from harness.cli import main as era_main

# digits at their native 8x8 (with the CIFAR stem, resnet18 keeps 1x1 maps in its last stage):
# the same real data as the 32-pixel default, about 16x cheaper per image
DIGITS = TrialSpec(algo="resnet-era", task="digits", seed=0, budget=2, settings={"image_size": 8})
METRICS = {"top5", "nll", "ece", "entropy_min", "train_loss", "train_top1"}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Train on one thread: convolutions on 8x8 maps gain little from a second one, and on a busy
    2-core machine two OpenMP threads waiting on each other ran these tests up to 7x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _comparable(record: EvalRecord) -> dict[str, float]:
    row = record.as_row()
    row.pop("wall_time_s")
    return row


@pytest.fixture(scope="module")
def uninterrupted() -> list[EvalRecord]:
    return list(run_trial(DIGITS))


def test_resnet_era_learns_digits_above_the_entropy_floor(uninterrupted: list[EvalRecord]) -> None:
    assert [r.step for r in uninterrupted] == [1, 2]
    final = uninterrupted[-1]
    assert final.score >= 85.0, final
    assert set(final.metrics) == METRICS
    assert final.metrics["entropy_min"] >= 0.6 - 0.01  # docs/era.md, section 2: series floor within 0.01
    assert final.entropy >= final.metrics["entropy_min"]
    assert final.metrics["top5"] >= final.score and 0.0 <= final.metrics["ece"] <= 1.0
    assert uninterrupted[0].wall_time_s < final.wall_time_s


def test_resumed_run_continues_from_saved_epoch(uninterrupted: list[EvalRecord], tmp_path: Path) -> None:
    """Stop after epoch 1, resume from the checkpoint: epoch 2 repeats the uninterrupted run."""
    first = run_trial(DIGITS, tmp_path)
    epoch1 = next(first)
    first.close()
    assert epoch1.step == 1 and (tmp_path / "current" / "state.pt").exists()
    state = torch.load(tmp_path / "current" / "state.pt", weights_only=True)
    assert state["epoch"] == 1 and {"model", "optimizer", "scheduler", "torch_rng", "loader_rng"} <= set(state)

    resumed = list(run_trial(DIGITS, tmp_path))
    assert [r.step for r in resumed] == [2]
    assert _comparable(epoch1) == _comparable(uninterrupted[0])  # same seed, same numbers
    assert _comparable(resumed[0]) == _comparable(uninterrupted[1])  # exact: every bit of every metric
    assert resumed[0].wall_time_s > epoch1.wall_time_s  # cumulative across the resume
    assert [r.step for r in TrialCheckpoint(tmp_path).records()] == [1, 2]
    assert list(run_trial(DIGITS, tmp_path)) == []  # budget done: nothing new


def test_label_smoothing_loss_matches_its_definition() -> None:
    settings = resolve_settings(TrialSpec(algo="resnet-ls", task="digits", seed=0, budget=1))
    generator = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(32, 10, generator=generator) * 3, torch.randint(0, 10, (32,), generator=generator)
    log_p = torch.log_softmax(logits, dim=-1)
    expected = (0.9 * -log_p.gather(1, targets[:, None]).squeeze(1) + 0.1 * -log_p.mean(dim=-1)).mean()
    assert float(build_loss(settings)(logits, targets)) == pytest.approx(float(expected), rel=1e-6)


def test_dropout_baseline_drops_features_before_the_classifier_in_training_only() -> None:
    settings = resolve_settings(TrialSpec(algo="resnet-dropout", task="digits", seed=0, budget=1,
                                          settings={"image_size": 8, "dropout": 0.5}))
    model = build_model("resnet-dropout", settings, 10)
    assert isinstance(model.fc[0], nn.Dropout) and isinstance(model.fc[1], nn.Linear)
    seen: dict[str, torch.Tensor] = {}
    model.fc[0].register_forward_pre_hook(lambda m, args: seen.__setitem__("features", args[0]))
    model.fc[1].register_forward_pre_hook(lambda m, args: seen.__setitem__("dropped", args[0]))
    x = torch.randn(16, 3, 8, 8)
    with torch.no_grad():
        model.eval()
        assert torch.equal(model(x), model(x)) and torch.equal(seen["features"], seen["dropped"])
        model.train()
        model(x)
    features, dropped = seen["features"], seen["dropped"]
    alive = features != 0
    kept = dropped[alive] != 0
    assert 0.35 < float(kept.float().mean()) < 0.65  # p = 0.5 of the non-zero features dropped
    assert torch.allclose(dropped[alive][kept], 2.0 * features[alive][kept])  # survivors scaled by 1/(1-p)


def test_era_trial_command_writes_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code = era_main(["trial", "--algo", "resnet-ls", "--task", "digits", "--seed", "1", "--epochs", "1",
                     "--set", "image_size=8", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    frame = pd.read_parquet(out / "results.parquet")
    assert list(frame["step"]) == [1] and set(frame["algo"]) == {"resnet-ls"}
    assert {"score", "entropy", "wall_time_s"} | METRICS <= set(frame.columns)
    assert 0.0 <= frame["score"].iloc[0] <= 100.0 and math.isfinite(frame["nll"].iloc[0])
    expected = "cuda:0 (" if torch.cuda.is_available() else "cpu"  # --device auto, as resolved here
    assert pd.read_parquet(out / "trials.parquet")["device"].iloc[0].startswith(expected)


def test_era_trial_bad_input_exits_2_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bad"
    assert era_main(["trial", "--algo", "resnet-era", "--task", "digits", "--epochs", "1",
                     "--set", "width=2", "--out", str(out)]) == 2
    assert "unknown setting(s) width" in capsys.readouterr().err
    assert era_main(["trial", "--algo", "resnet", "--task", "cifar10", "--epochs", "1",
                     "--set", f"data_root={tmp_path / 'none'}", "--out", str(out)]) == 2
    assert "download: true" in capsys.readouterr().err
    assert not out.exists()


def test_imagefolder_trial(tmp_path: Path) -> None:
    from PIL import Image

    for split in ("train", "val"):
        for name, colour in {"red": (220, 20, 20), "blue": (20, 20, 220)}.items():
            (tmp_path / split / name).mkdir(parents=True)
            for i in range(4):
                Image.new("RGB", (20, 20), colour).save(tmp_path / split / name / f"{i}.png")
    spec = TrialSpec(algo="resnet-dropout", task=f"imagenet:{tmp_path}", seed=0, budget=1,
                     settings={"image_size": 16, "batch_size": 4})
    (record,) = list(run_trial(spec))
    assert record.step == 1 and record.metrics["top5"] == 100.0  # two classes
    assert record.entropy <= math.log(2) + 1e-6


def test_divergence_raises_training_diverged(tmp_path: Path) -> None:
    spec = TrialSpec(algo="resnet", task="digits", seed=0, budget=1, settings={"image_size": 8, "lr": 1e12})
    with pytest.raises(TrainingDivergedError, match="non-finite training loss in epoch 1: lower the setting lr"):
        list(run_trial(spec, tmp_path))
    assert TrialCheckpoint(tmp_path).records() == []  # nothing saved from the diverged epoch


@pytest.mark.slow
def test_acceptance_default_digits_run(tmp_path: Path) -> None:
    """The issue's acceptance command with every default (32x32 digits, resnet18): 3 epochs."""
    code = era_main(["trial", "--algo", "resnet-era", "--task", "digits", "--seed", "0", "--epochs", "3",
                     "--out", str(tmp_path)])
    assert code == 0
    final = pd.read_parquet(tmp_path / "results.parquet").iloc[-1]
    assert final["step"] == 3 and final["score"] > 85.0
    assert final["entropy_min"] >= 0.6 - 0.01


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_runs_mixed_precision_channels_last() -> None:
    from adapters.vision.training import build_trainer

    spec = TrialSpec(algo="resnet-era", task="digits", seed=0, budget=2, device="cuda", settings={"image_size": 32})
    trainer = build_trainer(spec, resolve_settings(spec))
    assert trainer.amp_dtype in (torch.bfloat16, torch.float16)
    assert trainer.model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    final = list(run_trial(spec))[-1]
    assert final.score >= 85.0
    assert final.metrics["entropy_min"] >= 0.6 - 0.05  # ERA in fp32, output cast to bf16 (spec: |dH| small)
