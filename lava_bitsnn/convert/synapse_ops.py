"""The map of a synapse (sum- or max-pool → flatten → conv/dense) on batched torch tensors.
Used by the converter (folding the input normalisation) and the reference engine."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lava_bitsnn.core.ir import Synapse


def pool_stage(x: torch.Tensor, syn: Synapse) -> torch.Tensor:
    """The synapse's window sums (zero padding), times its ``pool_scale`` if any; for a
    max-pooling synapse the window maxima of the values (codes ≥ 0: the padding never
    wins)."""
    if not syn.pooled:
        return x
    if syn.pool_kind == "max":
        return F.max_pool2d(x, syn.pool, syn.pool_step, syn.pool_padding)
    x = F.avg_pool2d(x, syn.pool, syn.pool_step, syn.pool_padding, divisor_override=1)
    if syn.pool_scale is not None:
        x = x * torch.from_numpy(syn.pool_scale).to(x.device, x.dtype)
    return x


def apply_synapse(syn: Synapse, x: torch.Tensor, weight: torch.Tensor, pooled: bool = False
                  ) -> torch.Tensor:
    """``x``: (N, *source shape) → (N, *target shape), with the given weight tensor;
    ``pooled``: ``x`` has been through the pool stage already (the step-wise max-pool)."""
    if syn.pooled and not pooled:
        x = pool_stage(x, syn)
    if syn.flatten:
        x = x.reshape(x.shape[0], -1)
    if syn.kind == "dense":
        return x @ weight.T
    return F.conv2d(x, weight, stride=syn.stride, padding=syn.padding, groups=syn.groups)
