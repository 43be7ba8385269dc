"""ProcessModels: a ``floating_pt`` (float64) and a ``fixed_pt`` (integer, 24-bit saturating
accumulator, overflow counted) model for every Process. The arithmetic mirrors the reference
engine (lava_bitsnn.reference.engine) step for step; tests hold them equal."""

from __future__ import annotations

import traceback

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_bitsnn.core.counts import NEURON_OPS
from lava_bitsnn.core.ir import INPUT_BITS
from lava_bitsnn.lava.procs.process import (
    BitSerialNeuron,
    BitSynapse,
    IFNeuron,
    ImageSource,
    OutputAccumulator,
)
from lava_bitsnn.lava.procs.synapse_math import apply_synapse, exact_float_dtype

OP_INDEX = {op: i for i, op in enumerate(NEURON_OPS)}
ACC_MAX = (1 << 23) - 1
ACC_MIN = -(1 << 23)


def window(k: int, start: int, period: int, periods: int, length: int) -> tuple[int, int]:
    """(batch index n, 1-based step t) if step ``k`` lies in a window, else (-1, 0)."""
    rel = k - start
    if rel < 0:
        return -1, 0
    n, t = divmod(rel, period)
    if n >= periods or t >= length:
        return -1, 0
    return n, t + 1


class _Guarded(PyLoihiProcessModel):
    """Runs ``step()``; a failure's traceback is appended to the run's error log (if the
    builder gave one) so the parent can report it — Lava itself only logs it at INFO."""

    def run_spk(self) -> None:
        try:
            self.step()
        except Exception:
            path = self.proc_params.get("error_log")
            if path:
                with open(path, "a") as f:
                    f.write(f"in {self.proc_params.get('name', '?')} at step "
                            f"{self.time_step}:\n{traceback.format_exc()}\n")
            raise


class _Common(_Guarded):
    """Fixed-point models saturate to 24 bits and count the clip events."""

    integer = False

    def saturate(self, u: np.ndarray) -> np.ndarray:
        if not self.integer:
            return u
        over = (u > ACC_MAX) | (u < ACC_MIN)
        if over.any():
            self.overflows[0] += int(over.sum())
            u = np.clip(u, ACC_MIN, ACC_MAX)
        return u

    def accumulate(self, u: np.ndarray, a: np.ndarray, t: int, steps: int, src_bits: int
                   ) -> np.ndarray:
        """``u + (a << (src_bits − t)) + bias/steps``; in fixed point the integer quotient,
        with the remainder added at ``t = 1`` so the ``steps`` steps add exactly ``bias``."""
        step_bias = np.floor_divide(self.bias, steps) if self.integer else self.bias / steps
        u = u + a * (1 << (src_bits - t)) + step_bias
        if t == 1:
            u = u + (self.bias - step_bias * steps)
        return self.saturate(u)

    def count(self, n: int, per_sample: int | np.ndarray, *ops: str) -> None:
        """Add ``per_sample`` (an int or one value per batch slot) to the named neuron-op
        counters of batch ``n``."""
        for op in ops:
            self.ops[n, :, OP_INDEX[op]] += per_sample

    def neurons_per_sample(self) -> int:
        return int(np.prod(self.proc_params["shape"][1:]))

    def count_accumulate(self, n: int, shift: int) -> None:
        """One accumulate step of every neuron: update, bias add, read, write (and shift)."""
        k = self.neurons_per_sample()
        self.count(n, k, "neuron_updates", "bias_adds", "mem_reads", "mem_writes")
        if shift > 0:
            self.count(n, k, "shifts")


# ---- input -------------------------------------------------------------------------------
class _PyImageSource(_Guarded):
    def step(self) -> None:
        p = self.proc_params
        steps = 8 if p["encoding"] == "bit-serial" else p["steps"]
        n, t = window(self.time_step, 1, p["period"], self.images.shape[0], steps)
        out = np.zeros(self.s_out.shape, dtype=self.s_out._d_type)
        if n >= 0:
            x = self.images[n]
            out[...] = (x >> (8 - t)) & 1 if p["encoding"] == "bit-serial" else x
        self.s_out.send(out)


@implements(proc=ImageSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyImageSourceFloat(_PyImageSource):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.float64)
    images: np.ndarray = LavaPyType(np.ndarray, np.int64)


@implements(proc=ImageSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyImageSourceFixed(_PyImageSource):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=8)
    images: np.ndarray = LavaPyType(np.ndarray, np.int64)


