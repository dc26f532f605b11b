"""Every GPU path of era-harness, checked and measured in one short run on the best device here.

GPU time comes rarely and in short windows, so this one command does everything a GPU can tell us,
through the real trial code (``adapters.trial.run_trial``) and the real ``era run``:

1. ResNet-50 forward+backward+SGD at batch 256, 224x224, bf16 autocast and channels-last, with and
   without ``SoftmaxERA``, alternating step by step: the ERA/plain time ratio (the paper: < 1.07;
   our goal: <= 1.03) and each variant's peak memory;
2. a ``resnet-era`` trial of a few hundred steps on a generated ImageFolder with AMP and
   channels-last: finite loss, entropy at ERA's floor;
3. ``sac-era`` and ``ppo-era`` trials on CUDA and on the CPU: steps/s of each;
4. one ``era run`` of a suite whose four trials ask for ``gpus: 0.25`` each, so that they share one
   GPU under Ray Tune (plus, on a GPU, four trials asking for none, which must run on the CPU): all
   finish, each saw its device, and the wall time against the same trials one at a time;
5. a ``grpo-era`` toy trial on CUDA in bf16 (``trl: {bf16: true}``): finite loss, entropy metrics;
6. the CPU fallback: with CUDA hidden, every family picks the CPU and refuses ``device: cuda``.

Each check is its own function; an exception becomes that check's row, so one broken path hides
none of the others. ``OUT/summary.md`` and ``OUT/summary.json`` (``resnet50_era_over_plain``, the
device name, every row) are written at the end; the exit status is 1 if any row failed.

    python benchmarks/gpu_check.py --out benchmarks/results/gpu_check   # on a GPU: about 4 minutes
    python benchmarks/gpu_check.py --tiny --out /tmp/gpu-check           # toy sizes on the CPU: < 1 minute

``--tiny`` runs the same code at toy sizes (a test runs it, so the script cannot rot); time goals
and what needs a long run (learning, the entropy floor reached) are then listed, not judged.
Nothing is downloaded: the data is generated, the LLM is the config-built toy model.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout: this checkout's code
    sys.path.insert(0, str(ROOT))
for _name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
    os.environ.setdefault(_name, "1")  # before any Hugging Face import: nothing here needs the network
os.environ.setdefault("MUJOCO_GL", "disable")

import torch  # noqa: E402

#: the ResNet-50 time ratio the paper claims ERA stays under, and ours
PAPER_RATIO, GOAL_RATIO = 1.07, 1.03
#: the whole run on a GPU, start-up included, must fit in this (the issue's window)
GPU_BUDGET_S = 360.0
#: no check starts after this many seconds at full sizes (the longest check takes about a minute)
DEADLINE_S = 270.0


@dataclass(frozen=True)
class Sizes:
    """How big each check runs: :meth:`full` on a GPU, :meth:`tiny` for the CPU test."""

    resnet_arch: str = "resnet50"
    resnet_batch: int = 256
    resnet_image: int = 224
    resnet_classes: int = 1000
    resnet_warmup: int = 5
    resnet_pairs: int = 25
    vision_classes: int = 10
    vision_train_per_class: int = 64
    vision_val_per_class: int = 16
    vision_image: int = 64
    vision_batch: int = 64
    vision_epochs: int = 30  # 10 steps an epoch: 300 steps
    sac_steps: int = 2000
    ppo_steps: int = 8192
    ppo_n_steps: int = 2048
    share_trials: int = 4
    share_gpus: float = 0.25
    share_cpus: float = 1.0
    share_steps: int = 2000
    share_timeout_s: float = 150.0
    grpo_warmup: int | None = None  # the toy task's own
    grpo_steps: int = 20
    grpo_prompts: int = 4
    grpo_generations: int = 8
    grpo_eval_prompts: int | None = None  # all of the toy task's
    grpo_eval_samples: int = 4
    tdmpc2_model_size: int = 5
    tdmpc2_episode: int = 100  # agent steps per episode; the budget is 3 of them (1 random)
    tdmpc2_tiny: bool = False

    @classmethod
    def full(cls) -> "Sizes":
        return cls()

    @classmethod
    def tiny(cls) -> "Sizes":
        return cls(
            resnet_batch=2, resnet_image=32, resnet_classes=10, resnet_warmup=1, resnet_pairs=1,
            vision_classes=2, vision_train_per_class=4, vision_val_per_class=2, vision_image=16,
            vision_batch=4, vision_epochs=1,
            sac_steps=120, ppo_steps=128, ppo_n_steps=64,
            share_trials=2, share_cpus=1.0, share_steps=64, share_timeout_s=120.0,
            grpo_warmup=1, grpo_steps=1, grpo_prompts=2, grpo_generations=2, grpo_eval_prompts=2,
            grpo_eval_samples=2, tdmpc2_model_size=1, tdmpc2_episode=50, tdmpc2_tiny=True,
        )


@dataclass
class Row:
    """One check's outcome: ``pass``, ``fail`` (a check did not hold), ``error`` (it raised) or
    ``skipped``; its figures; the checks judged here and the goals left unjudged at toy sizes."""

    name: str
    title: str
    status: str = "pass"
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # this process and the children it waited for (era run, the probe)
    figures: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    unjudged: list[str] = field(default_factory=list)
    note: str = ""
    error: str | None = None
    traceback: str | None = None


class Skip(Exception):
    """A check that cannot run here (a missing optional package): a ``skipped`` row, not a failure."""


@dataclass
class Context:
    sizes: Sizes
    tiny: bool
    device: torch.device
    device_label: str
    work: Path

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def judge(self, row: Row, name: str, ok: bool, *, full_only: bool = False) -> None:
        """Record a check; one that needs full sizes (or a GPU) is listed, not judged, at toy sizes."""
        if full_only and (self.tiny or not self.cuda):
            row.unjudged.append(f"{name} (was {'met' if ok else 'not met'})")
        else:
            row.checks[name] = bool(ok)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _finite(*values: Any) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


# ---------------------------------------------------------------------------------------- checks
def resnet50_overhead(ctx: Context, row: Row) -> None:
    """ResNet-50 training steps with and without SoftmaxERA, as the vision trainer runs them on CUDA
    (bf16 autocast, channels-last, loss on the fp32 output, SGD); timed alternately, so that the
    machine's state hits both alike; the ratio of median step times."""
    from torch import nn

    from adapters.trial import TrialSpec
    from adapters.vision.settings import resolve_settings
    from adapters.vision.training import build_model

    s, device = ctx.sizes, ctx.device
    amp = torch.bfloat16 if ctx.cuda and torch.cuda.is_bf16_supported() else None
    memory_format = torch.channels_last if ctx.cuda else torch.contiguous_format
    images = torch.randn(s.resnet_batch, 3, s.resnet_image, s.resnet_image, device=device)
    images = images.contiguous(memory_format=memory_format)
    targets = torch.randint(0, s.resnet_classes, (s.resnet_batch,), device=device)
    if ctx.cuda:
        torch.backends.cudnn.benchmark = True
    steps: dict[str, Callable[[], None]] = {}
    for algo in ("resnet", "resnet-era"):
        spec = TrialSpec(algo, "imagenet:unused", 0, 1, settings={
            "architecture": s.resnet_arch, "image_size": s.resnet_image})
        settings = resolve_settings(spec)
        torch.manual_seed(0)
        model = build_model(algo, settings, s.resnet_classes).to(device, memory_format=memory_format).train()
        optimizer = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum,
                                    weight_decay=settings.weight_decay)
        criterion = nn.CrossEntropyLoss()

        def step(model=model, optimizer=optimizer, criterion=criterion) -> None:
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                loss = criterion(model(images).float(), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        steps[algo] = step
    times: dict[str, list[float]] = {algo: [] for algo in steps}
    for index in range(s.resnet_warmup + s.resnet_pairs):
        for algo, step in steps.items():
            _sync(device)
            began = time.perf_counter()
            step()
            _sync(device)
            if index >= s.resnet_warmup:
                times[algo].append(time.perf_counter() - began)
    plain, era = statistics.median(times["resnet"]), statistics.median(times["resnet-era"])
    ratio = era / plain
    row.figures.update({
        "model": f"{s.resnet_arch}, {s.resnet_classes} classes, batch {s.resnet_batch}, "
                 f"{s.resnet_image}x{s.resnet_image}",
        "precision": "bf16 autocast" if amp is not None else "fp32",
        "memory_format": "channels_last" if ctx.cuda else "contiguous",
        "timed_pairs": s.resnet_pairs,
        "plain_ms": round(plain * 1e3, 3), "era_ms": round(era * 1e3, 3),
        "era_over_plain": round(ratio, 4),
        "images_per_s_plain": round(s.resnet_batch / plain, 1), "images_per_s_era": round(s.resnet_batch / era, 1),
    })
    if ctx.cuda:
        for algo, step in steps.items():  # peak memory of one step above what was held before it
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            held = torch.cuda.memory_allocated(device)
            step()
            torch.cuda.synchronize(device)
            key = "era" if algo == "resnet-era" else "plain"
            row.figures[f"peak_step_memory_gib_{key}"] = round((torch.cuda.max_memory_allocated(device) - held) / 2**30, 3)
    ctx.judge(row, "step times finite", _finite(plain, era))
    ctx.judge(row, f"ERA/plain < {PAPER_RATIO} (paper)", ratio < PAPER_RATIO, full_only=True)
    ctx.judge(row, f"ERA/plain <= {GOAL_RATIO} (goal)", ratio <= GOAL_RATIO, full_only=True)


def _write_image_folder(root: Path, classes: int, per_split: dict[str, int], size: int, seed: int = 0) -> None:
    """A learnable ImageFolder: class k is a colour (its hue) with a bright square at a place of its
    own, under pixel noise; PNG files, so torchvision's decoding path runs as on real data."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for k in range(classes):
        hue = k / classes
        colour = np.array([math.cos(2 * math.pi * (hue + c / 3)) for c in range(3)]) * 70 + 128
        corner = (k * size // max(classes, 1)) % max(size - size // 4, 1)
        for split, count in per_split.items():
            folder = root / split / f"class_{k:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = colour + rng.normal(0.0, 30.0, (size, size, 3))
                pixels[corner:corner + size // 4, corner:corner + size // 4] = 250
                Image.fromarray(pixels.clip(0, 255).astype("uint8")).save(folder / f"{i:04d}.png")


def vision_trial(ctx: Context, row: Row) -> None:
    """A ``resnet-era`` trial through ``run_trial`` on a generated ImageFolder (the ``imagenet:PATH``
    task), with the family's own AMP and channels-last settings on."""
    from adapters.trial import TrialSpec, run_trial
    from adapters.vision.settings import resolve_settings
    from adapters.vision.training import build_trainer

    s = ctx.sizes
    root = ctx.work / "imagefolder"
    _write_image_folder(root, s.vision_classes, {"train": s.vision_train_per_class, "val": s.vision_val_per_class},
                        s.vision_image)
    floor = 0.6
    spec = TrialSpec("resnet-era", f"imagenet:{root}", 0, s.vision_epochs, eval_every=s.vision_epochs,
                     device=str(ctx.device), settings={
                         "architecture": "resnet18", "image_size": s.vision_image, "batch_size": s.vision_batch,
                         "lr": 0.05, "amp": True, "channels_last": True, "min_entropy": floor})
    trainer = build_trainer(spec, resolve_settings(spec))  # what the trial builds: AMP and layout
    amp = str(trainer.amp_dtype).replace("torch.", "") if trainer.amp_dtype is not None else "off (fp32)"
    channels_last = trainer.memory_format == torch.channels_last
    steps = s.vision_epochs * len(trainer.train_loader)
    del trainer
    records = list(run_trial(spec, ctx.work / "vision-checkpoint"))
    final = records[-1]
    row.figures.update({
        "task": f"generated ImageFolder, {s.vision_classes} classes, {s.vision_train_per_class} train images "
                f"each, {s.vision_image}x{s.vision_image}", "architecture": "resnet18",
        "amp": amp, "channels_last": channels_last, "steps": steps,
        "steps_per_s": round(steps / final.wall_time_s, 1), "train_loss": round(final.metrics["train_loss"], 4),
        "top1": round(final.score, 2), "entropy_mean": round(final.entropy, 4),
        "entropy_min": round(final.metrics["entropy_min"], 4), "floor": floor,
    })
    ctx.judge(row, "AMP on (bf16 or fp16)", amp in ("bfloat16", "float16"), full_only=True)
    ctx.judge(row, "channels-last on", channels_last, full_only=True)
    ctx.judge(row, "finite training loss", _finite(final.metrics["train_loss"]))
    ctx.judge(row, f"the floor holds: entropy >= {floor} - 0.05 (bf16 output) on every image",
              final.metrics["entropy_min"] >= floor - 0.05)
    chance = 100.0 / s.vision_classes
    ctx.judge(row, f"learned: top-1 >= 50% (chance {chance:g}%)", final.score >= 50.0, full_only=True)
    certain = _certain_entropy(s.vision_classes, floor)
    row.figures["entropy_of_a_certain_prediction"] = round(certain, 4)
    ctx.judge(row, f"at the floor: the most certain image's entropy within 0.05 of ERA's for a certain "
                   f"prediction ({certain:.3f})", abs(final.metrics["entropy_min"] - certain) <= 0.05, full_only=True)


def _certain_entropy(classes: int, floor: float) -> float:
    """The entropy SoftmaxERA gives a prediction with all its mass on one class: the lowest a
    confident classifier reaches (above ``floor`` for few classes: the floor is a bound)."""
    from adapters.era import SoftmaxERA

    logits = torch.zeros(1, classes)
    logits[0, 0] = 50.0
    q = torch.softmax(SoftmaxERA(classes, floor)(logits), dim=-1)
    return float(-(q * q.clamp_min(1e-30).log()).sum())


def _rl_spec(algo: str, device: str, s: Sizes) -> Any:
    from adapters.trial import TrialSpec

    if algo == "sac-era":
        budget, settings = s.sac_steps, {"learning_starts": 100, "buffer_size": 100_000}
    else:
        budget, settings = s.ppo_steps, {"n_steps": s.ppo_n_steps, "batch_size": 64}
    return TrialSpec(algo, "gym:Pendulum-v1", 0, budget, eval_every=budget, eval_episodes=1,
                     settings=settings, device=device)


def rl_throughput(ctx: Context, row: Row, algo: str) -> None:
    """``algo`` on Pendulum through ``run_trial`` on the best device and on the CPU: training
    steps/s (the record's ``wall_time_s`` counts training only) and ERA's pinned entropy."""
    from adapters.trial import run_trial

    devices = list(dict.fromkeys([str(ctx.device), "cpu"]))
    rates = {}
    for device in devices:
        spec = _rl_spec(algo, device, ctx.sizes)
        final = list(run_trial(spec))[-1]
        rates[device] = spec.budget / final.wall_time_s
        row.figures[f"steps_per_s_{device}"] = round(rates[device], 1)
        row.figures[f"entropy_{device}"] = round(final.entropy, 4)
        ctx.judge(row, f"{device}: reached its budget of {spec.budget} steps", final.step == spec.budget)
        if algo == "ppo-era":  # the policy's measured Gaussian entropy, pinned by ERA (unclipped σ)
            error = final.entropy - final.metrics["target_entropy"]
            ctx.judge(row, f"{device}: Gaussian entropy at ERA's target (|error| <= 0.01)", abs(error) <= 0.01)
        else:  # what SAC-ERA samples from is a truncated normal: its entropy is not pinned
            ctx.judge(row, f"{device}: finite δ and entropy", _finite(final.metrics["delta"], final.entropy))
    row.figures["budget_steps"] = ctx.sizes.sac_steps if algo == "sac-era" else ctx.sizes.ppo_steps
    if len(devices) == 2:
        row.figures["cuda_over_cpu_speed"] = round(rates[devices[0]] / rates["cpu"], 3)
    else:
        row.note = "no CUDA here: CPU only"


def tdmpc2_trial(ctx: Context, row: Row) -> None:
    """A ``tdmpc2-era`` trial through ``run_trial`` on the best device (TD-MPC2's 5M model and planner,
    ``compile`` off so the check stays short): finite scores, the prior's Gaussian entropy pinned at
    H0 + δ, and agent steps/s. Skipped where TD-MPC2 is not installed."""
    from adapters.errors import MissingDependencyError
    from adapters.tdmpc2.upstream import check_available
    from adapters.trial import TrialSpec, run_trial

    try:
        check_available()
    except MissingDependencyError as error:
        raise Skip(str(error)) from error
    s, length = ctx.sizes, ctx.sizes.tdmpc2_episode
    settings = {"model_size": s.tdmpc2_model_size, "episode_length": length, "seed_steps": length, "compile": False}
    if s.tdmpc2_tiny:
        settings.update(mlp_dim=32, enc_dim=32, latent_dim=16, num_samples=16, num_elites=4, num_pi_trajs=2,
                        iterations=1, batch_size=16)
    spec = TrialSpec("tdmpc2-era", "dmc:walker-walk", 0, 3 * length, eval_every=length, eval_episodes=1,
                     settings=settings, device=str(ctx.device))
    records = list(run_trial(spec))
    final = records[-1]
    trained = records[-1].wall_time_s - records[0].wall_time_s  # the random episode excluded
    row.figures.update(steps_per_s=round(2 * length / trained, 2), score=round(final.score, 2),
                       gaussian_entropy=round(final.metrics["gaussian_entropy"], 4), delta=round(final.metrics["delta"], 4))
    ctx.judge(row, "finite scores and entropies", _finite(*[r.score for r in records], final.entropy))
    pinned = final.metrics["target_entropy"] + final.metrics["delta"]
    ctx.judge(row, "Gaussian entropy at H0 + δ (|error| <= 1e-3)", abs(final.metrics["gaussian_entropy"] - pinned) <= 1e-3)


def _share_suite(ctx: Context) -> tuple[Path, int]:
    """The suite of :func:`fractional_gpus`: ``share_trials`` ``sac-era`` trials asking for ``share_gpus`` each
    (no GPU here: for none), and on a GPU as many tiny ``ppo-era`` trials asking for
    none, which must run on the CPU. Returns its path and the number of those trials."""
    import yaml

    s = ctx.sizes
    shared = "gym:Pendulum-v1"
    suite: dict[str, Any] = {
        "name": "gpu-check-share",
        "description": "trials sharing one GPU (benchmarks/gpu_check.py)",
        "benchmark": "none",
        "algorithms": {"sac-era": {"tasks": [shared], "settings": {"learning_starts": 100, "buffer_size": 100_000}}},
        "tasks": {shared: {"resources": {"cpus": s.share_cpus, "gpus": s.share_gpus if ctx.cuda else 0},
                           "budget": {"steps": s.share_steps}, "eval": {"every": {"steps": s.share_steps}}}},
        "seeds": s.share_trials,
        "eval": {"episodes": 1},
        "max_failures": 0,
    }
    if ctx.cuda:
        control = "gym:MountainCarContinuous-v0"
        suite["algorithms"]["ppo-era"] = {"tasks": [control], "settings": {"n_steps": 64, "batch_size": 64, "n_epochs": 1}}
        suite["tasks"][control] = {"resources": {"cpus": 1, "gpus": 0}, "budget": {"steps": 64}}
    path = ctx.work / "share.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path, s.share_trials if ctx.cuda else 0


def _run_killable(command: list[str], timeout_s: float) -> tuple[int | None, str, float]:
    """Run ``command`` in its own process group; kill that group if it outlives ``timeout_s``.
    Returns (exit status or None if killed, its output, seconds)."""
    began = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True, env={**os.environ, "PYTHONPATH": _pythonpath()})
    try:
        output, _ = process.communicate(timeout=timeout_s)
        return process.returncode, output, time.perf_counter() - began
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        return None, output, time.perf_counter() - began


