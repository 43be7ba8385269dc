"""The fast path of the reference engine: fixed point, bit-serial neuron, both phases fused.

Why it is exact (tests compare it with the step-wise loops on real data and random nets):

* accumulate: by linearity ``Σ_t 2^(b−t) W·s(t) = W·code`` in integers. Codes are ≥ 0, so
  every partial sum of ``W·code`` lies between ``−Σ|W⁻|·max code`` and ``Σ W⁺·max code``;
  where both are below 2^24 the convolution runs in float32, whose integers are then all exact
  whatever the summation order. Otherwise it runs in float64 (exact below 2^53).
* saturation: the path runs only where no layer's accumulator can clip on any input (clipping
  step by step differs from clipping the fused sum; the engine's step-wise loop handles such
  networks).
* fire: greedy MSB-first subtraction of ``D·2^(b−t)``, ``t = 1..T``, from an integer ``u``
  emits exactly ``min(⌊u / (D·2^(b−T))⌋, 2^T − 1)`` (nothing for ``u < 0``) as the top ``T``
  bits of the code.
"""

from __future__ import annotations

import numpy as np
import torch

from lava_bitsnn.convert.fixed import accumulator_bound, signed_bounds
from lava_bitsnn.convert.synapse_ops import apply_synapse
from lava_bitsnn.core import dynamics as dyn
from lava_bitsnn.core.counts import LayerCounts
from lava_bitsnn.core.dynamics import ACC_MAX, exact_in_float32
from lava_bitsnn.core.ir import INPUT_BITS, Layer, Network
from lava_bitsnn.core.schedule import Schedule
from lava_bitsnn.reference.counting import (
    add_accumulate_phase,
    add_fire_phase,
    add_input_macs,
    add_synops,
)


def popcount(values: torch.Tensor, bits: int) -> torch.Tensor:
    """1-bits of non-negative integer-valued float tensors below ``2^bits``:
    ``x − Σ_{k≥1} ⌊x / 2^k⌋`` (in place where possible: big temporaries cost page faults)."""
    total = values.clone()
    shifted = torch.empty_like(values)
    for k in range(1, bits):
        total.sub_(torch.mul(values, 2.0 ** -k, out=shifted).floor_())
    return total


def spike_bits(code: torch.Tensor, bits: int, steps: int) -> torch.Tensor:
    """(N, steps, ...) bool spikes, MSB first, of integer codes."""
    code = code.long()
    return torch.stack([torch.bitwise_and(code >> (bits - t), 1).bool()
                        for t in range(1, steps + 1)], dim=1)


def may_clip(net: Network, schedule: Schedule) -> bool:
    """Whether some layer's 24-bit accumulator can saturate on some input, step by step. The
    bias ``b`` enters as ``acc_steps`` = A parts ``q = ⌊b/A⌋`` plus the remainder ``r`` at
    step 1 (``split_bias``), so its partial sums ``t·q + r`` lie between ``min(b, 0)`` and
    ``max(b, 0) + r`` (a negative bias's first sums can pass 0 by less than ``r``), so ``r``
    is added to the bound (``accumulator_bound``), which covers ``[min(b, 0), max(b, 0)]``.
    The biases ``bitsnn-export`` writes lie on the grid of their time steps, so there
    ``r = 0`` and this is the export's own check of the bound; at another ``--time-steps``
    it need not be."""
    for idx, layer in enumerate(net.layers[1:], start=1):
        _, extra = dyn.split_bias(layer.bias_int, schedule.layers[idx].acc_steps, True)
        if accumulator_bound(net, layer) + int(extra.max(initial=0)) > ACC_MAX:
            return True
    return False


