"""Held-out metrics of a classifier: top-1/top-5 accuracy, NLL, calibration error and entropy.

All metrics are computed from the model's *output* logits, i.e. after ``SoftmaxERA`` for the ERA
variant (docs/era.md, section 2: ERA stays on at eval, and the loss sees the same output), so they describe
the distribution the classifier actually predicts. Accumulation is streaming so that ImageNet's
50,000 validation images never need their logits held in memory at once.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from adapters.era import softmax_entropy

__all__ = ["ECE_BINS", "MetricAccumulator", "classification_metrics"]

#: Equal-width confidence bins of the expected calibration error (Guo et al. 2017 use 15).
ECE_BINS = 15


class MetricAccumulator:
    """Streaming sums for :func:`classification_metrics`; feed batches, then :meth:`compute`.

    Args:
        num_bins: number of equal-width confidence bins ``(i/n, (i+1)/n]`` for the ECE.
    """

    def __init__(self, num_bins: int = ECE_BINS) -> None:
        if num_bins < 1:
            raise ValueError(f"num_bins must be >= 1, got {num_bins}")
        self.num_bins = num_bins
        self.count = 0
        self.correct1 = 0
        self.correct5 = 0
        self.nll_sum = 0.0
        self.entropy_sum = 0.0
        self.entropy_min = math.inf
        self.bin_count = torch.zeros(num_bins, dtype=torch.float64)
        self.bin_confidence = torch.zeros(num_bins, dtype=torch.float64)
        self.bin_correct = torch.zeros(num_bins, dtype=torch.float64)

    @torch.no_grad()
    def update(self, logits: Tensor, targets: Tensor, ranking: Tensor | None = None) -> None:
        """Add a batch: ``logits`` (B, C) of any float dtype, ``targets`` (B,) class indices.

        ``ranking`` (B, C), if given, orders the classes for top-1/top-5 instead of ``logits``:
        pass the logits *before* ``SoftmaxERA``. ERA is strictly increasing in p, so in exact
        arithmetic both orders agree, but in fp32 every class whose probability is below ~1e-8
        maps to the same output (``slope·p + b`` rounds to ``b``; docs/era.md, section 2, "top-5 set
        changes via fp32 ties"), and top-5 would then depend on class indices.
        """
        logits = logits.detach().float()
        targets = targets.detach().to(logits.device).long()
        log_p = torch.log_softmax(logits, dim=-1)
        k = min(5, logits.shape[-1])
        order = log_p if ranking is None else ranking.detach().float().to(logits.device)
        if order.shape != logits.shape:
            raise ValueError(f"ranking has shape {tuple(order.shape)}, logits {tuple(logits.shape)}")
        top = order.topk(k, dim=-1).indices
        hits = top == targets[:, None]
        predicted = top[:, 0]
        confidence = log_p.gather(1, predicted[:, None]).squeeze(1).exp().double().cpu()
        correct = (predicted == targets).double().cpu()
        entropy = softmax_entropy(logits)

        self.count += int(targets.numel())
        self.correct1 += int(hits[:, 0].sum())
        self.correct5 += int(hits.any(dim=-1).sum())
        self.nll_sum += float(-log_p.gather(1, targets[:, None]).sum())
        self.entropy_sum += float(entropy.sum())
        if entropy.numel():
            self.entropy_min = min(self.entropy_min, float(entropy.min()))
        # bin i holds confidences in (i/n, (i+1)/n]; confidences are >= 1/C > 0
        bins = (torch.ceil(confidence * self.num_bins).long() - 1).clamp(0, self.num_bins - 1)
        self.bin_count.index_add_(0, bins, torch.ones_like(confidence))
        self.bin_confidence.index_add_(0, bins, confidence)
        self.bin_correct.index_add_(0, bins, correct)

    def compute(self) -> dict[str, float]:
        """``top1`` and ``top5`` in percent, mean ``nll``, ``ece`` in [0, 1], mean and minimum
        ``entropy`` (nats) of the predictive distribution."""
        if self.count == 0:
            raise ValueError("no samples were accumulated")
        ece = float((self.bin_confidence - self.bin_correct).abs().sum() / self.count)
        return {
            "top1": 100.0 * self.correct1 / self.count,
            "top5": 100.0 * self.correct5 / self.count,
            "nll": self.nll_sum / self.count,
            "ece": ece,
            "entropy": self.entropy_sum / self.count,
            "entropy_min": self.entropy_min,
        }


def classification_metrics(
    logits: Tensor, targets: Tensor, ranking: Tensor | None = None, num_bins: int = ECE_BINS
) -> dict[str, float]:
    """All metrics of one tensor of logits ``(N, C)`` against ``targets`` ``(N,)``.

    ECE = Σ_b (|B_b|/N)·|acc(B_b) − conf(B_b)| over equal-width bins of the top-1 confidence
    (the predicted class is the argmax, which ``ranking`` never changes for ERA).
    """
    accumulator = MetricAccumulator(num_bins)
    accumulator.update(logits, targets, ranking)
    return accumulator.compute()
