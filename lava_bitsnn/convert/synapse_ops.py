"""The linear map of a synapse (sum-pool → flatten → conv/dense) on batched tensors, and its
fan-out. Used by the converter (folding the input normalisation) and the reference engine."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from lava_bitsnn.convert.ir import Synapse


def sum_pool(x: torch.Tensor, k: int) -> torch.Tensor:
    if k == 1:
        return x
    n, c, h, w = x.shape
    return x.reshape(n, c, h // k, k, w // k, k).sum(dim=(3, 5))


def apply_synapse(syn: Synapse, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``x``: (N, *source shape) → (N, *target shape), with the given weight tensor."""
    if syn.pool > 1:
        x = sum_pool(x, syn.pool)
    if syn.flatten:
        x = x.reshape(x.shape[0], -1)
    if syn.kind == "dense":
        return x @ weight.T
    return F.conv2d(x, weight, stride=syn.stride, padding=syn.padding, groups=syn.groups)


def fan_out(syn: Synapse, source_shape: tuple[int, ...]) -> np.ndarray:
    """Number of target neurons each source neuron reaches through ``syn`` (borders, strides,
    groups and pools included); shape = source shape."""
    x = torch.zeros((1, *source_shape), dtype=torch.float64, requires_grad=True)
    ones = torch.from_numpy((np.asarray(syn.weight) != 0).astype(np.float64))
    apply_synapse(syn, x, ones).sum().backward()
    return x.grad[0].numpy().round().astype(np.int64)
