"""torchvision classifiers by name, with the head each variant needs (docs/era.md, section 2, torchvision).

The ERA variant appends :class:`~adapters.era.SoftmaxERA` to the final linear layer
(``model.fc = nn.Sequential(fc, SoftmaxERA(n, H_min))`` for ResNets), so the model's output is
already the ERA logits z' and the loss applies ``log_softmax`` once. The dropout baseline puts
``nn.Dropout`` in front of that layer. Small (CIFAR-sized) inputs use the usual ResNet stem
adaptation: a 3x3 stride-1 first convolution and no max-pool.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from adapters.errors import ConfigError, unknown_name

__all__ = [
    "known_architectures",
    "check_architecture",
    "build_classifier",
    "classifier_head_name",
    "is_resnet",
]

# torchvision constructors that need a keyword to give one plain logits tensor
_EXTRA_KWARGS: dict[str, dict[str, Any]] = {
    "googlenet": {"aux_logits": False, "init_weights": True},
    "inception_v3": {"aux_logits": False, "init_weights": True},
}


def known_architectures() -> list[str]:
    """Every torchvision classification architecture (``torchvision.models.list_models``)."""
    from torchvision import models

    return list(models.list_models(module=models))


def is_resnet(model: nn.Module) -> bool:
    """ResNet, ResNeXt and Wide ResNet share torchvision's ``ResNet`` class (conv1 + maxpool stem)."""
    from torchvision.models import ResNet

    return isinstance(model, ResNet)


def _constructor_kwargs(architecture: str, image_size: int) -> dict[str, Any]:
    kwargs = dict(_EXTRA_KWARGS.get(architecture, {}))
    if architecture.startswith("vit_"):
        kwargs["image_size"] = image_size  # ViT's position embeddings are sized at construction
    if architecture == "maxvit_t":
        kwargs["input_size"] = (image_size, image_size)
    return kwargs


def check_architecture(architecture: str, num_classes: int, image_size: int, cifar_stem: bool | None, head: bool) -> None:
    """Validate without allocating weights: the name is known, a linear head exists when ``head``,
    the stem option fits and the network accepts ``image_size`` (a forward on the meta device)."""
    import torch

    if architecture not in known_architectures():
        raise unknown_name("architecture", architecture, known_architectures(), hint="see torchvision.models.list_models()")
    try:
        with torch.device("meta"):
            model = build_classifier(architecture, num_classes, image_size, cifar_stem=cifar_stem)
        if head and classifier_head_name(model, num_classes) is None:
            raise _no_head_error(architecture)
        with torch.no_grad():
            model.eval()(torch.empty(2, 3, image_size, image_size, device="meta"))
    except ConfigError:
        raise
    except NotImplementedError:
        return  # an op without a meta kernel: nothing learned here, the real run will tell
    except RuntimeError as error:
        if "meta tensor" in str(error):  # RegNet computes its widths from tensor data at construction
            return
        raise _size_error(architecture, image_size, error) from error
    except (ValueError, AssertionError, IndexError) as error:  # ViT, MaxViT check sizes themselves
        raise _size_error(architecture, image_size, error) from error


def _size_error(architecture: str, image_size: int, error: Exception) -> ConfigError:
    detail = " ".join(str(error).split())[:200]
    return ConfigError(
        f"architecture {architecture} does not accept {image_size}x{image_size} images "
        f"({type(error).__name__}: {detail}): choose another image_size or architecture"
    )


def _no_head_error(architecture: str) -> ConfigError:
    return ConfigError(
        f"architecture {architecture} has no final linear layer to attach an ERA or dropout head to: "
        f"use one with a linear classifier (resnet*, vgg*, efficientnet*, vit_*, ...)"
    )


def classifier_head_name(model: nn.Module, num_classes: int) -> str | None:
    """Dotted name of the final ``nn.Linear`` producing the ``num_classes`` logits, or ``None``.

    In every torchvision classifier with a linear head it is the last such layer registered
    (``fc``, ``classifier.6``, ``heads.head``, ...); SqueezeNet ends in a convolution instead.
    """
    names = [name for name, m in model.named_modules() if isinstance(m, nn.Linear) and m.out_features == num_classes]
    return names[-1] if names else None


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def _cifar_stem(model: nn.Module) -> None:
    """3x3 stride-1 first convolution and no max-pool (He et al. 2016's CIFAR ResNets)."""
    conv = model.conv1
    model.conv1 = nn.Conv2d(conv.in_channels, conv.out_channels, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")  # as torchvision's ResNet
    model.maxpool = nn.Identity()


def build_classifier(
    architecture: str,
    num_classes: int,
    image_size: int,
    cifar_stem: bool | None = None,
    head_layers: tuple[nn.Module, ...] = (),
    pre_head_layers: tuple[nn.Module, ...] = (),
) -> nn.Module:
    """A randomly initialised torchvision ``architecture`` with ``num_classes`` outputs.

    Args:
        image_size: input side; with ``cifar_stem=None`` ResNets of inputs up to 64 pixels get the
            CIFAR stem.
        cifar_stem: force the CIFAR stem on (ResNet family only) or off.
        head_layers: modules applied to the logits, e.g. ``(SoftmaxERA(n, 0.6),)``: the final
            linear layer becomes ``nn.Sequential(*pre_head_layers, linear, *head_layers)``.
        pre_head_layers: modules applied to the features before the final linear layer, e.g.
            ``(nn.Dropout(0.2),)``.
    """
    from torchvision import models

    if architecture not in known_architectures():
        raise unknown_name("architecture", architecture, known_architectures(), hint="see torchvision.models.list_models()")
    model = models.get_model(architecture, weights=None, num_classes=num_classes, **_constructor_kwargs(architecture, image_size))
    stem = cifar_stem if cifar_stem is not None else image_size <= 64
    if stem and is_resnet(model):
        _cifar_stem(model)
    elif cifar_stem:
        raise ConfigError(
            f"cifar_stem: true applies to the ResNet family (resnet*, resnext*, wide_resnet*), not "
            f"{architecture}: drop the setting or pick a ResNet"
        )
    if head_layers or pre_head_layers:
        name = classifier_head_name(model, num_classes)
        if name is None:
            raise _no_head_error(architecture)
        linear = model.get_submodule(name)
        _set_submodule(model, name, nn.Sequential(*pre_head_layers, linear, *head_layers))
    return model
