"""Model zoo: QCFS networks built only from the supported layer set.

Supported layers (what the converter accepts): Conv2d (stride, padding, groups), Linear,
BatchNorm1d/2d (folded), AvgPool2d / AdaptiveAvgPool2d(1) (folded into the next synapse),
Flatten, residual add (``ResidualBlock``), QCFS. Pooling is always average pooling.

Every constructor takes ``in_channels``, ``image_size``, ``num_classes`` and ``bits``; the
checkpoint stores the architecture name and these arguments so the model can be rebuilt.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from torch import nn

from lava_bitsnn.ann.qcfs import QCFS


def conv_bn_act(cin: int, cout: int, bits: int, kernel: int = 3, stride: int = 1,
                groups: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, groups=groups,
                  bias=False),
        nn.BatchNorm2d(cout),
        QCFS(bits),
    ]


class ResidualBlock(nn.Module):
    """``act(body(x) + shortcut(x))``: the block's output neuron has two synaptic inputs."""

    def __init__(self, body: nn.Sequential, shortcut: nn.Module, act: QCFS) -> None:
        super().__init__()
        self.body = body
        self.shortcut = shortcut
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module:
    if stride == 1 and cin == cout:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))


def basic_block(cin: int, cout: int, stride: int, bits: int) -> ResidualBlock:
    body = nn.Sequential(
        *conv_bn_act(cin, cout, bits, stride=stride),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
    )
    return ResidualBlock(body, _shortcut(cin, cout, stride), QCFS(bits))


def _check_size(image_size: int, reduction: int, arch: str) -> None:
    if image_size < reduction:
        raise ValueError(f"{arch} needs images of at least {reduction}x{reduction} pixels, "
                         f"got {image_size}")


def _classifier_head(channels: int, num_classes: int) -> list[nn.Module]:
    return [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)]


def mnist_cnn(in_channels: int = 1, image_size: int = 28, num_classes: int = 10,
              bits: int = 4) -> nn.Sequential:
    """Four 3×3 convs (32-32-64-64), avg-pool after the 2nd and 4th, fc 256, fc classes."""
    _check_size(image_size, 4, "mnist-cnn")
    side = image_size // 4
    return nn.Sequential(
        *conv_bn_act(in_channels, 32, bits),
        *conv_bn_act(32, 32, bits),
        nn.AvgPool2d(2),
        *conv_bn_act(32, 64, bits),
        *conv_bn_act(64, 64, bits),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * side * side, 256, bias=False),
        nn.BatchNorm1d(256),
        QCFS(bits),
        nn.Linear(256, num_classes),
    )


_VGG_CFG = {
    "vgg11": [64, "P", 128, "P", 256, 256, "P", 512, 512, "P", 512, 512, "P"],
    "vgg16": [64, 64, "P", 128, 128, "P", 256, 256, 256, "P", 512, 512, 512, "P",
              512, 512, 512, "P"],
}


def _vgg(name: str, in_channels: int, image_size: int, num_classes: int,
         bits: int) -> nn.Sequential:
    _check_size(image_size, 32, name)
    layers: list[nn.Module] = []
    cin, side = in_channels, image_size
    for item in _VGG_CFG[name]:
        if item == "P":
            layers.append(nn.AvgPool2d(2))
            side //= 2
        else:
            layers += conv_bn_act(cin, int(item), bits)
            cin = int(item)
    layers += [nn.Flatten(), nn.Linear(cin * side * side, 512, bias=False),
               nn.BatchNorm1d(512), QCFS(bits), nn.Linear(512, num_classes)]
    return nn.Sequential(*layers)


def vgg11(in_channels: int = 3, image_size: int = 32, num_classes: int = 10,
          bits: int = 4) -> nn.Sequential:
    return _vgg("vgg11", in_channels, image_size, num_classes, bits)


def vgg16(in_channels: int = 3, image_size: int = 32, num_classes: int = 10,
          bits: int = 4) -> nn.Sequential:
    return _vgg("vgg16", in_channels, image_size, num_classes, bits)


def _stem(in_channels: int, channels: int, bits: int, stem: str) -> list[nn.Module]:
    """CIFAR stem: one 3×3 conv at stride 1. ImageNet stem: 7×7/2 conv then 2×2 avg-pool."""
    if stem == "cifar":
        return conv_bn_act(in_channels, channels, bits)
    if stem == "imagenet":
        return conv_bn_act(in_channels, channels, bits, kernel=7, stride=2) + [nn.AvgPool2d(2)]
    raise ValueError(f"stem must be 'cifar' or 'imagenet', got {stem!r}")