# ---- synapse -----------------------------------------------------------------------------
class _PyBitSynapse(_Common):
    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self.pipeline: list[np.ndarray] = []
        self._operands: tuple[np.ndarray, np.ndarray] | None = None

    def operands(self) -> tuple[np.ndarray, np.ndarray]:
        """The weights in the compute dtype and the fan-outs as float64, converted once (the
        builder writes both before the run; nothing changes them later). The dtype is float64,
        or in fixed point float32 where that is exact (``exact_float_dtype``)."""
        if self._operands is None:
            p = self.proc_params
            largest_input = (1 << INPUT_BITS) - 1 if p["graded"] else 1  # pixel or spike
            dtype = exact_float_dtype(self.weight, p["pool"], largest_input
                                      ) if self.integer else np.float64
            self._operands = (self.weight.astype(dtype),
                              self.fan_out.reshape(-1).astype(np.float64))
        return self._operands

    def step(self) -> None:
        p = self.proc_params
        zero = np.zeros(self.a_out.shape, dtype=self.a_out._d_type)
        while len(self.pipeline) < p["delay"] + 1:
            self.pipeline.append(zero)
        self.a_out.send(self.pipeline.pop(0))  # computed p["delay"] + 1 steps ago
        s = self.s_in.recv()
        if not s.any():
            self.pipeline.append(zero)
            return
        weight, fan_out = self.operands()
        current = apply_synapse(s.astype(weight.dtype), weight, p["kind"], p["stride"],
                                p["padding"], p["groups"], p["pool"], p["flatten"])
        # fixed point: integer sums, exact in the chosen dtype, so no rounding is needed
        self.pipeline.append(current.astype(self.a_out._d_type, copy=False))
        n, _ = window(self.time_step, p["src_start"], p["period"], p["periods"], p["src_steps"])
        if n < 0:
            return
        if p["graded"]:  # one MAC per connection of every sample, each graded step
            self.synops[n] += int(self.fan_out.sum())
        else:  # spikes are 0/1: a float64 matrix-vector product counts exactly (BLAS)
            spikes = s.reshape(s.shape[0], -1).astype(np.float64, copy=False)
            self.synops[n] += np.rint(spikes @ fan_out).astype(np.int64)
            self.spikes_in[n] += np.rint(spikes.sum(axis=1)).astype(np.int64)


@implements(proc=BitSynapse, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyBitSynapseFloat(_PyBitSynapse):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.float64)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.float64)
    weight: np.ndarray = LavaPyType(np.ndarray, np.float64)
    fan_out: np.ndarray = LavaPyType(np.ndarray, np.int64)
    synops: np.ndarray = LavaPyType(np.ndarray, np.int64)
    spikes_in: np.ndarray = LavaPyType(np.ndarray, np.int64)


@implements(proc=BitSynapse, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyBitSynapseFixed(_PyBitSynapse):
    integer = True
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=8)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64, precision=24)
    weight: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=16)
    fan_out: np.ndarray = LavaPyType(np.ndarray, np.int64)
    synops: np.ndarray = LavaPyType(np.ndarray, np.int64)
    spikes_in: np.ndarray = LavaPyType(np.ndarray, np.int64)


# ---- bit-serial neuron -------------------------------------------------------------------
class _PyBitSerialNeuron(_Common):
    def step(self) -> None:
        p = self.proc_params
        k = self.time_step
        a = self.a_in.recv()
        # Fire first: with period == fire steps, batch n fires its last bit in the very step
        # in which batch n+1 completes its accumulation and is handed over.
        n, t = window(k, p["start"] + p["acc_steps"], p["period"], p["periods"],
                      p["fire_steps"])
        s = np.zeros(self.s_out.shape, dtype=bool)
        if n >= 0:
            theta = p["unit"] * (1 << (p["bits"] - t))
            s = self.u_fire >= theta
            self.u_fire = self.u_fire - s * theta
            fired = s.reshape(s.shape[0], -1).sum(axis=1)
            self.spikes[n] += fired
            self.count(n, self.neurons_per_sample(), "neuron_updates", "comparisons",
                       "mem_reads")
            self.count(n, fired, "subtractions", "mem_writes")
            if p["record"]:
                self.codes[n] += s.astype(self.codes.dtype) << (p["bits"] - t)
        n, t = window(k, p["start"], p["period"], p["periods"], p["acc_steps"])
        if n >= 0:
            self.u_acc = self.accumulate(self.u_acc, a, t, p["acc_steps"], p["src_bits"])
            self.count_accumulate(n, p["src_bits"] - t)
            if t == p["acc_steps"]:  # complete: hand over to the firing buffer
                self.u_fire = self.u_acc
                self.u_acc = np.zeros_like(self.u_acc)
        self.s_out.send(s.astype(self.s_out._d_type))