def _pythonpath() -> str:
    return os.pathsep.join(dict.fromkeys([str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]))


def fractional_gpus(ctx: Context, row: Row) -> None:
    """One ``era run`` (a subprocess, its own local Ray) of four trials at ``gpus: 0.25``: do all
    finish, did each run on the GPU (``trials.parquet``'s ``device``), and how long did Tune take
    against the same four trials run one after another here with ``run_trial``."""
    import pandas as pd

    from adapters.trial import run_trial
    from harness.suite import load_and_expand

    path, controls = _share_suite(ctx)
    _, trials = load_and_expand(path)
    shared = [t for t in trials if t.spec.algo == "sac-era"]
    began = time.perf_counter()
    for trial in shared:
        list(run_trial(trial.spec))
    one_at_a_time = time.perf_counter() - began
    if ctx.cuda:
        torch.cuda.empty_cache()  # leave the GPU's memory to the trials
    out = ctx.work / "share-results"
    code, output, wall = _run_killable(
        [sys.executable, "-m", "harness.cli", "run", str(path), "--out", str(out), "--no-report",
         "--progress-every", "600"], ctx.sizes.share_timeout_s)
    if code is None:
        raise TimeoutError(f"era run did not finish in {ctx.sizes.share_timeout_s:.0f} s (killed); its last "
                           f"line: {output.strip().splitlines()[-1] if output.strip() else '(none)'}")
    timing = re.search(r"timing: Ray start ([0-9.]+) s, trials under Tune ([0-9.]+) s", output)
    fit = float(timing.group(2)) if timing else wall
    if code != 0:
        row.note = "era run: " + " / ".join(output.strip().splitlines()[-3:])
    if not (out / "trials.parquet").is_file():  # refused before anything was written (exit 2)
        raise RuntimeError(f"era run exited {code} and wrote no results: {row.note}")
    frame = pd.read_parquet(out / "trials.parquet")
    gpu_rows = frame[frame.algo == "sac-era"]
    expected = "cuda" if ctx.cuda else "cpu"
    devices = sorted(set(gpu_rows.device.fillna("none")))
    row.figures.update({
        "trials": f"{len(shared)} x sac-era on Pendulum, {ctx.sizes.share_steps} steps, "
                  f"{shared[0].resources.gpus:g} GPU and {shared[0].resources.cpus:g} CPU each",
        "era_run_exit": code, "era_run_wall_s": round(wall, 1),
        "ray_start_s": float(timing.group(1)) if timing else None, "under_tune_s": round(fit, 1),
        "one_at_a_time_s": round(one_at_a_time, 1), "speedup_vs_one_at_a_time": round(one_at_a_time / fit, 2),
        "devices_seen": devices,
    })
    if controls:
        row.figures["no_gpu_trials_devices"] = sorted(set(frame[frame.algo == "ppo-era"].device.fillna("none")))
    if not ctx.cuda:
        row.note = "no GPU here: the trials asked for gpus: 0"
    ctx.judge(row, "era run exited 0", code == 0)
    ctx.judge(row, f"all {len(trials)} trials done", bool((frame.status == "done").all()) and len(frame) == len(trials))
    ctx.judge(row, f"each shared trial ran on {expected}", all(str(d).startswith(expected) for d in gpu_rows.device))
    if controls:
        ctx.judge(row, "trials asking for no GPU ran on the CPU",
                  all(d == "cpu" for d in frame[frame.algo == "ppo-era"].device))
    ctx.judge(row, "sharing beats one at a time (speed-up > 1.5)", one_at_a_time / fit > 1.5, full_only=True)