def _resnet(name: str, widths: list[int], blocks: list[int], in_channels: int, image_size: int,
            num_classes: int, bits: int, stem: str, width: int) -> nn.Sequential:
    """``width`` multiplies the channels of every stage and of the stem (wide ResNets,
    Zagoruyko & Komodakis 2016, keep their stem at 16)."""
    _check_size(image_size, 8 if stem == "cifar" else 32, name)
    if width < 1:
        raise ValueError(f"width must be at least 1, got {width}")
    widths = [c * width for c in widths]
    layers = _stem(in_channels, widths[0], bits, stem)
    cin = widths[0]
    for stage, (channels, count) in enumerate(zip(widths, blocks, strict=True)):
        for i in range(count):
            stride = 2 if (stage > 0 and i == 0) else 1
            layers.append(basic_block(cin, channels, stride, bits))
            cin = channels
    return nn.Sequential(*layers, *_classifier_head(cin, num_classes))


def resnet20(in_channels: int = 3, image_size: int = 32, num_classes: int = 10, bits: int = 4,
             stem: str = "cifar", width: int = 1) -> nn.Sequential:
    return _resnet("resnet20", [16, 32, 64], [3, 3, 3], in_channels, image_size, num_classes,
                   bits, stem, width)


def resnet18(in_channels: int = 3, image_size: int = 32, num_classes: int = 10, bits: int = 4,
             stem: str = "cifar", width: int = 1) -> nn.Sequential:
    return _resnet("resnet18", [64, 128, 256, 512], [2, 2, 2, 2], in_channels, image_size,
                   num_classes, bits, stem, width)


def resnet34(in_channels: int = 3, image_size: int = 32, num_classes: int = 10, bits: int = 4,
             stem: str = "cifar", width: int = 1) -> nn.Sequential:
    return _resnet("resnet34", [64, 128, 256, 512], [3, 4, 6, 3], in_channels, image_size,
                   num_classes, bits, stem, width)


# (expansion t, channels c, repeats n, first stride s) of MobileNetV2 (Sandler et al. 2018).
_MBV2_CFG = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
             (6, 160, 3, 2), (6, 320, 1, 1)]


def inverted_residual(cin: int, cout: int, stride: int, expand: int, bits: int) -> nn.Module:
    """MobileNetV2 block. The projection is followed by a QCFS (after the residual add), unlike
    the original linear bottleneck: a spiking layer must end in a neuron."""
    hidden = cin * expand
    body: list[nn.Module] = []
    if expand != 1:
        body += conv_bn_act(cin, hidden, bits, kernel=1)
    body += conv_bn_act(hidden, hidden, bits, stride=stride, groups=hidden)
    body += [nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
    if stride == 1 and cin == cout:
        return ResidualBlock(nn.Sequential(*body), nn.Identity(), QCFS(bits))
    return nn.Sequential(*body, QCFS(bits))


def mobilenetv2(in_channels: int = 3, image_size: int = 32, num_classes: int = 10,
                bits: int = 4, stem: str = "cifar") -> nn.Sequential:
    """MobileNetV2 with depthwise convs. The CIFAR stem keeps stride 1 in the stem and the
    second stage (32×32 inputs end at 4×4); the ImageNet stem is the original."""
    _check_size(image_size, 8 if stem == "cifar" else 32, "mobilenetv2")
    if stem not in ("cifar", "imagenet"):
        raise ValueError(f"stem must be 'cifar' or 'imagenet', got {stem!r}")
    layers = conv_bn_act(in_channels, 32, bits, stride=1 if stem == "cifar" else 2)
    cin = 32
    for stage, (t, c, n, s) in enumerate(_MBV2_CFG):
        for i in range(n):
            stride = s if i == 0 else 1
            if stem == "cifar" and stage == 1:
                stride = 1
            layers.append(inverted_residual(cin, c, stride, t, bits))
            cin = c
    layers += conv_bn_act(cin, 1280, bits, kernel=1)
    return nn.Sequential(*layers, *_classifier_head(1280, num_classes))


ARCHS: dict[str, Callable[..., nn.Module]] = {
    "mnist-cnn": mnist_cnn,
    "vgg11": vgg11,
    "vgg16": vgg16,
    "resnet18": resnet18,
    "resnet20": resnet20,
    "resnet34": resnet34,
    "mobilenetv2": mobilenetv2,
}


ARCH_OPTIONS = ("stem", "width")  # constructor keywords the CLI exposes (--stem, --width)


def archs_taking(option: str) -> tuple[str, ...]:
    """The architectures whose constructor has the keyword ``option`` (``stem``, ``width``)."""
    return tuple(a for a, f in ARCHS.items() if option in inspect.signature(f).parameters)


def build_model(arch: str, **kwargs) -> nn.Module:
    """Build a zoo model by name; ``kwargs`` are the constructor arguments."""
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHS)}")
    return ARCHS[arch](**kwargs)
