"""Random small QCFS networks for property-based tests: conv (stride, depthwise), avg-pool,
residual blocks, flatten + dense, with random thresholds and BN statistics."""

from __future__ import annotations

import torch
from torch import nn

from lava_bitsnn.ann.qcfs import QCFS
from lava_bitsnn.ann.zoo import ResidualBlock


def _bn(channels: int, gen: torch.Generator, dims: int = 2) -> nn.Module:
    bn = nn.BatchNorm2d(channels) if dims == 2 else nn.BatchNorm1d(channels)
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(channels, generator=gen) * 0.3)
        bn.running_var.copy_(torch.rand(channels, generator=gen) + 0.5)
        bn.weight.copy_(torch.rand(channels, generator=gen) + 0.5)
        bn.bias.copy_(torch.randn(channels, generator=gen) * 0.5)
    return bn


def random_qcfs_net(seed: int, bits: int, in_channels: int = 1, size: int = 8,
                    blocks: tuple[str, ...] = ("conv",), classes: int = 5,
                    max_codes: tuple[int, ...] = ()) -> nn.Sequential:
    """``blocks`` from: conv, stride2, depthwise, pool, gpool, mpool, residual (``gpool``: an
    AvgPool2d of window 3 with stride 1 or 2, padding 1, ``count_include_pad`` either way, then
    a convolution; ``mpool``: a MaxPool2d of window 2 or 3, stride 1 or 2, padding 0 or 1, then
    a convolution). With ``max_codes``, each QCFS draws its largest code K from them (and needs
    ⌈log2(K+1)⌉ bits) instead of 2^bits − 1. The same arguments give the same network,
    whatever ran before (the layers' default init draws from a generator seeded here)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return _random_qcfs_net(seed, bits, in_channels, size, blocks, classes, max_codes)


def _random_qcfs_net(seed: int, bits: int, in_channels: int, size: int,
                     blocks: tuple[str, ...], classes: int, max_codes: tuple[int, ...]
                     ) -> nn.Sequential:
    gen = torch.Generator().manual_seed(seed)

    def _act(bits: int, gen: torch.Generator) -> QCFS:
        threshold = float(torch.rand(1, generator=gen)) * 3 + 0.5
        if max_codes:
            k = max_codes[int(torch.randint(len(max_codes), (1,), generator=gen))]
            return QCFS(threshold=threshold, max_code=k)
        return QCFS(bits, threshold=threshold)

    layers: list[nn.Module] = []
    c = 3
    layers += [nn.Conv2d(in_channels, c, 3, padding=1, bias=False), _bn(c, gen), _act(bits, gen)]
    side = size
    for kind in blocks:
        if kind == "conv":
            layers += [nn.Conv2d(c, c + 1, 3, padding=1), _bn(c + 1, gen), _act(bits, gen)]
            c += 1
        elif kind == "stride2" and side >= 4:
            layers += [nn.Conv2d(c, c, 3, stride=2, padding=1, bias=False), _bn(c, gen),
                       _act(bits, gen)]
            side = (side + 1) // 2
        elif kind == "depthwise":
            layers += [nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False), _bn(c, gen),
                       _act(bits, gen)]
        elif kind == "pool" and side % 2 == 0 and side >= 4:
            layers.append(nn.AvgPool2d(2))
            side //= 2
        elif kind == "gpool" and side >= 3:
            stride = 1 + int(torch.randint(2, (1,), generator=gen))
            include = bool(torch.randint(2, (1,), generator=gen))
            if not isinstance(layers[-1], (nn.AvgPool2d, nn.MaxPool2d)):  # two in a row do not
                layers.append(nn.AvgPool2d(3, stride, 1, count_include_pad=include))
                side = (side - 1) // stride + 1
            layers += [nn.Conv2d(c, c, 3, padding=1, bias=False), _bn(c, gen), _act(bits, gen)]
        elif kind == "mpool" and side >= 3:
            k = 2 + int(torch.randint(2, (1,), generator=gen))
            stride = 1 + int(torch.randint(2, (1,), generator=gen))
            pad = int(torch.randint(k // 2 + 1, (1,), generator=gen))
            if not isinstance(layers[-1], (nn.AvgPool2d, nn.MaxPool2d)):
                layers.append(nn.MaxPool2d(k, stride, pad))
                side = (side + 2 * pad - k) // stride + 1
            layers += [nn.Conv2d(c, c, 3, padding=1, bias=False), _bn(c, gen), _act(bits, gen)]
        elif kind == "residual":
            body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), _bn(c, gen),
                                 _act(bits, gen), nn.Conv2d(c, c, 3, padding=1, bias=False),
                                 _bn(c, gen))
            layers.append(ResidualBlock(body, nn.Identity(), _act(bits, gen)))
    layers += [nn.Flatten(), nn.Linear(c * side * side, 6, bias=False), _bn(6, gen, dims=1),
               _act(bits, gen), nn.Linear(6, classes)]
    model = nn.Sequential(*layers)
    with torch.no_grad():  # larger weights than default init so codes spread over levels
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.mul_(2.0)
    return model.eval()