class _LayerPlan:
    """Per-layer tensors and decisions, prepared once."""

    def __init__(self, net: Network, layer: Layer) -> None:
        bound = max(int(b.max()) for b in signed_bounds(net, layer))
        self.dtype = torch.float32 if exact_in_float32(bound) else torch.float64
        self.weights = [torch.from_numpy(s.weight_int.astype(np.float64)).to(self.dtype)
                        for s in layer.synapses]
        bias = layer.bias_full(integer=True)
        self.bias = torch.from_numpy(bias.astype(np.float64)).to(self.dtype)


class FusedFixed:
    def __init__(self, net: Network, schedule: Schedule, fan_outs: list[list[torch.Tensor]]
                 ) -> None:
        self.net = net
        self.schedule = schedule
        self.fan_outs = fan_outs
        self.plans = [_LayerPlan(net, layer) if idx else None
                      for idx, layer in enumerate(net.layers)]

    def _accumulate(self, idx: int, codes: list[torch.Tensor], spikes: list[torch.Tensor],
                    counts: LayerCounts) -> torch.Tensor:
        layer, plan = self.net.layers[idx], self.plans[idx]
        assert plan is not None
        n = codes[0].shape[0]
        add_accumulate_phase(counts, n, self.schedule.layers[idx])
        if self.schedule.layers[layer.synapses[0].source].graded:
            add_input_macs(counts, self.fan_outs[idx], codes[0], steps=1)
        else:
            add_synops(counts, self.fan_outs[idx], [spikes[s.source] for s in layer.synapses])
        u = None
        for syn, w in zip(layer.synapses, plan.weights, strict=True):
            y = apply_synapse(syn, codes[syn.source].to(plan.dtype), w)
            u = y if u is None else u + y
        assert u is not None
        return u.reshape(n, *layer.shape).add_(plan.bias)

    def _fire(self, idx: int, u: torch.Tensor, counts: LayerCounts
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """(code, per-neuron spike totals over the batch): the top ``T_l`` bits of
        ``min(⌊u / D⌋, K)``, nothing for ``u < 0``."""
        layer = self.net.layers[idx]
        steps = self.schedule.layers[idx].send_steps
        drop = layer.bits - steps
        if layer.max_code < layer.full_code:
            u = u.clamp_(max=float(layer.max_code * layer.threshold_unit))
        unit = int(layer.threshold_unit) << drop
        if unit & (unit - 1):  # not a power of two: divide in float64 (exact floor < 2^53)
            top = u.double().div_(unit)
        else:
            top = u.mul_(1.0 / unit)  # u is not needed any more
        top = top.floor_().clamp_(0, (1 << steps) - 1)
        per_neuron = popcount(top, steps).sum(dim=0, dtype=torch.float64)
        add_fire_phase(counts, u.shape[0], steps, int(per_neuron.sum()))
        return (top.mul_(float(1 << drop)) if drop else top), per_neuron

    def run(self, pixels: torch.Tensor, counts: list[LayerCounts], record: bool
            ) -> tuple[torch.Tensor, list[torch.Tensor], list[np.ndarray | None]]:
        """(logits, codes of the input and hidden layers, spikes) of uint8-valued pixels;
        ``counts`` are filled in."""
        x = pixels.float()
        codes: list[torch.Tensor] = [x]
        spikes_per_neuron = [popcount(x, INPUT_BITS).sum(dim=0, dtype=torch.float64)]
        recorded: list[np.ndarray | None] = [None]
        for idx, layer in enumerate(self.net.layers[1:], start=1):
            u = self._accumulate(idx, codes, spikes_per_neuron, counts[idx])
            if layer.kind == "output":
                logits = dyn.logits(u.double().numpy(), layer.threshold_unit, integer=True)
                return torch.from_numpy(logits), codes, recorded + [None]
            code, per_neuron = self._fire(idx, u, counts[idx])
            codes.append(code)
            spikes_per_neuron.append(per_neuron)
            recorded.append(spike_bits(code, layer.bits, self.schedule.layers[idx].send_steps)
                            .numpy() if record else None)
        raise AssertionError("a network ends with its output layer")
