"""How long one CIFAR-10 training epoch takes here, with and without ERA, extrapolated.

Times real SGD steps (forward, backward, update) of a torchvision classifier with the CIFAR stem
on CIFAR-shaped batches (B x 3 x 32 x 32, random values: the arithmetic does not depend on them),
alternating the plain and the ERA model step by step so that both see the same machine load.
Prints seconds per batch (wall and this process's CPU time: on a shared machine the wall time
depends on the load, printed too), images per second, the epoch time *extrapolated* to CIFAR-10's
50,000 training images (data loading excluded), and the ERA/plain ratio (the paper claims < 7%
overhead).

    .venv/bin/python benchmarks/cifar_epoch_time.py --batches 8 --batch-size 128
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch import nn

from adapters.era import SoftmaxERA
from adapters.vision.models import build_classifier

CIFAR10_TRAIN_IMAGES = 50_000


def _step(model: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, targets: torch.Tensor) -> tuple[float, float]:
    """One SGD step; returns (wall seconds, CPU seconds of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    loss = nn.functional.cross_entropy(model(images), targets)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", default="resnet18")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=8, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per variant first")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = {
        "plain": build_classifier(args.architecture, 10, 32),
        "era": build_classifier(args.architecture, 10, 32, head_layers=(SoftmaxERA(10, 0.6),)),
    }
    optimizers = {name: torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4) for name, m in models.items()}
    images = torch.randn(args.batch_size, 3, 32, 32)
    targets = torch.randint(0, 10, (args.batch_size,))
    times: dict[str, list[float]] = {name: [] for name in models}
    cpu_times: dict[str, list[float]] = {name: [] for name in models}
    load_before = os.getloadavg()[0]
    for i in range(args.warmup + args.batches):
        for name, model in models.items():
            model.train()
            wall, cpu = _step(model, optimizers[name], images, targets)
            if i >= args.warmup:
                times[name].append(wall)
                cpu_times[name].append(cpu)

    print(f"{args.architecture} (CIFAR stem), batch {args.batch_size} x 3 x 32 x 32, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {args.batches} timed steps per variant after {args.warmup} warm-up; "
          f"1-min load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    medians = {}
    steps_per_epoch = CIFAR10_TRAIN_IMAGES / args.batch_size
    for name, samples in times.items():
        median, cpu = statistics.median(samples), statistics.median(cpu_times[name])
        medians[name] = median
        print(f"  {name:5s}: {median:.3f} s/batch wall (min {min(samples):.3f}, max {max(samples):.3f}), "
              f"{args.batch_size / median:.1f} img/s; {cpu:.3f} CPU-s/batch. One epoch of "
              f"{CIFAR10_TRAIN_IMAGES:,} images, extrapolated: {steps_per_epoch * median / 60:.1f} min wall, "
              f"{steps_per_epoch * cpu / 60:.1f} CPU-min")
    print(f"  ERA/plain wall time per step: {medians['era'] / medians['plain']:.3f}")


if __name__ == "__main__":
    main()
