"""torchvision models (random weights, built locally, nothing downloaded): ReLU → QCFS, export,
and the bit-serial SNN equal to the integer QANN and the float SNN to the ANN (issue 11)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lava_bitsnn.ann.relu_to_qcfs import relu_to_qcfs
from lava_bitsnn.convert.model import convert_model
from lava_bitsnn.verify import ann_trace, verify_batch

torchvision = pytest.importorskip("torchvision")


def _random_bn(model: nn.Module) -> nn.Module:
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()


def _check(model: nn.Module, shape: tuple[int, int, int], bits: int = 3, lava: bool = False,
           maxpool: str = "avg"):
    from lava_bitsnn.ann.data import normalise

    torch.manual_seed(0)
    mean, std = [0.5] * shape[0], [0.25] * shape[0]
    pixels = np.random.default_rng(0).integers(0, 256, (10, *shape)).astype(np.uint8)
    model = relu_to_qcfs(_random_bn(model), bits, calibration=normalise(pixels[2:], mean, std),
                         maxpool=maxpool)
    net = convert_model(model, shape, mean, std, [str(i) for i in range(10)])
    pixels = pixels[:2]
    report = verify_batch(model, net, pixels, np.zeros(2, dtype=np.int64))
    for r in report.layers:
        assert r.qann_vs_fixed == 0 and r.ann_vs_float_unexplained == 0, r
    assert report.logit_mismatches == 0
    codes = ann_trace(model, pixels, mean, std).codes
    last = [layer.name for layer in net.layers if layer.kind == "neuron"][-1]
    assert codes[last].max() > 0  # the signal reaches the last hidden layer
    if lava:  # the converted network as Lava processes, fixed point, equal to the reference
        from lava_bitsnn.lava.runner import LavaRunner
        from lava_bitsnn.reference import ReferenceEngine

        result = LavaRunner(net, "fixed", batch_size=2).run_dataset(pixels, record=True)
        ref = ReferenceEngine(net, "fixed", fused=False).run_batch(pixels)
        for i in range(1, len(net.layers) - 1):
            np.testing.assert_array_equal(result.codes[i], ref.codes[i], err_msg=net.layers[i].name)
        np.testing.assert_array_equal(result.logits, ref.logits)
    return net


def test_resnet18_cifar_stem():
    model = torchvision.models.resnet18(num_classes=10)
    model.conv1 = nn.Conv2d(1, 64, 3, 1, 1, bias=False)  # the usual 1-channel 3×3 stem
    model.maxpool = nn.Identity()
    net = _check(model, (1, 32, 32), lava=True)
    names = [layer.name for layer in net.layers]
    assert "layer1.0.relu#2" in names  # torchvision reuses one ReLU twice per block
    assert sum(len(layer.synapses) == 2 for layer in net.layers) == 8  # 8 residual adds


def test_vgg11_bn():
    # at 32×32 the features end at 1×1; torchvision's AdaptiveAvgPool2d((7, 7)) replicates it,
    # folded into the first classifier Linear
    net = _check(torchvision.models.vgg11_bn(num_classes=10), (3, 32, 32), lava=True)
    syn = net.layers[-3].synapses[0]  # classifier.1 reads the 512×2×2 map of features.27,
    assert syn.weight.shape == (4096, 512 * 2 * 2) and syn.pool == 1 and syn.flatten
    # (the last 2×2 pool and the 1×1 → 7×7 replication are both inside its weights)


def test_mobilenet_v2():
    net = _check(torchvision.models.mobilenet_v2(num_classes=10, width_mult=0.5), (3, 32, 32),
                 lava=True)
    assert max(len(layer.synapses) for layer in net.layers) >= 2  # composed residual sums


def test_resnet34_cifar_stem():
    model = torchvision.models.resnet34(num_classes=10)
    model.conv1 = nn.Conv2d(1, 64, 3, 1, 1, bias=False)
    model.maxpool = nn.Identity()
    net = _check(model, (1, 32, 32))
    assert sum(len(layer.synapses) == 2 for layer in net.layers) == 16  # 3+4+6+3 residual adds


def test_vgg16_bn():
    net = _check(torchvision.models.vgg16_bn(num_classes=10), (3, 32, 32))
    assert sum(layer.kind == "neuron" for layer in net.layers) == 13 + 2  # 13 convs, 2 FC
    syn = net.layers[-3].synapses[0]
    assert syn.weight.shape == (4096, 512 * 2 * 2) and syn.pool == 1 and syn.flatten


def test_resnet18_imagenet_stem_after_maxpool_avg():
    """The ImageNet stem's 3×3 stride-2 padded MaxPool, swapped for the AvgPool of the same
    geometry, becomes an overlapping, padded sum-pool stage of ``layer1.0.conv1`` and of the
    identity shortcut beside it: exact in both engines and on Lava."""
    net = _check(torchvision.models.resnet18(num_classes=10), (3, 64, 64), lava=True)
    pooled = [(s.pool, s.pool_step, s.pool_padding) for layer in net.layers
              for s in layer.synapses if s.pooled]
    assert pooled == [(3, 2, 1), (3, 2, 1), (2, 2, 0)]  # the stem twice, the global pool


def test_resnet18_imagenet_stem_keeps_its_maxpool():
    """``maxpool="keep"``: the stem's own MaxPool2d(3, 2, 1), taken bit-serially by
    ``layer1.0.conv1`` and the shortcut beside it: the SNN equals the ANN with the max-pool."""
    net = _check(torchvision.models.resnet18(num_classes=10), (3, 64, 64), maxpool="keep")
    assert [s.pool_kind for layer in net.layers for s in layer.synapses if s.pooled] == \
        ["max", "max", "sum"]


@pytest.mark.parametrize("pools,message", [
    ((nn.AvgPool2d(3, 2, 1, ceil_mode=True),), "ceil_mode=True"),
    ((nn.AvgPool2d(3, 1, 1), nn.AvgPool2d(2)), "two average pools in a row"),
])
def test_unsupported_pools_before_a_convolution_are_refused(pools, message):
    from lava_bitsnn.ann.qcfs import QCFS
    from lava_bitsnn.errors import BitsnnError

    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), QCFS(2), *pools,
                          nn.Conv2d(2, 2, 3, padding=1), QCFS(2), nn.Flatten(),
                          nn.LazyLinear(3)).eval()
    model(torch.zeros(1, 1, 8, 8))
    with pytest.raises(BitsnnError, match=f"^{len(pools) + 2}: .*{message}"):
        convert_model(model, (1, 8, 8), [0.5], [0.25], ["a", "b", "c"])
