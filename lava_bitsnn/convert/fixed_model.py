"""The exported fixed-point network as a trainable PyTorch model (``bitsnn-train --from CKPT
--fixed-point``).

``FixedPointNet`` is built from a converted IR network. Its forward pass is the integer QANN of
``lava_bitsnn.reference.qann`` on that network's grid: BN already folded, each synapse's
weights ``m · 2**e`` with an 8-bit mantissa ``m`` and the export's exponent ``e``, each total
bias a multiple of the layer's accumulate steps, the export's threshold unit ``D`` and
half-step bias shift, codes ``clip(floor(u / D), 0, K)`` truncated to the top ``T`` bits, and
logits ``u / D``. Every value it computes is an integer below 2**24 (or such an integer over a
power of two; the bias grid's one inexact step, dividing by the accumulate-step count, runs
in float64), so float32 and float64 give it exactly on the CPU: evaluated there, the model
*is* the fixed-point SNN that ``to_network`` exports (on CUDA, cuDNN may choose inexact
kernels, such as TF32 or Winograd: train there if you like, evaluate on the CPU).

Training moves the float parameters behind the grid: ``θ = m / 128`` per weight and
``β = bias_int / D`` per bias, rounded to the grid in the forward pass with straight-through
gradients (``D``, ``e`` and ``K`` stay the export's). After every optimiser step ``constrain_``
shrinks a layer whose worst-case accumulator would leave the signed 24-bit range.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from lava_bitsnn.ann.qcfs import QCFS, straight_through
from lava_bitsnn.convert.fixed import float_from_fixed, layer_bound
from lava_bitsnn.convert.synapse_ops import apply_synapse
from lava_bitsnn.core.dynamics import bias_grid, qann_code
from lava_bitsnn.core.ir import ACC_MAX, MANTISSA_MAX, MANTISSA_MIN, PIXEL_MAX, Layer, Network
from lava_bitsnn.core.schedule import build_schedule
from lava_bitsnn.errors import BitsnnError

MANTISSA_SCALE = 128.0  # θ = m / 128, so θ ∈ [−1, 1) for every layer


class FixedCode(QCFS):
    """``k = clip(floor(u / D), 0, K)``, then the top ``T`` of its ``b`` bits, on the integer
    accumulator ``u``; the output is ``k`` itself (``Δ = 1``). A QCFS so that training's
    bit-ℓ1, ``evaluate`` and ``bitsnn-verify``'s code recording treat it as one; ``layer_name``
    is its IR layer's name."""

    def __init__(self, layer: Layer, drop_bits: int) -> None:
        super().__init__(max_code=layer.max_code, threshold=float(layer.max_code))
        self.threshold.requires_grad_(False)
        self.layer_name = layer.name
        self.threshold_unit = int(layer.threshold_unit)
        self.drop_bits = drop_bits

    def level(self, z: torch.Tensor) -> torch.Tensor:
        return z / self.threshold_unit - 0.5  # the code is floor(level + ½) = floor(u / D)

    def code(self, z: torch.Tensor) -> torch.Tensor:
        return qann_code(z, self.threshold_unit, self.max_code, self.drop_bits, straight_through)

    def extra_repr(self) -> str:
        return f"{self.layer_name}: K={self.max_code}, D={self.threshold_unit}, " \
               f"top bits dropped {self.drop_bits}"


