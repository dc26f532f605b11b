"""Forward+backward time with and without ERA, measured side by side in one process.

(a) an SAC-sized actor (2x256 MLP, batch 256, action dim 17): SB3-style clamped log-std vs
    GaussianERA; (b) torchvision ResNet-18 on 10 classes (batch 32, 32x32 images): plain head vs
    SoftmaxERA head. Timings alternate between the two variants so that background load hits both
    alike; the ratio of medians is printed, with a 95% bootstrap interval over the paired repeats.
    The paper claims < 7% overhead; our goal is <= 3%.

    python benchmarks/era_overhead.py [--repeats 200] [--device cuda --resnet50 --bf16] [--out DIR]

``--out DIR`` also writes ``DIR/era_overhead.json`` (what the board of reports/README.md reads for
the overhead claim) and ``DIR/era_overhead.md``, with the machine's load before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import torch
from torch import nn

from adapters.era import GaussianERA, SoftmaxERA


class Actor(nn.Module):
    def __init__(self, obs_dim: int, action_dim: int, era: bool) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(obs_dim, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU())
        self.mu = nn.Linear(256, action_dim)
        self.log_std = nn.Linear(256, action_dim)
        self.era = GaussianERA(action_dim, 0.25 * action_dim) if era else None

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        latent = self.body(obs)
        mean, raw = self.mu(latent), self.log_std(latent)
        if self.era is None:
            log_std = torch.clamp(raw, -20.0, 2.0)  # SB3's SAC actor
        else:
            mean, log_std = self.era(mean, raw)
        action = mean + log_std.exp() * torch.randn_like(mean)  # reparameterised sample
        return action


def _time_pair(step_a: Callable[[], None], step_b: Callable[[], None], repeats: int,
               sync) -> tuple[list[float], list[float]]:
    """Seconds per step of each, ``repeats`` times, the two alternating (after a warm-up)."""
    for _ in range(max(5, repeats // 10)):  # warm-up
        step_a()
        step_b()
    times_a, times_b = [], []
    for _ in range(repeats):
        for step, times in ((step_a, times_a), (step_b, times_b)):
            sync()
            start = time.perf_counter()
            step()
            sync()
            times.append(time.perf_counter() - start)
    return times_a, times_b


def ratio_of_medians(plain: list[float], era: list[float], reps: int = 2000, seed: int = 0) -> tuple[float, list[float]]:
    """median(era) / median(plain) and its 95% percentile bootstrap interval, resampling the repeats
    in pairs (each pair was timed back to back, so it shared the machine's load)."""
    a, b = np.asarray(plain), np.asarray(era)
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(a), size=(reps, len(a)))
    ratios = np.median(b[index], axis=1) / np.median(a[index], axis=1)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(np.median(b) / np.median(a)), [float(low), float(high)]


def _measurement(name: str, plain: list[float], era: list[float]) -> dict:
    ratio, ci = ratio_of_medians(plain, era)
    return {"name": name, "plain_ms": round(statistics.median(plain) * 1e3, 4),
            "era_ms": round(statistics.median(era) * 1e3, 4), "ratio": round(ratio, 4),
            "ratio_ci": [round(v, 4) for v in ci], "repeats": len(plain)}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _markdown(result: dict) -> str:
    load = result["load"]
    lines = [
        "# ERA's overhead: forward + backward time with and without ERA", "",
        f"Command: `{result['command']}`", "",
        f"Device: {result['device']} ({result['cpu_model']}, {load['cpus']} logical CPUs, torch {result['torch']}, "
        f"{result['threads']} thread(s), niceness {load['nice']}). Load average (1, 5, 15 min) before: "
        f"{', '.join(f'{v:.2f}' for v in load['before'])}; after: {', '.join(f'{v:.2f}' for v in load['after'])}. "
        "The two variants alternate step by step, so load hits both alike and the ratio stays usable on a busy "
        "machine; the interval is a 95% bootstrap over the paired repeats: it covers the noise within this run, "
        "not the drift between runs while the machine's load changes.", "",
        "| Measurement | Plain (ms) | ERA (ms) | ERA / plain | 95% interval | Repeats |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {m['name']} | {m['plain_ms']:.3f} | {m['era_ms']:.3f} | {m['ratio']:.3f} | "
              f"[{m['ratio_ci'][0]:.3f}, {m['ratio_ci'][1]:.3f}] | {m['repeats']} |" for m in result["measurements"]]
    lines += ["", "The paper claims an overhead below 7% (ratio < 1.07); the board (reports/README.md) reads "
              "`era_overhead.json` beside this file.", ""]
    return "\n".join(lines)


