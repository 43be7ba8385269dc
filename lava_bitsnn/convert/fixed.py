"""Loihi-style fixed point for the IR (docs/method.md §5).

Per layer an integer threshold unit ``D`` (a power of two) fixes the accumulator's unit
``Δ/D``. Weights are signed 8-bit mantissas ``m ∈ [-128, 127]`` times ``2**e`` with one
exponent ``e ≥ 0`` per synapse (so ``m·2**e`` with ``e ≥ 1`` is Lava fixed-point Dense's even
grid with ``weight_exp = e − 1``). The total bias is rounded to a multiple of the layer's
accumulate steps so that the per-step bias is an integer. ``D`` starts at
``min(2**16, 2**(22 − b))`` and is halved until the worst-case accumulator — every input at its
largest code on every positive weight (and zero on the negative ones, or the reverse) plus the
bias — fits a signed 24-bit register. Overflow can then not happen for any input.
"""

from __future__ import annotations

import math

import numpy as np

from lava_bitsnn.core.dynamics import bias_grid, top_threshold
from lava_bitsnn.core.ir import (
    ACC_MAX,
    ACCUMULATOR_BITS,
    MANTISSA_MAX,
    MANTISSA_MIN,
    PIXEL_MAX,
    Layer,
    Network,
)
from lava_bitsnn.core.schedule import build_schedule
from lava_bitsnn.errors import BitsnnError

D_CAP_LOG2 = 16


def quantise_weights(weight: np.ndarray) -> tuple[np.ndarray, int]:
    """Round a weight tensor (already in accumulator units) to ``m · 2**e``."""
    wmax = float(np.max(np.abs(weight))) if weight.size else 0.0
    exp = max(0, math.ceil(math.log2(wmax / MANTISSA_MAX))) if wmax > 0 else 0
    mant = np.clip(np.round(weight / 2.0 ** exp), MANTISSA_MIN, MANTISSA_MAX).astype(np.int64)
    return mant << exp, exp


def _max_code(net: Network, source: int) -> int:
    src = net.layers[source]
    return PIXEL_MAX if src.kind == "input" else src.max_code


def signed_bounds(net: Network, layer: Layer) -> tuple[np.ndarray, np.ndarray]:
    """Per output channel, (Σ positive, Σ |negative|) of W · max code. Codes are ≥ 0, so every
    partial sum of a channel's ``Σ W · code``, in any order, lies in ``[−neg, pos]``."""
    positive = np.zeros(layer.shape[0], dtype=np.int64)
    negative = np.zeros(layer.shape[0], dtype=np.int64)
    for syn in layer.synapses:
        assert syn.weight_int is not None
        scale = _max_code(net, syn.source) * syn.pool_gain(net.layers[syn.source].shape)
        w = syn.weight_int.reshape(syn.weight_int.shape[0], -1)
        positive += np.where(w > 0, w, 0).sum(axis=1) * scale
        negative += np.where(w < 0, -w, 0).sum(axis=1) * scale
    return positive, negative


def accumulator_bound(net: Network, layer: Layer) -> int:
    """Worst-case |accumulator| of a quantised layer over all inputs (current plus bias)."""
    positive, negative = signed_bounds(net, layer)
    assert layer.bias_int is not None
    bias = layer.bias_int.reshape(layer.shape[0], -1)
    bound = np.maximum(positive + np.maximum(bias, 0).max(axis=1),
                       negative + np.maximum(-bias, 0).max(axis=1))
    return int(bound.max())


def layer_bound(net: Network, layer: Layer) -> int:
    """The layer's ``acc_bound``: the worst-case accumulator, and the top threshold ``K·D``
    that the fire chain compares with."""
    top = top_threshold(layer.threshold_unit, layer.max_code) if layer.kind == "neuron" else 0
    return max(accumulator_bound(net, layer), top)


def _quantise_layer(net: Network, layer: Layer, d: int, steps: int) -> int:
    """Fill the layer's integer fields for unit ``D = d``; return the accumulator bound."""
    delta = layer.step if layer.kind == "neuron" else 1.0
    for syn in layer.synapses:
        syn.weight_int, syn.weight_exp = quantise_weights(syn.weight / delta * d)
    assert layer.bias is not None
    layer.threshold_unit = d
    layer.bias_int = bias_grid(layer.bias / delta * d, steps, np.round).astype(np.int64)
    return layer_bound(net, layer)


def quantise_network(net: Network) -> None:
    """Choose ``D``, integer weights and biases for every layer (in place)."""
    schedule = build_schedule(net)
    for idx, layer in enumerate(net.layers[1:], start=1):
        steps = schedule.layers[idx].acc_steps
        start = min(D_CAP_LOG2, 22 - layer.bits) if layer.kind == "neuron" else D_CAP_LOG2
        for log2d in range(start, 0, -1):  # D ≥ 2 keeps D/2 (the IF v0) an integer
            bound = _quantise_layer(net, layer, 1 << log2d, steps)
            if bound <= ACC_MAX:
                break
        else:
            raise BitsnnError(f"layer {layer.name}: the worst-case accumulator ({bound}) exceeds "
                              f"{ACCUMULATOR_BITS} bits even at the coarsest scale")
        layer.acc_bound = bound
        layer.note = "" if log2d == start else (
            f"scale reduced from D=2^{start} to 2^{log2d} to fit {ACCUMULATOR_BITS} bits")


def float_from_fixed(net: Network) -> Network:
    """The float network whose parameters are exactly the integer grid (Δ = 1 per layer,
    weights and biases divided by the power-of-two D): float64 arithmetic on it is exact, so
    its float SNN must equal the integer SNN bit for bit."""
    layers = []
    for layer in net.layers:
        if layer.kind == "input":
            layers.append(layer)
            continue
        d = float(layer.threshold_unit)
        syns = [type(s)(**{**s.__dict__, "weight": s.weight_int.astype(np.float64) / d})
                for s in layer.synapses]
        layers.append(type(layer)(**{**layer.__dict__, "synapses": syns, "step": 1.0,
                                     "bias": layer.bias_int.astype(np.float64) / d}))
    return type(net)(**{**net.__dict__, "layers": layers})