class FixedPointNet(nn.Module):
    """The integer QANN of ``net`` with trainable parameters on its grid. Takes normalised
    images like the ANN it came from (and rounds them back to the 8-bit pixels the SNN sees)."""

    def __init__(self, net: Network) -> None:
        super().__init__()
        if any(s.weight_int is None for layer in net.layers[1:] for s in layer.synapses):
            raise BitsnnError("the network has no integer weights (convert it first)")
        self.template = copy.deepcopy(net)
        schedule = build_schedule(self.template)
        mean = torch.tensor(net.normalisation["mean"], dtype=torch.float64)
        std = torch.tensor(net.normalisation["std"], dtype=torch.float64)
        self.register_buffer("mean", mean.reshape(1, -1, 1, 1).float())
        self.register_buffer("std", std.reshape(1, -1, 1, 1).float())
        self.theta = nn.ParameterList()
        self.beta = nn.ParameterList()
        self.codes = nn.ModuleList()
        for layer, timing in zip(self.template.layers[1:], schedule.layers[1:], strict=True):
            for syn in layer.synapses:
                self.theta.append(nn.Parameter(torch.from_numpy(
                    syn.mantissa.astype(np.float32) / MANTISSA_SCALE)))
            assert layer.bias_int is not None
            self.beta.append(nn.Parameter(torch.from_numpy(  # int / 2**k, exact in float32
                (layer.bias_int / layer.threshold_unit).astype(np.float32))))
            if layer.kind == "neuron":
                self.codes.append(FixedCode(layer, layer.bits - timing.send_steps))
        self._acc_steps = [t.acc_steps for t in schedule.layers]

    @property
    def time_steps(self) -> int:
        return self.template.time_steps

    def _layers(self) -> list[tuple[int, Layer, list[nn.Parameter], nn.Parameter]]:
        """(index, layer, its synapses' θ, its β) for every non-input layer."""
        out, i = [], 0
        for idx, layer in enumerate(self.template.layers[1:], start=1):
            n = len(layer.synapses)
            out.append((idx, layer, list(self.theta[i:i + n]), self.beta[idx - 1]))
            i += n
        return out

    def _grid(self, idx: int, layer: Layer, thetas: list[nn.Parameter], beta: nn.Parameter
              ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The layer's integer weights ``m · 2**e`` and total bias (a multiple of its
        accumulate steps), straight-through. The bias is rounded in float64 whatever the
        model's dtype: dividing by a step count such as 3 is inexact, and float32 could round a
        value near a half the other way, so the grid would depend on the dtype."""
        weights = [torch.clamp(straight_through(theta * MANTISSA_SCALE, torch.round), MANTISSA_MIN,
                               MANTISSA_MAX) * float(1 << syn.weight_exp)
                   for syn, theta in zip(layer.synapses, thetas, strict=True)]
        bias = bias_grid(beta.double() * layer.threshold_unit, self._acc_steps[idx],
                         lambda x: straight_through(x, torch.round))
        return weights, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pixels = torch.clamp(torch.round((x * self.std + self.mean) * PIXEL_MAX), 0, PIXEL_MAX)
        values: list[torch.Tensor] = [pixels]
        codes = iter(self.codes)
        for idx, layer, thetas, beta in self._layers():
            weights, bias = self._grid(idx, layer, thetas, beta)
            u = bias.reshape(bias.shape + (1,) * (len(layer.shape) - bias.dim())).to(
                pixels.dtype)
            for syn, w in zip(layer.synapses, weights, strict=True):
                u = u + apply_synapse(syn, values[syn.source], w.to(pixels.dtype)).reshape(
                    -1, *layer.shape)
            if layer.kind == "output":
                return u / layer.threshold_unit
            values.append(next(codes)(u))
        raise BitsnnError("the network has no output layer")

    def to_network(self) -> Network:
        """The IR of the current grid values (float parameters exactly ``int / D``, ``Δ = 1``),
        with every layer's ``acc_bound`` recomputed; an error if one leaves 24 bits.
        ``FixedPointNet(to_network())`` rebuilds this model."""
        self._sync()
        net = copy.deepcopy(self.template)
        for layer in net.layers[1:]:
            layer.acc_bound = layer_bound(net, layer)
            if layer.acc_bound > ACC_MAX:
                raise BitsnnError(f"layer {layer.name}: the worst-case accumulator "
                                  f"({layer.acc_bound}) exceeds 24 bits")
        return float_from_fixed(net)

    @torch.no_grad()
    def constrain_(self) -> None:
        """Shrink the parameters of any layer whose worst-case accumulator (on the grid) would
        exceed ``ACC_MAX``, until it fits."""
        for idx, layer, thetas, beta in self._layers():
            for _ in range(64):
                self._sync_layer(idx, layer, thetas, beta)
                bound = layer_bound(self.template, layer)
                if bound <= ACC_MAX:
                    break
                for p in (*thetas, beta):
                    p.mul_(ACC_MAX / bound * 0.999)
            else:
                raise BitsnnError(f"layer {layer.name}: its accumulator bound cannot be brought "
                                  "back within 24 bits")

    @torch.no_grad()
    def _sync(self) -> None:
        for row in self._layers():
            self._sync_layer(*row)

    def _sync_layer(self, idx: int, layer: Layer, thetas: list[nn.Parameter],
                    beta: nn.Parameter) -> None:
        """Write the layer's grid values into the template's integer fields."""
        weights, bias = self._grid(idx, layer, thetas, beta)
        for syn, w in zip(layer.synapses, weights, strict=True):
            syn.weight_int = w.detach().cpu().double().numpy().astype(np.int64)
        assert layer.bias_int is not None
        layer.bias_int = bias.detach().cpu().double().numpy().astype(np.int64).reshape(
            layer.bias_int.shape)