@implements(proc=BitSerialNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyBitSerialNeuronFloat(_PyBitSerialNeuron):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.float64)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.float64)
    bias: np.ndarray = LavaPyType(np.ndarray, np.float64)
    u_acc: np.ndarray = LavaPyType(np.ndarray, np.float64)
    u_fire: np.ndarray = LavaPyType(np.ndarray, np.float64)
    codes: np.ndarray = LavaPyType(np.ndarray, np.int64)
    spikes: np.ndarray = LavaPyType(np.ndarray, np.int64)
    overflows: np.ndarray = LavaPyType(np.ndarray, np.int64)
    ops: np.ndarray = LavaPyType(np.ndarray, np.int64)


@implements(proc=BitSerialNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyBitSerialNeuronFixed(_PyBitSerialNeuron):
    integer = True
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=1)
    bias: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    u_acc: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    u_fire: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    codes: np.ndarray = LavaPyType(np.ndarray, np.int64)
    spikes: np.ndarray = LavaPyType(np.ndarray, np.int64)
    overflows: np.ndarray = LavaPyType(np.ndarray, np.int64)
    ops: np.ndarray = LavaPyType(np.ndarray, np.int64)


# ---- IF baseline -------------------------------------------------------------------------
class _PyIFNeuron(_Common):
    def step(self) -> None:
        p = self.proc_params
        a = self.a_in.recv()
        n, t = window(self.time_step, p["start"], p["period"], p["periods"], p["steps"])
        s = np.zeros(self.s_out.shape, dtype=bool)
        if n >= 0:
            theta = p["threshold"]
            if t == 1:
                half = theta // 2 if self.integer else theta / 2
                self.v = np.full_like(self.v, half)
            self.v = self.saturate(self.v + a + self.bias)
            s = self.v >= theta
            self.v = self.v - s * theta
            fired = s.reshape(s.shape[0], -1).sum(axis=1)
            self.spikes[n] += fired
            self.count_accumulate(n, 0)
            self.count(n, self.neurons_per_sample(), "comparisons")
            self.count(n, fired, "subtractions")
            if p["record"]:
                self.codes[n] += s
        self.s_out.send(s.astype(self.s_out._d_type))


@implements(proc=IFNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyIFNeuronFloat(_PyIFNeuron):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.float64)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.float64)
    bias: np.ndarray = LavaPyType(np.ndarray, np.float64)
    v: np.ndarray = LavaPyType(np.ndarray, np.float64)
    codes: np.ndarray = LavaPyType(np.ndarray, np.int64)
    spikes: np.ndarray = LavaPyType(np.ndarray, np.int64)
    overflows: np.ndarray = LavaPyType(np.ndarray, np.int64)
    ops: np.ndarray = LavaPyType(np.ndarray, np.int64)


@implements(proc=IFNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyIFNeuronFixed(_PyIFNeuron):
    integer = True
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=1)
    bias: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    v: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    codes: np.ndarray = LavaPyType(np.ndarray, np.int64)
    spikes: np.ndarray = LavaPyType(np.ndarray, np.int64)
    overflows: np.ndarray = LavaPyType(np.ndarray, np.int64)
    ops: np.ndarray = LavaPyType(np.ndarray, np.int64)


# ---- output ------------------------------------------------------------------------------
class _PyOutputAccumulator(_Common):
    def step(self) -> None:
        p = self.proc_params
        a = self.a_in.recv()
        n, t = window(self.time_step, p["start"], p["period"], p["periods"], p["acc_steps"])
        if n < 0:
            return
        if p["shifted"]:
            self.u = self.accumulate(self.u, a, t, p["acc_steps"], p["src_bits"])
        else:  # IF read-out: the full bias every step
            self.u = self.saturate(self.u + a + self.bias)
        self.count_accumulate(n, p["src_bits"] - t if p["shifted"] else 0)
        if t == p["acc_steps"]:
            self.logits[n] = self.u
            self.u = np.zeros_like(self.u)


@implements(proc=OutputAccumulator, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyOutputAccumulatorFloat(_PyOutputAccumulator):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.float64)
    bias: np.ndarray = LavaPyType(np.ndarray, np.float64)
    u: np.ndarray = LavaPyType(np.ndarray, np.float64)
    logits: np.ndarray = LavaPyType(np.ndarray, np.float64)
    overflows: np.ndarray = LavaPyType(np.ndarray, np.int64)
    ops: np.ndarray = LavaPyType(np.ndarray, np.int64)


@implements(proc=OutputAccumulator, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyOutputAccumulatorFixed(_PyOutputAccumulator):
    integer = True
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64, precision=24)
    bias: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    u: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    logits: np.ndarray = LavaPyType(np.ndarray, np.int64)
    overflows: np.ndarray = LavaPyType(np.ndarray, np.int64)
    ops: np.ndarray = LavaPyType(np.ndarray, np.int64)