def grpo_bf16(ctx: Context, row: Row) -> None:
    """A ``grpo-era`` trial on the toy task through ``run_trial``, in bf16 (TRL's mixed precision,
    as ``suites/llm-qwen-math.yaml`` sets it)."""
    try:
        import trl  # noqa: F401
    except ImportError:
        raise Skip('TRL is not installed: pip install -e ".[llm]"') from None
    from adapters.trial import TrialSpec, run_trial

    s = ctx.sizes
    bf16 = not ctx.cuda or torch.cuda.is_bf16_supported()
    settings: dict[str, Any] = {
        "prompts_per_step": s.grpo_prompts, "num_generations": s.grpo_generations,
        "eval_samples": s.grpo_eval_samples, "trl": {"bf16": bf16},
    }
    if s.grpo_warmup is not None:
        settings["warmup_steps"] = s.grpo_warmup
    if s.grpo_eval_prompts is not None:
        settings["eval_prompts"] = s.grpo_eval_prompts
    spec = TrialSpec("grpo-era", "llm:arith", 0, s.grpo_steps, eval_every=s.grpo_steps, settings=settings,
                     device=str(ctx.device))
    records = list(run_trial(spec))
    first, final = records[0], records[-1]
    metrics = final.metrics
    row.figures.update({
        "precision": "bf16 (trl bf16: true)" if bf16 else "fp32 (no bf16 on this GPU)",
        "grpo_steps": s.grpo_steps, "seconds_per_step": round((final.wall_time_s - first.wall_time_s) / s.grpo_steps, 3),
        "train_loss": metrics.get("train_loss"), "response_entropy": round(final.entropy, 4),
        "train_token_entropy": metrics.get("train_token_entropy"),
        "train_response_entropy": metrics.get("train_response_entropy"),
        "accuracy": round(final.score, 2), "entropy_floor": metrics.get("entropy_floor"),
    })
    ctx.judge(row, "bf16 available", bf16, full_only=True)
    ctx.judge(row, "finite training loss", _finite(metrics.get("train_loss")))
    ctx.judge(row, "entropy metrics recorded and finite",
              _finite(final.entropy, metrics.get("train_token_entropy"), metrics.get("train_response_entropy")))


