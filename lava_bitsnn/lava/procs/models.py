"""ProcessModels: a ``floating_pt`` (float64) and a ``fixed_pt`` (integer, 24-bit saturating
accumulator, overflow counted) model for every Process. Every neuron rule, the saturation and
the operation counts come from ``lava_bitsnn.core`` (``dynamics``, ``counts``, ``schedule``),
the functions the reference engine's step-wise loops call too."""

from __future__ import annotations

import traceback

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_bitsnn.core import dynamics as dyn
from lava_bitsnn.core.counts import (
    NEURON_OPS,
    accumulate_step_ops,
    fire_step_ops,
    if_step_ops,
)
from lava_bitsnn.core.ir import INPUT_BITS, PIXEL_MAX
from lava_bitsnn.core.schedule import window
from lava_bitsnn.lava.procs.process import (
    BitSerialNeuron,
    IFNeuron,
    ImageSource,
    LinearSynapse,
    OutputAccumulator,
)
from lava_bitsnn.lava.procs.synapse_math import apply_synapse, exact_float_dtype

OP_INDEX = {op: i for i, op in enumerate(NEURON_OPS)}
UNBOUNDED = 1 << 62  # "periods = 0": windows never end
COUNTER = LavaPyType(np.ndarray, np.int64)
FLOAT_STATE = LavaPyType(np.ndarray, np.float64)
FIXED_STATE = LavaPyType(np.ndarray, np.int64, precision=24)


class _FloatNeuronTypes:
    """Port and Var types of a floating_pt neuron model (Lava reads them with ``dir``, so
    mixins declare them once for every neuron kind)."""

    integer = False
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.float64)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.float64)
    bias: np.ndarray = FLOAT_STATE
    overflows: np.ndarray = COUNTER
    ops: np.ndarray = COUNTER


class _SpikeCounters:
    """The Vars of neurons that fire (the output accumulator does not)."""

    codes: np.ndarray = COUNTER
    spikes: np.ndarray = COUNTER


class _FixedNeuronTypes(_FloatNeuronTypes):
    """The fixed_pt twin: 24-bit integer state, 1-bit spikes."""

    integer = True
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=1)
    bias: np.ndarray = FIXED_STATE


class _Guarded(PyLoihiProcessModel):
    """Runs ``step()``; a failure's traceback is appended to the run's error log (if the
    builder gave one) so the parent can report it — Lava itself only logs it at INFO. Refuses
    parameters built for the other precision."""

    integer = False
    _checked = False

    def run_spk(self) -> None:
        try:
            if not self._checked:
                self._check_precision()
            self.step()
        except Exception:
            path = self.proc_params.get("error_log")
            if path:
                with open(path, "a") as f:
                    f.write(f"in {self.proc_params.get('name', '?')} at step "
                            f"{self.time_step}:\n{traceback.format_exc()}\n")
            raise

    def _check_precision(self) -> None:
        built = self.proc_params.get("precision", "fixed" if self.integer else "float")
        if (built == "fixed") != self.integer:
            raise RuntimeError(f"parameters built for {built} precision, run with the "
                               f"{'fixed_pt' if self.integer else 'floating_pt'} model")
        self._checked = True

    def window(self, start: int, length: int) -> tuple[int, int]:
        """(counter row, 1-based step) of the window containing this step, else (-1, 0)."""
        p = self.proc_params
        periods = p["periods"]
        n, t = window(self.time_step, start, p["period"], periods or UNBOUNDED, length)
        return (n if periods else min(n, 0)) if n >= 0 else -1, t


class _Common(_Guarded):
    """Neuron models: saturation and op counting through the shared rules."""

    def saturate(self, u: np.ndarray) -> np.ndarray:
        u, clipped = dyn.saturate(u, self.integer)
        self.overflows[0] += clipped
        return u

    def neurons_per_sample(self) -> int:
        return int(np.prod(self.proc_params["shape"][1:]))

    def add_ops(self, row: int, ops: dict) -> None:
        """Add per-step ops (ints, or one value per batch slot) to the counters of ``row``."""
        for op, value in ops.items():
            self.ops[row, :, OP_INDEX[op]] += value

    def spikes_per_slot(self, s: np.ndarray) -> np.ndarray:
        return s.reshape(s.shape[0], -1).sum(axis=1)

    def record(self, row: int, codes: np.ndarray, last_step: bool) -> None:
        """Add to the recorded codes of ``row``. After the last batch's last step, also save
        them to ``codes_file`` if the builder gave one: Lava's ``Var.get()`` sends an array
        element by element, which for a deep network takes far longer than the run."""
        self.codes[row] += codes
        path = self.proc_params.get("codes_file")
        if path and last_step and row == self.proc_params["periods"] - 1:
            np.save(path, self.codes)


