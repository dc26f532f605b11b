"""torchvision classifiers with ERA / dropout heads (adapters.vision.models, adapters.vision)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from adapters.era import SoftmaxERA, softmax_entropy
from adapters.errors import ConfigError, UnknownNameError
from adapters.trial import TrialSpec
from adapters.vision import resolve_settings, validate
from adapters.vision.training import build_model
from adapters.vision.data import build_datasets, parse_task
from adapters.vision.models import build_classifier, check_architecture, classifier_head_name

# one architecture per torchvision family
FAMILIES = [
    "alexnet", "convnext_tiny", "densenet121", "efficientnet_b0", "efficientnet_v2_s", "googlenet",
    "inception_v3", "maxvit_t", "mnasnet0_5", "mobilenet_v2", "mobilenet_v3_small", "resnet18",
    "resnext50_32x4d", "shufflenet_v2_x0_5", "swin_t", "swin_v2_t", "vgg11_bn", "vit_b_16",
    "wide_resnet50_2",
]


def _settings(algo: str, task: str = "digits", **settings):
    return resolve_settings(TrialSpec(algo=algo, task=task, seed=0, budget=1, settings=settings))


def test_resnet_era_head_follows_the_spec() -> None:
    model = build_model("resnet-era", _settings("resnet-era", image_size=32), num_classes=10)
    assert isinstance(model.fc, nn.Sequential) and isinstance(model.fc[0], nn.Linear)
    assert isinstance(model.fc[1], SoftmaxERA) and model.fc[1].min_entropy == 0.6
    assert "fc.0.weight" in model.state_dict()
    # CIFAR stem at 32 pixels: 3x3 stride-1 first convolution, no max-pool
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, nn.Identity)
    assert build_model("resnet", _settings("resnet", image_size=224), 10).conv1.kernel_size == (7, 7)


def test_resnet50_dropout_head_and_plain_resnet() -> None:
    with torch.device("meta"):
        model = build_model("resnet-dropout", _settings("resnet-dropout", architecture="resnet50", dropout=0.3), 10)
        plain = build_model("resnet", _settings("resnet", architecture="resnet50"), 10)
    assert isinstance(model.fc[0], nn.Dropout) and model.fc[0].p == 0.3
    assert model.fc[1].in_features == 2048 and model.fc[1].out_features == 10
    assert isinstance(plain.fc, nn.Linear)


@pytest.mark.parametrize("architecture", FAMILIES)
def test_era_head_is_the_output_of_every_family(architecture: str) -> None:
    """On the meta device (no weights allocated): the ERA module produces the model's output."""
    with torch.device("meta"):
        model = build_classifier(architecture, 10, 224, head_layers=(SoftmaxERA(10, 0.6),))
    era = [m for m in model.modules() if isinstance(m, SoftmaxERA)]
    seen = {}
    era[0].register_forward_hook(lambda module, args, out: seen.setdefault("out", out))
    size = 299 if architecture == "inception_v3" else 224
    with torch.no_grad():
        out = model.eval()(torch.empty(2, 3, size, size, device="meta"))
    assert len(era) == 1 and out is seen["out"] and out.shape == (2, 10)


def test_architecture_without_linear_head_is_refused() -> None:
    with torch.device("meta"):
        assert classifier_head_name(build_classifier("squeezenet1_0", 10, 224), 10) is None
    with pytest.raises(ConfigError, match="no final linear layer"):
        check_architecture("squeezenet1_0", 10, 224, None, head=True)
    check_architecture("squeezenet1_0", 10, 224, None, head=False)  # the plain variant is fine


def test_unknown_architecture_lists_known() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown architecture 'resnet19'.*resnet18, resnet34, resnet50"):
        validate(TrialSpec(algo="resnet", task="digits", seed=0, budget=1, settings={"architecture": "resnet19"}))


def test_image_size_an_architecture_cannot_take() -> None:
    with pytest.raises(ConfigError, match="vit_b_16 does not accept 30x30"):
        check_architecture("vit_b_16", 10, 30, None, head=True)
    with pytest.raises(ConfigError, match="cifar_stem: true applies to the ResNet family"):
        check_architecture("vgg11", 10, 32, True, head=False)


@pytest.mark.parametrize("inverse, tolerance", [("series", 0.01), ("exact", 1e-4)])
def test_era_entropy_floor_on_real_digits(inverse: str, tolerance: float) -> None:
    """A real batch (360 held-out digits) through resnet-era whose final layer is scaled to make
    the raw logits overconfident: the raw entropy falls far below the floor, ERA's does not."""
    torch.manual_seed(0)
    settings = _settings("resnet-era", image_size=8, min_entropy=0.6, inverse=inverse)
    model = build_model("resnet-era", settings, 10).eval()
    with torch.no_grad():
        model.fc[0].weight.mul_(300.0)
    images = torch.stack([image for image, _ in build_datasets(parse_task("digits"), 8).test])
    raw = {}
    model.fc[1].register_forward_pre_hook(lambda module, args: raw.setdefault("z", args[0]))
    with torch.no_grad():
        out = model(images)
    raw_entropy, era_entropy = softmax_entropy(raw["z"]), softmax_entropy(out)
    assert raw_entropy.min() < 0.1  # without ERA the outputs collapse
    assert era_entropy.min() >= 0.6 - tolerance
    assert torch.equal(out.argmax(-1), raw["z"].argmax(-1))


def test_settings_errors_list_allowed_keys() -> None:
    def check(algo: str, **settings) -> None:
        validate(TrialSpec(algo=algo, task="digits", seed=0, budget=1, settings=settings))

    with pytest.raises(ConfigError, match=r"unknown setting\(s\) dropout for resnet-era: allowed settings are .*min_entropy"):
        check("resnet-era", dropout=0.1)
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) min_entropy for resnet:"):
        check("resnet", min_entropy=0.5)
    with pytest.raises(ConfigError, match=r"allowed range \(-0.0597, 2.2429\)"):
        check("resnet-era", min_entropy=2.5)
    with pytest.raises(ConfigError, match="label_smoothing=1.5 is invalid"):
        check("resnet-ls", label_smoothing=1.5)
    with pytest.raises(ConfigError, match="augmentation='flip' is invalid"):
        check("resnet", augmentation="flip")
    with pytest.raises(ConfigError, match="batch_size=True is invalid"):
        check("resnet", batch_size=True)
    assert _settings("resnet-ls").label_smoothing == 0.1 and _settings("resnet-dropout").dropout == 0.2
    assert _settings("resnet", task="imagenet:/x").image_size == 224