def fallback_probe() -> dict[str, Any]:
    """What the families choose in this process: ``device: auto``, ``device: cuda`` at validation
    (each family's own ``validate``) and the vision trainer's device, AMP and memory format."""
    from adapters.device import select_device
    from adapters.errors import ConfigError
    from adapters.trial import TrialSpec, validate_trial
    from adapters.vision.settings import resolve_settings
    from adapters.vision.training import build_trainer

    seen: dict[str, Any] = {"cuda_visible": torch.cuda.is_available(), "auto": str(select_device("auto"))}
    specs = {
        "rl": TrialSpec("sac-era", "gym:Pendulum-v1", 0, 64, settings={"learning_starts": 10}),
        "vision": TrialSpec("resnet-era", "digits", 0, 1, settings={"image_size": 8}),
        "llm": TrialSpec("grpo-era", "llm:arith", 0, 1),
    }
    for family, spec in specs.items():
        try:
            validate_trial(replace(spec, device="cuda"))
            seen[f"{family}_cuda"] = "accepted"
        except ConfigError as error:
            seen[f"{family}_cuda"] = f"refused: {error}"
    trainer = build_trainer(specs["vision"], resolve_settings(specs["vision"]))
    seen.update(vision_device=str(trainer.device), vision_amp=str(trainer.amp_dtype),
                vision_channels_last=trainer.memory_format == torch.channels_last)
    return seen