# ---- input -------------------------------------------------------------------------------
class _PyImageSource(_Guarded):
    def step(self) -> None:
        p = self.proc_params
        graded = p["encoding"] != "bit-serial"
        steps = p["steps"] if graded else INPUT_BITS
        n, t = window(self.time_step, 1, p["period"], self.images.shape[0], steps)
        out = np.zeros(self.s_out.shape, dtype=self.s_out._d_type)
        if n >= 0:
            out[...] = dyn.source_frame(self.images[n], INPUT_BITS, t, graded)
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
    integer = True
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=8)
    images: np.ndarray = LavaPyType(np.ndarray, np.int64)


# ---- synapse -----------------------------------------------------------------------------
class _PyLinearSynapse(_Guarded):
    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self._operands: tuple[np.ndarray, np.ndarray] | None = None

    def operands(self) -> tuple[np.ndarray, np.ndarray]:
        """The weights in the compute dtype and the fan-outs as float64, converted once (the
        builder writes both before the run; nothing changes them later). The dtype is float64,
        or in fixed point float32 where that is exact (``exact_float_dtype``)."""
        if self._operands is None:
            p = self.proc_params
            largest_input = PIXEL_MAX if p["graded"] else 1  # pixel or spike
            dtype = exact_float_dtype(self.weight, p["pool_gain"], largest_input
                                      ) if self.integer else np.float64
            self._operands = (self.weight.astype(dtype),
                              self.fan_out.reshape(-1).astype(np.float64))
        return self._operands

    def step(self) -> None:
        p = self.proc_params
        head = int(self.fifo_head[0])
        self.a_out.send(self.fifo[head])  # computed p["delay"] + 1 steps ago
        self.fifo_head[0] = (head + 1) % self.fifo.shape[0]
        s = self.s_in.recv()
        max_bits = dyn.max_pools_bits(p["pool_kind"], p["graded"])
        if max_bits and self.window(p["src_start"], p["src_steps"])[1] == 1:
            self.candidates[:] = 1  # a new sample's first bit: every input is a candidate
        if not s.any():
            self.fifo[head] = 0
            return
        weight, fan_out = self.operands()
        pool = (p["pool"], p["flatten"], p["pool_stride"], p["pool_padding"], p["pool_scale"],
                p["pool_kind"])
        x = s
        if max_bits:  # the window maxima, one bit per step; the map then takes no pool
            x, candidates = dyn.max_pool_bits(s, self.candidates.astype(bool), p["pool"],
                                              p["pool_stride"] or p["pool"], p["pool_padding"])
            self.candidates[:] = candidates
            pool = (1, p["flatten"], 0, 0, None, "sum")
        # fixed point: integer sums, exact in the chosen dtype, so no rounding is needed
        self.fifo[head] = apply_synapse(x.astype(weight.dtype), weight, p["kind"], p["stride"],
                                        p["padding"], p["groups"], *pool)
        row, _ = self.window(p["src_start"], p["src_steps"])
        if row < 0:
            return
        if p["graded"]:  # one MAC per connection of every sample, each graded step
            self.synops[row] += int(self.fan_out.sum())
        else:  # spikes are 0/1: a float64 matrix-vector product counts exactly (BLAS)
            spikes = s.reshape(s.shape[0], -1).astype(np.float64, copy=False)
            self.synops[row] += np.rint(spikes @ fan_out).astype(np.int64)
            self.spikes_in[row] += np.rint(spikes.sum(axis=1)).astype(np.int64)


@implements(proc=LinearSynapse, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyLinearSynapseFloat(_PyLinearSynapse):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.float64)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.float64)
    weight: np.ndarray = LavaPyType(np.ndarray, np.float64)
    fan_out: np.ndarray = LavaPyType(np.ndarray, np.int64)
    fifo: np.ndarray = LavaPyType(np.ndarray, np.float64)
    fifo_head: np.ndarray = LavaPyType(np.ndarray, np.int64)
    candidates: np.ndarray = LavaPyType(np.ndarray, np.int64)
    synops: np.ndarray = LavaPyType(np.ndarray, np.int64)
    spikes_in: np.ndarray = LavaPyType(np.ndarray, np.int64)


@implements(proc=LinearSynapse, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyLinearSynapseFixed(_PyLinearSynapse):
    integer = True
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=8)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64, precision=24)
    weight: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=16)
    fan_out: np.ndarray = LavaPyType(np.ndarray, np.int64)
    fifo: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    fifo_head: np.ndarray = LavaPyType(np.ndarray, np.int64)
    candidates: np.ndarray = LavaPyType(np.ndarray, np.int64)
    synops: np.ndarray = LavaPyType(np.ndarray, np.int64)
    spikes_in: np.ndarray = LavaPyType(np.ndarray, np.int64)


