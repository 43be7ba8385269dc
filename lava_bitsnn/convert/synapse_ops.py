"""The linear map of a synapse (sum-pool → flatten → conv/dense) on batched torch tensors.
Used by the converter (folding the input normalisation) and the reference engine."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lava_bitsnn.core.ir import Synapse


def sum_pool(x: torch.Tensor, k: int) -> torch.Tensor:
    if k == 1:
        return x
    return F.avg_pool2d(x, k, divisor_override=1)


def apply_synapse(syn: Synapse, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``x``: (N, *source shape) → (N, *target shape), with the given weight tensor."""
    if syn.pool > 1:
        x = sum_pool(x, syn.pool)
    if syn.flatten:
        x = x.reshape(x.shape[0], -1)
    if syn.kind == "dense":
        return x @ weight.T
    return F.conv2d(x, weight, stride=syn.stride, padding=syn.padding, groups=syn.groups)