_PROBE = "import json, gpu_check; print('FALLBACK ' + json.dumps(gpu_check.fallback_probe()))"


def cpu_fallback(ctx: Context, row: Row) -> None:
    """With no GPU visible, ``device: auto`` is the CPU, every family refuses ``device: cuda`` with
    its fix, and the vision trainer runs fp32, contiguous. Where this process sees CUDA, the probe
    runs in a child that does not (``CUDA_VISIBLE_DEVICES=""``); elsewhere, here."""
    if torch.cuda.is_available():
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": "",
               "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parent), _pythonpath()])}
        done = subprocess.run([sys.executable, "-c", _PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=120)
        found = next((line for line in done.stdout.splitlines() if line.startswith("FALLBACK ")), None)
        if found is None:
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise RuntimeError(f"the fallback probe exited {done.returncode}: {last}")
        seen = json.loads(found[len("FALLBACK "):])
        row.note = "probed in a child process with CUDA_VISIBLE_DEVICES=''"
    else:
        seen = fallback_probe()
        row.note = "no CUDA in this process: probed here"
    row.figures.update(seen)
    ctx.judge(row, "no CUDA visible", not seen["cuda_visible"])
    ctx.judge(row, "device auto -> cpu", seen["auto"] == "cpu")
    for family in ("rl", "vision", "llm"):
        verdict = seen[f"{family}_cuda"]
        ctx.judge(row, f"{family}: device cuda refused with the fix",
                  verdict.startswith("refused:") and "'auto' or 'cpu'" in verdict)
    ctx.judge(row, "vision trainer on cpu, fp32, contiguous",
              seen["vision_device"] == "cpu" and seen["vision_amp"] == "None" and not seen["vision_channels_last"])


#: name -> (title, function); the order they run in
#: name -> (title, function), in the order they run: the headline figures first, so that a run
#: cut short by its deadline still has them
CHECKS: dict[str, tuple[str, Callable[[Context, Row], None]]] = {
    "resnet50": ("ResNet-50 step time, ERA vs plain", resnet50_overhead),
    "share": ("era run: trials sharing one GPU at gpus 0.25", fractional_gpus),
    "vision": ("resnet-era trial, AMP + channels-last", vision_trial),
    "grpo": ("grpo-era toy trial in bf16", grpo_bf16),
    "sac": ("sac-era steps/s, CUDA vs CPU", lambda ctx, row: rl_throughput(ctx, row, "sac-era")),
    "ppo": ("ppo-era steps/s, CUDA vs CPU", lambda ctx, row: rl_throughput(ctx, row, "ppo-era")),
    "tdmpc2": ("tdmpc2-era trial (TD-MPC2's own agent)", tdmpc2_trial),
    "fallback": ("CPU fallback with CUDA hidden", cpu_fallback),
}


def _cpu_seconds() -> float:
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_check(ctx: Context, name: str) -> Row:
    """Run one check; whatever it raises becomes its row."""
    title, function = CHECKS[name]
    row = Row(name, title)
    print(f"[gpu_check] {name}: {title} ...", flush=True)
    began, cpu = time.perf_counter(), _cpu_seconds()
    try:
        function(ctx, row)
        row.status = "pass" if all(row.checks.values()) else "fail"
    except Skip as reason:
        row.status, row.note = "skipped", str(reason)
    except Exception as error:  # noqa: BLE001 - one broken path must not hide the others
        row.status = "error"
        row.error = f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]}"
        row.traceback = traceback.format_exc()
    finally:
        if ctx.cuda:
            torch.cuda.empty_cache()
    row.seconds = round(time.perf_counter() - began, 1)
    row.cpu_seconds = round(_cpu_seconds() - cpu, 1)
    print(f"[gpu_check] {name}: {row.status} in {row.seconds} s {row.error or ''}", flush=True)
    return row


