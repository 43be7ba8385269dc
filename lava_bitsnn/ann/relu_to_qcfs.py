"""Turn a ReLU-trained model into a QCFS model for fine-tuning (paper A.9).

Every ``nn.ReLU``/``nn.ReLU6`` module becomes ``QCFS(bits)`` and every ``nn.MaxPool2d`` an
``nn.AvgPool2d`` of the same geometry (max-pooling has no exact spiking form). Thresholds are
initialised from the data: λ is the 99.9th percentile of the positive pre-activations of a
calibration batch, a common conversion heuristic; fine-tuning then learns them.
"""

from __future__ import annotations

import torch
from torch import nn

from lava_bitsnn.ann.qcfs import QCFS


def _replace_children(module: nn.Module, bits: int) -> None:
    for name, child in module.named_children():
        if isinstance(child, (nn.ReLU, nn.ReLU6)):
            setattr(module, name, QCFS(bits))
        elif isinstance(child, nn.MaxPool2d):
            setattr(module, name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding))
        else:
            _replace_children(child, bits)


@torch.no_grad()
def calibrate_thresholds(model: nn.Module, batch: torch.Tensor, quantile: float = 0.999) -> None:
    """Set each QCFS threshold to a quantile of its positive inputs on ``batch``."""
    layers = [m for m in model.modules() if isinstance(m, QCFS)]
    seen: dict[QCFS, torch.Tensor] = {}
    hooks = [m.register_forward_pre_hook(lambda m, inp: seen.__setitem__(m, inp[0]))
             for m in layers]
    model.eval()
    try:
        model(batch)
    finally:
        for h in hooks:
            h.remove()
    for m in layers:
        z = seen[m].flatten()
        z = z[z > 0]
        if z.numel():
            m.threshold.fill_(max(float(torch.quantile(z.float()[:1_000_000], quantile)), 1e-3))


def relu_to_qcfs(model: nn.Module, bits: int, calibration: torch.Tensor | None = None) -> nn.Module:
    """Swap activations and pools in place; calibrate thresholds if a batch is given."""
    _replace_children(model, bits)
    if calibration is not None:
        calibrate_thresholds(model, calibration)
    return model
