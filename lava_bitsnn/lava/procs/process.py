"""Lava Processes of the bit-serial SNN. Shapes carry a leading batch dimension ``B``.

Timing (global step ``k`` from 1): every synapse adds one step. A layer's *window* for the
``n``-th batch starts at ``start + n·period``; a bit-serial neuron accumulates for
``acc_steps`` steps, then fires ``fire_steps`` steps MSB-first (double-buffered, so it can
accumulate batch n+1 while firing batch n). An IF neuron integrates and fires in the same
``steps`` steps. The network builder chooses the starts so that each input lands in its window.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var

from lava_bitsnn.core.counts import NEURON_OPS


class ImageSource(AbstractProcess):
    """Sends images (periods, B, C, H, W) of 8-bit pixels: ``bit-serial`` MSB-first over 8
    steps, or ``graded`` (the pixel value) for ``steps`` steps (1 for the bit-serial network's
    graded input, T for the IF baseline)."""

    def __init__(self, *, images: np.ndarray, encoding: str, period: int, steps: int,
                 name: str = "input") -> None:
        super().__init__(images=images, encoding=encoding, period=period, steps=steps,
                         name=name)
        self.images = Var(shape=images.shape, init=images)
        self.s_out = OutPort(shape=images.shape[1:])


class BitSynapse(AbstractProcess):
    """Sum-pool → flatten → conv/dense, one-step send-first like Lava's Dense/Conv, with an
    optional extra ``delay`` (residual shortcuts). Counts synaptic ops = Σ spikes × fan-out
    (graded input: Σ connections, as MACs)."""

    def __init__(self, *, in_shape: tuple[int, ...], out_shape: tuple[int, ...],
                 weight: np.ndarray, fan_out: np.ndarray, kind: str, stride: int = 1,
                 padding: int = 0, groups: int = 1, pool: int = 1, flatten: bool = False,
                 delay: int = 0, graded: bool = False, src_start: int = 1,
                 src_steps: int = 1, period: int = 1, periods: int = 1,
                 name: str = "synapse") -> None:
        super().__init__(in_shape=in_shape, out_shape=out_shape, kind=kind, stride=stride,
                         padding=padding, groups=groups, pool=pool, flatten=flatten,
                         delay=delay, graded=graded, src_start=src_start, src_steps=src_steps,
                         period=period, periods=periods, name=name)
        self.s_in = InPort(shape=in_shape)
        self.a_out = OutPort(shape=out_shape)
        self.weight = Var(shape=weight.shape, init=weight)
        self.fan_out = Var(shape=fan_out.shape, init=fan_out)
        # counters per (batch index, sample slot): the builder sums the real samples only
        self.synops = Var(shape=(periods, in_shape[0]), init=0)
        self.spikes_in = Var(shape=(periods, in_shape[0]), init=0)


class BitSerialNeuron(AbstractProcess):
    """Deferred-firing bit-serial neuron (DESIGN.md §2): accumulate
    ``u ← u + (I(t) << (src_bits − t)) + bias_step`` for ``acc_steps`` steps, then fire
    ``s(t) = [u ≥ θ_t]``, ``u ← u − s(t)·θ_t``, ``θ_t = unit·2^(bits−t)`` MSB-first."""

    def __init__(self, *, shape: tuple[int, ...], bias: np.ndarray, unit: float, bits: int,
                 src_bits: int, acc_steps: int, fire_steps: int, start: int, period: int,
                 periods: int, record: bool = False, name: str = "neuron") -> None:
        super().__init__(shape=shape, unit=unit, bits=bits, src_bits=src_bits,
                         acc_steps=acc_steps, fire_steps=fire_steps, start=start,
                         period=period, periods=periods, record=record, name=name)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.bias = Var(shape=bias.shape, init=bias)
        self.u_acc = Var(shape=shape, init=0)
        self.u_fire = Var(shape=shape, init=0)
        self.codes = Var(shape=(periods, *shape) if record else (1,), init=0)
        self.spikes = Var(shape=(periods, shape[0]), init=0)
        self.overflows = Var(shape=(1,), init=0)
        self.ops = Var(shape=(periods, shape[0], len(NEURON_OPS)), init=0)  # per sample


class IFNeuron(AbstractProcess):
    """Rate-coded QCFS baseline: ``v ← v + I + bias_step``, ``s = [v ≥ θ]``, ``v ← v − s·θ``,
    ``v = θ/2`` at the start of every window of ``steps`` steps."""

    def __init__(self, *, shape: tuple[int, ...], bias: np.ndarray, threshold: float,
                 steps: int, start: int, period: int, periods: int, record: bool = False,
                 name: str = "if") -> None:
        super().__init__(shape=shape, threshold=threshold, steps=steps, start=start,
                         period=period, periods=periods, record=record, name=name)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.bias = Var(shape=bias.shape, init=bias)
        self.v = Var(shape=shape, init=0)
        self.codes = Var(shape=(periods, *shape) if record else (1,), init=0)
        self.spikes = Var(shape=(periods, shape[0]), init=0)
        self.overflows = Var(shape=(1,), init=0)
        self.ops = Var(shape=(periods, shape[0], len(NEURON_OPS)), init=0)  # per sample


class OutputAccumulator(AbstractProcess):
    """Accumulates only (never fires): ``u ← u + (I(t) << shift(t)) + bias_step(t)`` over the
    window, then stores ``u`` as the logits of that batch."""

    def __init__(self, *, shape: tuple[int, ...], bias: np.ndarray, src_bits: int,
                 acc_steps: int, shifted: bool, start: int, period: int, periods: int,
                 name: str = "output") -> None:
        super().__init__(shape=shape, src_bits=src_bits, acc_steps=acc_steps, shifted=shifted,
                         start=start, period=period, periods=periods, name=name)
        self.a_in = InPort(shape=shape)
        self.bias = Var(shape=bias.shape, init=bias)
        self.u = Var(shape=shape, init=0)
        self.logits = Var(shape=(periods, *shape), init=0)
        self.overflows = Var(shape=(1,), init=0)
        self.ops = Var(shape=(periods, shape[0], len(NEURON_OPS)), init=0)  # per sample
