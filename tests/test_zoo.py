import pytest
import torch
from torch import nn

from lava_bitsnn.ann.qcfs import QCFS
from lava_bitsnn.ann.relu_to_qcfs import relu_to_qcfs
from lava_bitsnn.ann.zoo import ARCHS, build_model

CASES = [
    ("mnist-cnn", dict(in_channels=1, image_size=8)),
    ("mnist-cnn", dict(in_channels=1, image_size=28)),
    ("vgg11", dict(image_size=32)),
    ("vgg16", dict(image_size=32)),
    ("resnet20", dict(image_size=32)),
    ("resnet18", dict(image_size=32)),
    ("resnet34", dict(image_size=32)),
    ("resnet18", dict(image_size=64, stem="imagenet")),
    ("mobilenetv2", dict(image_size=32)),
    ("mobilenetv2", dict(image_size=64, stem="imagenet")),
]


@pytest.mark.parametrize("arch,kwargs", CASES, ids=[f"{a}-{k}" for a, k in CASES])
def test_zoo_model_builds_and_runs(arch, kwargs):
    model = build_model(arch, num_classes=7, bits=3, **kwargs).eval()
    c = kwargs.get("in_channels", 3)
    s = kwargs["image_size"]
    with torch.no_grad():
        out = model(torch.randn(2, c, s, s))
    assert out.shape == (2, 7)
    qcfs = [m for m in model.modules() if isinstance(m, QCFS)]
    assert qcfs and all(m.bits == 3 for m in qcfs)
    assert not any(isinstance(m, (nn.ReLU, nn.MaxPool2d)) for m in model.modules())


def test_every_arch_is_covered():
    assert {a for a, _ in CASES} == set(ARCHS)


def test_mobilenetv2_has_depthwise_convs():
    model = build_model("mobilenetv2")
    assert any(isinstance(m, nn.Conv2d) and m.groups == m.in_channels > 1 for m in model.modules())


def test_unknown_arch_and_too_small_input():
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("alexnet")
    with pytest.raises(ValueError, match="at least"):
        build_model("vgg16", image_size=16)


def test_relu_to_qcfs_swaps_and_calibrates():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(4 * 3 * 3, 5), nn.ReLU6(), nn.Linear(5, 2))
    x = torch.randn(16, 1, 8, 8)
    relu_to_qcfs(model, bits=4, calibration=x)
    assert isinstance(model[1], QCFS) and isinstance(model[5], QCFS)
    assert isinstance(model[2], nn.AvgPool2d) and model[2].kernel_size == 2
    assert not any(isinstance(m, (nn.ReLU, nn.ReLU6, nn.MaxPool2d)) for m in model.modules())
    pre = model[0](x)
    expected = torch.quantile(pre[pre > 0], 0.999)
    assert torch.isclose(model[1].threshold, expected)
