"""Lava Processes of the bit-serial SNN. Shapes carry a leading batch dimension ``B``.

Timing (global step ``k`` from 1) follows ``lava_bitsnn.core.schedule``: a layer's *window*
for the ``n``-th batch starts at ``start + n·period``; a bit-serial neuron accumulates for
``acc_steps`` steps, then fires ``fire_steps`` steps MSB-first (double-buffered, so it can
accumulate batch n+1 while firing batch n). An IF neuron integrates and fires in the same
``steps`` steps. Every synapse adds one step, plus ``delay``.

``periods`` is the number of batches whose windows are run and counted per batch (counters
and recorded codes have one row per batch); ``periods=0`` runs windows forever, for a network
embedded in a larger Lava graph, and sums every counter into row 0. ``precision`` is the one
the parameters were built for; a ProcessModel of the other precision refuses to run them.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var

from lava_bitsnn.core.counts import NEURON_OPS


def _rows(periods: int) -> int:
    return max(periods, 1)


class ImageSource(AbstractProcess):
    """Sends preloaded images (periods, B, C, H, W) of 8-bit pixels: ``bit-serial`` MSB-first
    over 8 steps, or ``graded`` (the pixel value) for ``steps`` steps, one batch every
    ``period`` steps. The convenience driver's source; any Lava OutPort can feed the network
    instead (see ``BitSerialNetwork``)."""

    def __init__(self, *, images: np.ndarray, encoding: str, period: int, steps: int,
                 name: str = "input") -> None:
        super().__init__(images=images, encoding=encoding, period=period, steps=steps,
                         name=name)
        self.images = Var(shape=images.shape, init=images)
        self.s_out = OutPort(shape=images.shape[1:])


class LinearSynapse(AbstractProcess):
    """Sum-pool (any window, stride, padding; ``pool_gain`` = ``Synapse.pool_gain``) or
    bit-serial max-pool (``pool_kind="max"``, the window state in ``candidates``; give the
    source's ``pooled_shape``) → flatten → conv/dense, one-step send-first like Lava's
    Dense/Conv, with an optional extra ``delay`` held in the ``fifo`` Var (residual
    shortcuts). Counts synaptic ops = Σ spikes × fan-out (graded input: Σ connections, as
    MACs) per batch and sample."""

    def __init__(self, *, in_shape: tuple[int, ...], out_shape: tuple[int, ...],
                 weight: np.ndarray, fan_out: np.ndarray, kind: str, stride: int = 1,
                 padding: int = 0, groups: int = 1, pool: int = 1, flatten: bool = False,
                 pool_stride: int = 0, pool_padding: int = 0,
                 pool_scale: np.ndarray | None = None, pool_gain: int = 1,
                 pool_kind: str = "sum", pooled_shape: tuple[int, ...] = (), delay: int = 0,
                 graded: bool = False, src_start: int = 1, src_steps: int = 1,
                 period: int = 1, periods: int = 1,
                 precision: str = "fixed", name: str = "synapse") -> None:
        super().__init__(in_shape=in_shape, out_shape=out_shape, kind=kind, stride=stride,
                         padding=padding, groups=groups, pool=pool, flatten=flatten,
                         pool_stride=pool_stride, pool_padding=pool_padding,
                         pool_scale=pool_scale, pool_gain=pool_gain, pool_kind=pool_kind,
                         delay=delay,
                         graded=graded, src_start=src_start, src_steps=src_steps,
                         period=period, periods=periods, precision=precision, name=name)
        self.s_in = InPort(shape=in_shape)
        self.a_out = OutPort(shape=out_shape)
        self.weight = Var(shape=weight.shape, init=weight)
        self.fan_out = Var(shape=fan_out.shape, init=fan_out)
        self.fifo = Var(shape=(delay + 1, *out_shape), init=0)  # currents not yet sent
        self.fifo_head = Var(shape=(1,), init=0)
        # bit-serial max-pool: per window, the inputs still tied for its maximum
        window = (in_shape[0], *pooled_shape[-3:], pool, pool) if pool_kind == "max" else (1,)
        self.candidates = Var(shape=window, init=1)
        self.synops = Var(shape=(_rows(periods), in_shape[0]), init=0)
        self.spikes_in = Var(shape=(_rows(periods), in_shape[0]), init=0)


class _Neuron(AbstractProcess):
    """What every neuron population shares: ports, bias, counters, optional recorded codes."""

    def __init__(self, *, shape: tuple[int, ...], bias: np.ndarray, periods: int,
                 record: bool, **params) -> None:
        super().__init__(shape=shape, periods=periods, record=record, **params)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.bias = Var(shape=bias.shape, init=bias)
        self.codes = Var(shape=(_rows(periods), *shape) if record else (1,), init=0)
        self.spikes = Var(shape=(_rows(periods), shape[0]), init=0)
        self.overflows = Var(shape=(1,), init=0)
        self.ops = Var(shape=(_rows(periods), shape[0], len(NEURON_OPS)), init=0)  # per sample


class BitSerialNeuron(_Neuron):
    """Deferred-firing bit-serial neuron (docs/method.md): accumulate
    ``u ← u + I(t)·2^(shift_bits − t) + bias_step`` for ``acc_steps`` steps, clip at the largest
    code ``max_code``, then fire ``s(t) = [u ≥ θ_t]``, ``u ← u − s(t)·θ_t``,
    ``θ_t = unit·2^(bits−t)`` MSB-first for ``fire_steps`` steps."""

    def __init__(self, *, shape: tuple[int, ...], bias: np.ndarray, unit: float, bits: int,
                 max_code: int, shift_bits: int, acc_steps: int, fire_steps: int, start: int,
                 period: int, periods: int, record: bool = False, precision: str = "fixed",
                 name: str = "neuron") -> None:
        super().__init__(shape=shape, bias=bias, periods=periods, record=record, unit=unit,
                         bits=bits, max_code=max_code, shift_bits=shift_bits,
                         acc_steps=acc_steps, fire_steps=fire_steps, start=start,
                         period=period, precision=precision, name=name)
        self.u_acc = Var(shape=shape, init=0)
        self.u_fire = Var(shape=shape, init=0)


class IFNeuron(_Neuron):
    """Rate-coded QCFS baseline: ``v ← v + I + bias_step``, ``s = [v ≥ θ]``, ``v ← v − s·θ``,
    ``v = θ/2`` at the start of every window of ``steps`` steps."""

    def __init__(self, *, shape: tuple[int, ...], bias: np.ndarray, threshold: float,
                 steps: int, start: int, period: int, periods: int, record: bool = False,
                 precision: str = "fixed", name: str = "if") -> None:
        super().__init__(shape=shape, bias=bias, periods=periods, record=record,
                         threshold=threshold, steps=steps, start=start, period=period,
                         precision=precision, name=name)
        self.v = Var(shape=shape, init=0)


class OutputAccumulator(AbstractProcess):
    """Accumulates only (never fires): ``u ← u + I(t)·2^(shift_bits − t) + bias_step(t)`` over
    the window (the IF read-out: ``u + I + bias``), then stores ``u`` as the batch's row of
    ``logits`` and sends it on ``s_out`` in that step (zeros in every other step). In fixed
    point ``u`` is the integer accumulator: the logits are ``u / unit``."""

    def __init__(self, *, shape: tuple[int, ...], bias: np.ndarray, shift_bits: int,
                 acc_steps: int, shifted: bool, start: int, period: int, periods: int,
                 precision: str = "fixed", name: str = "output") -> None:
        super().__init__(shape=shape, shift_bits=shift_bits, acc_steps=acc_steps,
                         shifted=shifted, start=start, period=period, periods=periods,
                         precision=precision, name=name)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.bias = Var(shape=bias.shape, init=bias)
        self.u = Var(shape=shape, init=0)
        self.logits = Var(shape=(_rows(periods), *shape), init=0)
        self.overflows = Var(shape=(1,), init=0)
        self.ops = Var(shape=(_rows(periods), shape[0], len(NEURON_OPS)), init=0)  # per sample