# ---- bit-serial neuron -------------------------------------------------------------------
class _PyBitSerialNeuron(_Common):
    def step(self) -> None:
        p = self.proc_params
        a = self.a_in.recv()
        # Fire first: with period == fire steps, batch n fires its last bit in the very step
        # in which batch n+1 completes its accumulation and is handed over.
        row, t = self.window(p["start"] + p["acc_steps"], p["fire_steps"])
        s = np.zeros(self.s_out.shape, dtype=bool)
        if row >= 0:
            s, self.u_fire = dyn.fire(self.u_fire, t, p["unit"], p["bits"])
            fired = self.spikes_per_slot(s)
            self.spikes[row] += fired
            self.add_ops(row, fire_step_ops(self.neurons_per_sample(), fired))
            if p["record"]:
                self.record(row, s.astype(self.codes.dtype) * dyn.spike_weight(p["bits"], t),
                            last_step=t == p["fire_steps"])
        row, t = self.window(p["start"], p["acc_steps"])
        if row >= 0:
            per_step, first_extra = dyn.split_bias(self.bias, p["acc_steps"], self.integer)
            self.u_acc, clipped = dyn.accumulate(self.u_acc, a, t, p["shift_bits"], per_step,
                                                 first_extra, self.integer)
            self.overflows[0] += clipped
            self.add_ops(row, accumulate_step_ops(self.neurons_per_sample(),
                                                  dyn.shifts(p["shift_bits"], t)))
            if t == p["acc_steps"]:  # complete: hand over to the firing buffer
                self.u_fire = dyn.clip_to_max_code(self.u_acc, p["unit"], p["max_code"],
                                                   p["bits"], self.integer)
                self.u_acc = np.zeros_like(self.u_acc)
        self.s_out.send(s.astype(self.s_out._d_type))


@implements(proc=BitSerialNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyBitSerialNeuronFloat(_SpikeCounters, _FloatNeuronTypes, _PyBitSerialNeuron):
    u_acc: np.ndarray = FLOAT_STATE
    u_fire: np.ndarray = FLOAT_STATE


@implements(proc=BitSerialNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyBitSerialNeuronFixed(_SpikeCounters, _FixedNeuronTypes, _PyBitSerialNeuron):
    u_acc: np.ndarray = FIXED_STATE
    u_fire: np.ndarray = FIXED_STATE


# ---- IF baseline -------------------------------------------------------------------------
class _PyIFNeuron(_Common):
    def step(self) -> None:
        p = self.proc_params
        a = self.a_in.recv()
        row, t = self.window(p["start"], p["steps"])
        s = np.zeros(self.s_out.shape, dtype=bool)
        if row >= 0:
            theta = p["threshold"]
            if t == 1:
                self.v = dyn.if_initial(self.v.shape, theta, self.integer).astype(self.v.dtype)
            s, self.v, clipped = dyn.if_step(self.v, a, self.bias, theta, self.integer)
            self.overflows[0] += clipped
            fired = self.spikes_per_slot(s)
            self.spikes[row] += fired
            self.add_ops(row, if_step_ops(self.neurons_per_sample(), fired))
            if p["record"]:
                self.record(row, s, last_step=t == p["steps"])
        self.s_out.send(s.astype(self.s_out._d_type))


@implements(proc=IFNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyIFNeuronFloat(_SpikeCounters, _FloatNeuronTypes, _PyIFNeuron):
    v: np.ndarray = FLOAT_STATE


@implements(proc=IFNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyIFNeuronFixed(_SpikeCounters, _FixedNeuronTypes, _PyIFNeuron):
    v: np.ndarray = FIXED_STATE


# ---- output ------------------------------------------------------------------------------
class _PyOutputAccumulator(_Common):
    def step(self) -> None:
        p = self.proc_params
        a = self.a_in.recv()
        out = np.zeros(self.s_out.shape, dtype=self.s_out._d_type)
        row, t = self.window(p["start"], p["acc_steps"])
        if row >= 0:
            if p["shifted"]:
                per_step, first_extra = dyn.split_bias(self.bias, p["acc_steps"], self.integer)
                self.u, clipped = dyn.accumulate(self.u, a, t, p["shift_bits"], per_step,
                                                 first_extra, self.integer)
            else:  # IF read-out: the full bias every step
                self.u, clipped = dyn.output_add(self.u, a, self.bias, self.integer)
            self.overflows[0] += clipped
            self.add_ops(row, accumulate_step_ops(
                self.neurons_per_sample(), p["shifted"] and dyn.shifts(p["shift_bits"], t)))
            if t == p["acc_steps"]:
                self.logits[row] = self.u
                out[...] = self.u
                self.u = np.zeros_like(self.u)
        self.s_out.send(out)


@implements(proc=OutputAccumulator, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyOutputAccumulatorFloat(_FloatNeuronTypes, _PyOutputAccumulator):
    u: np.ndarray = FLOAT_STATE
    logits: np.ndarray = FLOAT_STATE


@implements(proc=OutputAccumulator, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyOutputAccumulatorFixed(_FixedNeuronTypes, _PyOutputAccumulator):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)  # the sums
    u: np.ndarray = FIXED_STATE
    logits: np.ndarray = COUNTER