# --------------------------------------------------------------------------------------- summary
def _device_label(device: torch.device) -> str:
    from adapters.device import device_name

    return device_name(str(device))


def _figure(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "-"
    return str(value)


def summary_json(ctx: Context, rows: list[Row], elapsed_s: float) -> dict[str, Any]:
    from harness.store.provenance import code_version, package_versions

    by_name = {row.name: row for row in rows}
    resnet = by_name.get("resnet50")
    share = by_name.get("share")
    return {
        "device": ctx.device_label,
        "device_type": ctx.device.type,
        "tiny": ctx.tiny,
        "resnet50_era_over_plain": resnet.figures.get("era_over_plain") if resnet else None,
        "fractional_gpu_speedup": share.figures.get("speedup_vs_one_at_a_time") if share else None,
        "ok": all(row.status in ("pass", "skipped") for row in rows),
        "elapsed_s": round(elapsed_s, 1),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "code_version": code_version(),
        "packages": package_versions(),
        "cuda": torch.version.cuda,
        "rows": [asdict(row) for row in rows],
    }


def summary_markdown(data: dict[str, Any]) -> str:
    size = "toy sizes (--tiny)" if data["tiny"] else "full sizes"
    lines = [
        "# GPU check", "",
        f"Device: **{data['device']}** (torch built for CUDA {data['cuda'] or 'none'}); {size}; "
        f"{data['elapsed_s']:.0f} s in all; "
        f"code {data['code_version']}; torch {data['packages'].get('torch', '?')}, ray {data['packages'].get('ray', '?')}.",
        "", f"ResNet-50 ERA/plain step time: **{_figure(data['resnet50_era_over_plain'])}** "
            f"(paper: < {PAPER_RATIO}; goal: <= {GOAL_RATIO}). "
            f"The trials of `era run` sharing one GPU against the same trials one at a time: "
            f"**{_figure(data['fractional_gpu_speedup'])}x** as fast.",
        "", "| check | status | seconds (CPU) | figures |", "| --- | --- | ---: | --- |",
    ]
    for row in data["rows"]:
        figures = "; ".join(f"{k} {_figure(v)}" for k, v in row["figures"].items())
        status = row["status"] + (f": {row['error']}" if row["error"] else "")
        lines.append(f"| {row['title']} | {status} | {row['seconds']:g} ({row['cpu_seconds']:g}) | "
                     f"{figures.replace('|', '/')} |")
    lines += ["", "## Checks", ""]
    for row in data["rows"]:
        lines.append(f"- **{row['title']}** ({row['status']}){': ' + row['note'] if row['note'] else ''}")
        for name, ok in row["checks"].items():
            lines.append(f"  - {'ok' if ok else 'FAILED'}: {name}")
        for name in row["unjudged"]:
            lines.append(f"  - not judged at these sizes: {name}")
        if row["error"]:
            lines.append(f"  - error: {row['error']} (traceback in summary.json)")
    return "\n".join(lines) + "\n"


def write_summary(out: Path, data: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    (out / "summary.md").write_text(summary_markdown(data))


# ------------------------------------------------------------------------------------------ main
def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="where summary.md and summary.json go")
    parser.add_argument("--tiny", action="store_true", help="toy sizes (CPU test); time goals are not judged")
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda[:N]")
    parser.add_argument("--only", default=None, metavar="NAMES",
                        help=f"comma-separated checks to run (default all: {','.join(CHECKS)})")
    parser.add_argument("--deadline-s", type=float, default=None, metavar="S",
                        help=f"start no check after S seconds; the rest are skipped (default {DEADLINE_S:g} "
                             f"at full sizes, none with --tiny)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    names = list(CHECKS) if args.only is None else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        print(f"gpu_check: error: unknown check {', '.join(unknown)}: choose from {', '.join(CHECKS)}", file=sys.stderr)
        return 2
    from adapters.device import select_device
    from adapters.errors import ConfigError

    try:
        device = select_device(args.device)
    except ConfigError as error:
        print(f"gpu_check: error: {error}", file=sys.stderr)
        return 2
    if args.tiny:  # toy sizes gain nothing from threads, and a busy machine loses up to 25x to them
        torch.set_num_threads(1)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="era-gpu-check-") as work:
        ctx = Context(Sizes.tiny() if args.tiny else Sizes.full(), args.tiny, device, _device_label(device), Path(work))
        print(f"[gpu_check] device {ctx.device_label}, {'toy' if args.tiny else 'full'} sizes", flush=True)
        deadline = args.deadline_s if args.deadline_s is not None else (None if args.tiny else DEADLINE_S)
        rows = []
        for name in names:
            if deadline is not None and time.perf_counter() - began > deadline:
                rows.append(Row(name, CHECKS[name][0], status="skipped",
                                note=f"not started: the run passed its {deadline:g} s deadline; run it alone "
                                     f"with --only {name}"))
                continue
            rows.append(run_check(ctx, name))
        data = summary_json(ctx, rows, time.perf_counter() - began)
    if ctx.cuda and not args.tiny and data["elapsed_s"] > GPU_BUDGET_S:
        print(f"[gpu_check] warning: took {data['elapsed_s']:.0f} s, over the {GPU_BUDGET_S:.0f} s window", flush=True)
    write_summary(args.out, data)
    print(summary_markdown(data), flush=True)
    return 0 if data["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
