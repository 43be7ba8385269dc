"""The integer QANN on the fixed-point grid, evaluated directly (no spikes, no time steps):
``code = clip(floor((Σ W_int·code_src + bias_int) / D), 0, K)``, each hidden code truncated to
its top ``T`` bits. The bit-serial SNN in fixed point must equal it exactly."""

from __future__ import annotations

import numpy as np
import torch

from lava_bitsnn.convert.synapse_ops import apply_synapse
from lava_bitsnn.core import dynamics as dyn
from lava_bitsnn.core.ir import Network
from lava_bitsnn.core.schedule import build_schedule


def integer_qann(net: Network, pixels: np.ndarray, time_steps: int | None = None
                 ) -> list[np.ndarray]:
    """Per-layer codes (input pixels, hidden codes) and the integer logits ``u`` last."""
    schedule = build_schedule(net, "bit-serial", time_steps)
    codes = [torch.from_numpy(np.asarray(pixels).astype(np.float64))]
    with torch.no_grad():
        for layer, timing in zip(net.layers[1:], schedule.layers[1:], strict=True):
            u = sum(apply_synapse(s, codes[s.source], torch.from_numpy(
                s.weight_int.astype(np.float64))).reshape(-1, *layer.shape)
                for s in layer.synapses)
            u = u + torch.from_numpy(layer.bias_full(True).astype(np.float64))
            if layer.kind == "output":
                codes.append(u)
                break
            codes.append(dyn.qann_code(u, layer.threshold_unit, layer.max_code,
                                       layer.bits - timing.send_steps, torch.floor))
    return [c.numpy() for c in codes]