def write_result(result: dict, out: Path) -> None:
    """``out/era_overhead.json`` and ``out/era_overhead.md``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "era_overhead.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    (out / "era_overhead.md").write_text(_markdown(result))


def _train_step(model: nn.Module, inputs: torch.Tensor, loss_fn, autocast_dtype=None) -> Callable[[], None]:
    params = list(model.parameters())

    def step() -> None:
        for p in params:
            p.grad = None
        with torch.autocast(inputs.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            loss = loss_fn(model(inputs))
        loss.backward()

    return step


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--resnet50", action="store_true", help="ResNet-50 at batch 256, 224x224 (GPU check)")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default torch's; 1 keeps a busy machine's timings steadier)")
    parser.add_argument("--out", type=Path, default=None,
                        help="also write era_overhead.json and era_overhead.md into this folder")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    autocast = torch.bfloat16 if args.bf16 else None
    torch.manual_seed(0)

    obs = torch.randn(256, 67, device=device)
    plain, era = Actor(67, 17, era=False).to(device), Actor(67, 17, era=True).to(device)
    era.load_state_dict(plain.state_dict(), strict=False)
    times = _time_pair(
        _train_step(plain, obs, lambda a: a.square().mean(), autocast),
        _train_step(era, obs, lambda a: a.square().mean(), autocast),
        args.repeats,
        sync,
    )
    actor = _measurement(f"SAC actor (2x256, batch 256, D=17{', bf16' if args.bf16 else ''})", *times)
    print(f"{actor['name']}: plain {actor['plain_ms']:.3f} ms, ERA {actor['era_ms']:.3f} ms, "
          f"ratio ERA/plain {actor['ratio']:.3f} [{actor['ratio_ci'][0]:.3f}, {actor['ratio_ci'][1]:.3f}]")

    import torchvision

    name, batch, size, classes = ("resnet50", 256, 224, 1000) if args.resnet50 else ("resnet18", 32, 32, 10)
    images = torch.randn(batch, 3, size, size, device=device)
    labels = torch.randint(0, classes, (batch,), device=device)
    plain_net = getattr(torchvision.models, name)(num_classes=classes).to(device)
    era_net = getattr(torchvision.models, name)(num_classes=classes)
    era_net.load_state_dict(plain_net.state_dict())
    era_net.fc = nn.Sequential(era_net.fc, SoftmaxERA(classes, 0.6))
    era_net = era_net.to(device)
    if device.type == "cuda":
        plain_net = plain_net.to(memory_format=torch.channels_last)
        era_net = era_net.to(memory_format=torch.channels_last)
        images = images.to(memory_format=torch.channels_last)
    loss = nn.CrossEntropyLoss()
    repeats = max(10, args.repeats // 10)
    times = _time_pair(
        _train_step(plain_net, images, lambda z: loss(z.float(), labels), autocast),
        _train_step(era_net, images, lambda z: loss(z.float(), labels), autocast),
        repeats,
        sync,
    )
    head = _measurement(f"{name} head ({classes} classes, batch {batch}, {size}x{size}"
                        f"{', bf16' if args.bf16 else ''})", *times)
    print(f"{head['name']}: plain {head['plain_ms']:.2f} ms, ERA {head['era_ms']:.2f} ms, "
          f"ratio ERA/plain {head['ratio']:.3f} [{head['ratio_ci'][0]:.3f}, {head['ratio_ci'][1]:.3f}]")
    result = {
        "benchmark": "era_overhead", "command": " ".join(["python benchmarks/era_overhead.py", *argv]),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else device.type,
        "cpu_model": _cpu_model(), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "load": {"before": [round(v, 2) for v in load_before], "after": [round(v, 2) for v in os.getloadavg()],
                 "cpus": os.cpu_count(), "nice": os.nice(0)},
        "measurements": [actor, head],
    }
    if args.out is not None:
        write_result(result, args.out)
        print(f"wrote {args.out / 'era_overhead.json'} and {args.out / 'era_overhead.md'}")
    return result


if __name__ == "__main__":
    main()
