"""Forward+backward time with and without ERA, measured side by side in one process.

(a) an SAC-sized actor (2x256 MLP, batch 256, action dim 17): SB3-style clamped log-std vs
    GaussianERA; (b) torchvision ResNet-18 on 10 classes (batch 32, 32x32 images): plain head vs
    SoftmaxERA head. Timings alternate between the two variants so that background load hits both
    alike; the ratio of medians is printed. The paper claims < 7% overhead; our goal is <= 3%.

    python benchmarks/era_overhead.py [--repeats 200] [--device cuda --resnet50 --bf16]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

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


def _time_pair(step_a: Callable[[], None], step_b: Callable[[], None], repeats: int, sync) -> tuple[float, float]:
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
    return statistics.median(times_a), statistics.median(times_b)


def _train_step(model: nn.Module, inputs: torch.Tensor, loss_fn, autocast_dtype=None) -> Callable[[], None]:
    params = list(model.parameters())

    def step() -> None:
        for p in params:
            p.grad = None
        with torch.autocast(inputs.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            loss = loss_fn(model(inputs))
        loss.backward()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--resnet50", action="store_true", help="ResNet-50 at batch 256, 224x224 (GPU check)")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast")
    args = parser.parse_args()
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    autocast = torch.bfloat16 if args.bf16 else None
    torch.manual_seed(0)

    obs = torch.randn(256, 67, device=device)
    plain, era = Actor(67, 17, era=False).to(device), Actor(67, 17, era=True).to(device)
    era.load_state_dict(plain.state_dict(), strict=False)
    t_plain, t_era = _time_pair(
        _train_step(plain, obs, lambda a: a.square().mean(), autocast),
        _train_step(era, obs, lambda a: a.square().mean(), autocast),
        args.repeats,
        sync,
    )
    print(f"SAC actor (2x256, batch 256, D=17): plain {t_plain * 1e3:.3f} ms, "
          f"ERA {t_era * 1e3:.3f} ms, ratio ERA/plain {t_era / t_plain:.3f}")

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
    t_plain, t_era = _time_pair(
        _train_step(plain_net, images, lambda z: loss(z.float(), labels), autocast),
        _train_step(era_net, images, lambda z: loss(z.float(), labels), autocast),
        repeats,
        sync,
    )
    print(f"{name} head ({classes} classes, batch {batch}, {size}x{size}{', bf16' if args.bf16 else ''}): "
          f"plain {t_plain * 1e3:.2f} ms, ERA {t_era * 1e3:.2f} ms, ratio ERA/plain {t_era / t_plain:.3f}")


if __name__ == "__main__":
    main()
