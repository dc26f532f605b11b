"""Device choice where no GPU is visible: every family runs on the CPU, and asking for CUDA is
refused at validation with the fix (a trial would otherwise fail only once it ran).

These run where CUDA is absent (CI); on a GPU machine, benchmarks/gpu_check.py checks the same in a
process with ``CUDA_VISIBLE_DEVICES=""``.
"""

from __future__ import annotations

import pytest
import torch

from adapters.device import device_name, select_device
from adapters.errors import ConfigError
from adapters.trial import TrialSpec, validate_trial

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")

#: one cheap trial per family
SPECS = {
    "rl": TrialSpec("sac-era", "gym:Pendulum-v1", 0, 64, settings={"learning_starts": 10}),
    "vision": TrialSpec("resnet-era", "digits", 0, 1, settings={"image_size": 8}),
    "llm": TrialSpec("grpo-era", "llm:arith", 0, 1),
}


def test_auto_is_the_cpu_and_cuda_is_refused_with_the_fix():
    assert select_device("auto") == torch.device("cpu") and device_name("auto") == "cpu"
    for requested in ("cuda", "cuda:1"):
        with pytest.raises(ConfigError, match=rf"device '{requested}' was asked for but no CUDA GPU is visible: "
                                              r"use device 'auto' or 'cpu'"):
            select_device(requested)
    with pytest.raises(ConfigError, match="unknown device 'tpu': use 'auto', 'cpu' or 'cuda"):
        select_device("tpu")


@pytest.mark.parametrize("family", sorted(SPECS))
def test_every_family_validates_auto_and_refuses_cuda_before_running(family):
    spec = SPECS[family]
    if family == "llm":
        pytest.importorskip("trl")
    validate_trial(spec)  # device "auto"
    with pytest.raises(ConfigError, match="no CUDA GPU is visible: use device 'auto' or 'cpu'"):
        validate_trial(TrialSpec(**{**spec.to_dict(), "device": "cuda"}))


def test_vision_trainer_on_the_cpu_is_fp32_and_contiguous_whatever_the_gpu_settings_say():
    from adapters.vision.settings import resolve_settings
    from adapters.vision.training import build_trainer

    spec = TrialSpec("resnet-era", "digits", 0, 1, settings={"image_size": 8, "amp": True, "channels_last": True})
    trainer = build_trainer(spec, resolve_settings(spec))
    assert trainer.device == torch.device("cpu") and trainer.amp_dtype is None
    assert trainer.memory_format == torch.contiguous_format and not trainer.scaler.is_enabled()
    assert all(p.device.type == "cpu" for p in trainer.model.parameters())
    assert trainer.model.conv1.weight.is_contiguous()
