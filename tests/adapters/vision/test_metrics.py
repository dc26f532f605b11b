"""Held-out metrics (adapters.vision.metrics) against an independent numpy computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from adapters.era import SoftmaxERA
from adapters.vision.metrics import MetricAccumulator, classification_metrics


def _reference(logits: np.ndarray, targets: np.ndarray, num_bins: int) -> dict[str, float]:
    """Textbook definitions, written independently of the module under test (float64 numpy)."""
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    order = np.argsort(-p, axis=1, kind="stable")
    top1 = np.mean(order[:, 0] == targets) * 100
    top5 = np.mean([t in row[:5] for row, t in zip(order, targets)]) * 100
    nll = -np.mean(np.log(p[np.arange(len(targets)), targets]))
    entropy = -(p * np.log(p)).sum(axis=1)
    confidence = p.max(axis=1)
    correct = p.argmax(axis=1) == targets
    ece = 0.0
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    for low, high in zip(edges[:-1], edges[1:]):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return {"top1": top1, "top5": top5, "nll": nll, "ece": ece, "entropy": entropy.mean(), "entropy_min": entropy.min()}


def test_hand_computed_case() -> None:
    # probabilities (0.95, 0.05), (0.85, 0.15), (0.65, 0.35), (0.25, 0.75); targets 0, 1, 0, 1:
    # three right; each sample alone in a bin, so ECE = (0.05 + 0.85 + 0.35 + 0.25) / 4 = 0.375
    probs = torch.tensor([[0.95, 0.05], [0.85, 0.15], [0.65, 0.35], [0.25, 0.75]], dtype=torch.float64)
    metrics = classification_metrics(probs.log(), torch.tensor([0, 1, 0, 1]), num_bins=10)
    assert metrics["top1"] == pytest.approx(75.0)
    assert metrics["top5"] == pytest.approx(100.0)  # two classes: top-k is top-2
    assert metrics["ece"] == pytest.approx(0.375, abs=1e-6)
    nll = -(math.log(0.95) + math.log(0.15) + math.log(0.65) + math.log(0.75)) / 4
    assert metrics["nll"] == pytest.approx(nll, abs=1e-6)


@pytest.mark.parametrize("scale", [0.5, 3.0, 10.0])
def test_matches_independent_computation_on_fixed_tensor(scale: float) -> None:
    generator = torch.Generator().manual_seed(7)
    logits = torch.randn(500, 10, generator=generator, dtype=torch.float64) * scale
    targets = torch.randint(0, 10, (500,), generator=generator)
    # make about half the rows right so accuracy and calibration are not trivial
    targets[::2] = logits[::2].argmax(dim=1)
    expected = _reference(logits.numpy(), targets.numpy(), num_bins=15)
    got = classification_metrics(logits, targets, num_bins=15)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-5), key
    assert 0.0 < got["ece"] < 1.0 and got["top1"] < got["top5"] < 100.0


def test_streaming_equals_one_shot() -> None:
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(300, 7, generator=generator) * 4
    targets = torch.randint(0, 7, (300,), generator=generator)
    accumulator = MetricAccumulator()
    for start in range(0, 300, 64):
        accumulator.update(logits[start:start + 64], targets[start:start + 64])
    streamed, whole = accumulator.compute(), classification_metrics(logits, targets)
    assert streamed == pytest.approx(whole, rel=1e-6)


def test_era_output_ties_need_the_raw_ranking() -> None:
    """Confident logits through SoftmaxERA tie every improbable class in fp32 (docs/era.md, section 2);
    ranking by the logits entering ERA gives the exact-arithmetic top-5."""
    generator = torch.Generator().manual_seed(0)
    raw = torch.randn(400, 10, generator=generator) * 40
    targets = raw.topk(5, dim=1).indices[:, 4]  # the 5th most likely class: top-5 hits, top-1 misses
    era_out = SoftmaxERA(10, 0.6)(raw)
    assert (era_out.topk(2, dim=1).values[:, 1] == era_out.topk(10, dim=1).values[:, -1]).float().mean() > 0.5
    naive = classification_metrics(era_out, targets)
    ranked = classification_metrics(era_out, targets, ranking=raw)
    assert ranked["top5"] == pytest.approx(100.0)
    assert ranked["top1"] == naive["top1"] == pytest.approx(0.0)  # ERA keeps the argmax
    assert naive["top5"] < 90.0  # ties broken by class index lose some of them
    assert ranked["entropy"] == naive["entropy"] and ranked["nll"] == naive["nll"]
