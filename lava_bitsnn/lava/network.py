"""``BitSerialNetwork``: a whole netx network as one hierarchical Lava Process.

Like lava-dl's ``netx.hdf5.Network``, it has an input port ``inp`` and an output port ``out``
and builds its layer processes (``LinearSynapse`` → ``BitSerialNeuron``/``IFNeuron`` →
``OutputAccumulator``) when constructed, so their Vars can be read with ``get()`` and watched
with Monitors; its SubProcessModel only exists so that Lava's compiler descends into them.
It runs under ``Loihi2SimCfg(select_tag="fixed_pt")`` or ``"floating_pt"`` (the one matching
``precision``).

Ports, shapes with a leading batch dimension ``B``:

* ``inp`` (B, C, H, W) takes what the first synapses consume: for the bit-serial neuron and a
  ``bit-serial`` file the bit-planes of the 8-bit pixels, MSB first, in the 8 steps starting at
  ``1 + n·period`` for batch n; for a ``graded`` file the pixel values in the first of those
  steps; for the IF neuron the pixel values in all of its ``T`` steps. ``input_frames`` builds
  exactly that array for Lava's ``io.source.RingBuffer``.
* ``out`` (B, classes) sends batch n's output accumulator in step ``schedule.logit_step(n)``
  and zeros otherwise; ``logits`` turns those values into logits (fixed point: ``u / D``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from lava.magma.core.decorator import implements, requires
from lava.magma.core.model.sub.model import AbstractSubProcessModel
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_bitsnn.core import dynamics as dyn
from lava_bitsnn.core.fanout import fan_out
from lava_bitsnn.core.ir import INPUT_BITS, Layer, Network
from lava_bitsnn.core.schedule import Schedule, build_schedule, window
from lava_bitsnn.lava.procs.process import (
    BitSerialNeuron,
    IFNeuron,
    LinearSynapse,
    OutputAccumulator,
)


class LayerProcesses(NamedTuple):
    """The Lava processes of one IR layer: its synapses (one per IR synapse) and neurons.
    (Not a dataclass: Lava's compiler imports this file under another module name, where
    dataclasses cannot resolve their annotations.)"""

    synapses: list[LinearSynapse]
    neurons: BitSerialNeuron | IFNeuron | OutputAccumulator


class BitSerialNetwork(AbstractProcess):
    """An IR network (``lava_bitsnn.netx.read_network``) as a Lava Process.

    ``periods``: how many batches it counts and records per batch (0: run forever, counters
    summed); ``record`` keeps every hidden layer's codes (IF: spike counts) per batch."""

    def __init__(self, *, network: Network, precision: str = "fixed",
                 neuron: str = "bit-serial", time_steps: int | None = None,
                 batch_size: int = 1, periods: int = 0, record: bool = False,
                 pipelined: bool = True, name: str = "bit_serial_network") -> None:
        super().__init__(name=name, precision=precision, neuron=neuron, batch_size=batch_size,
                         periods=periods)
        if precision not in ("fixed", "float"):
            raise ValueError("precision must be fixed or float")
        if precision == "float":
            network.require_float_weights()
        if record and not periods:
            raise ValueError("record needs periods > 0 (one row of codes per batch)")
        self.network = network
        self.precision = precision
        self.neuron = neuron
        self.batch_size = batch_size
        self.schedule: Schedule = build_schedule(network, neuron, time_steps, pipelined)
        self.time_steps = self.schedule.time_steps
        self.fan_outs = [[fan_out(s, network.layers[s.source].shape) for s in layer.synapses]
                         for layer in network.layers]
        self.inp = InPort(shape=(batch_size, *network.input_shape))
        self.out = OutPort(shape=(batch_size, *network.output.shape))
        self.layers: list[LayerProcesses | None] = [None]  # index 0: the input
        for idx in range(1, len(network.layers)):
            self.layers.append(self._layer(idx, periods, record))
        self.layers[-1].neurons.s_out.connect(self.out)

    @property
    def integer(self) -> bool:
        return self.precision == "fixed"

    def _layer(self, idx: int, periods: int, record: bool) -> LayerProcesses:
        layer = self.network.layers[idx]
        neurons = self._neurons(idx, layer, periods, record)
        synapses = []
        for k, syn in enumerate(layer.synapses):
            sp = self._synapse(idx, k, periods)
            if syn.source == 0:
                self.inp.connect(sp.s_in)
            else:
                self.layers[syn.source].neurons.s_out.connect(sp.s_in)
            sp.a_out.connect(neurons.a_in)
            synapses.append(sp)
        return LayerProcesses(synapses, neurons)

    def _synapse(self, idx: int, k: int, periods: int) -> LinearSynapse:
        layer = self.network.layers[idx]
        syn = layer.synapses[k]
        src = self.network.layers[syn.source]
        src_timing = self.schedule.layers[syn.source]
        weight = np.asarray(syn.weight_int if self.integer else syn.weight)
        if self.neuron == "if" and src.kind != "input":
            weight = weight * dyn.if_spike_value(src.max_code)
        return LinearSynapse(
            in_shape=(self.batch_size, *src.shape), out_shape=(self.batch_size, *layer.shape),
            weight=weight, fan_out=self.fan_outs[idx][k], kind=syn.kind, stride=syn.stride,
            padding=syn.padding, groups=syn.groups, pool=syn.pool, flatten=syn.flatten,
            pool_stride=syn.pool_stride, pool_padding=syn.pool_padding,
            pool_scale=syn.pool_scale, pool_gain=syn.pool_gain(src.shape), pool_kind=syn.pool_kind,
            pooled_shape=syn.pooled_shape(src.shape) if syn.pooled else (),
            delay=self.schedule.layers[idx].delays[k],
            graded=src.kind == "input" and src_timing.graded,
            src_start=src_timing.first_send, src_steps=src_timing.send_steps,
            period=self.schedule.period, periods=periods, precision=self.precision,
            name=f"{layer.name}/syn{k}")

    def _neurons(self, idx: int, layer: Layer, periods: int, record: bool):
        bias = layer.bias_full(self.integer)
        unit = layer.threshold_unit if self.integer else layer.step
        shape = (self.batch_size, *layer.shape)
        timing = self.schedule.layers[idx]
        common = dict(shape=shape, start=timing.start, period=self.schedule.period,
                      periods=periods, precision=self.precision, name=layer.name)
        if layer.kind == "output":
            return OutputAccumulator(bias=bias, shift_bits=timing.shift_bits,
                                     acc_steps=timing.acc_steps,
                                     shifted=self.neuron == "bit-serial", **common)
        if self.neuron == "if":
            return IFNeuron(bias=dyn.if_bias(bias, unit, self.integer),
                            threshold=dyn.top_threshold(unit, layer.max_code),
                            steps=timing.acc_steps, record=record, **common)
        return BitSerialNeuron(bias=bias, unit=unit, bits=layer.bits, max_code=layer.max_code,
                               shift_bits=timing.shift_bits, acc_steps=timing.acc_steps,
                               fire_steps=timing.send_steps, record=record, **common)

    # ---- for users wiring it into a Lava graph -------------------------------------------
    def input_frames(self, images: np.ndarray) -> np.ndarray:
        """uint8 images (N, C, H, W) → the data (B, C, H, W, steps) for Lava's
        ``io.source.RingBuffer`` that feeds ``inp`` batch after batch (padded with blank
        images to whole batches)."""
        b = self.batch_size
        n_batches = -(-len(images) // b)
        padded = np.zeros((n_batches * b, *images.shape[1:]), dtype=np.int64)
        padded[:len(images)] = images
        padded = padded.reshape(n_batches, b, *images.shape[1:])
        timing = self.schedule.layers[0]
        steps = self.schedule.total_steps(len(images), b)
        frames = np.zeros((b, *images.shape[1:], steps), dtype=np.int64)
        for k in range(1, steps + 1):
            n, t = window(k, 1, self.schedule.period, n_batches, timing.send_steps)
            if n >= 0:
                frames[..., k - 1] = dyn.source_frame(padded[n], INPUT_BITS, t, timing.graded)
        return frames

    def logits(self, sink_data: np.ndarray, samples: int) -> np.ndarray:
        """The logits (samples, classes) from what a ``io.sink.RingBuffer`` on ``out``
        recorded (B, classes, steps) from step 1."""
        rows = [sink_data[..., self.schedule.logit_step(n) - 1]
                for n in range(-(-samples // self.batch_size))]
        u = np.concatenate(rows)[:samples]
        out = self.network.output
        return dyn.logits(u, out.threshold_unit, self.integer,
                          self.schedule.layers[0].send_steps if self.neuron == "if" else 1)


@implements(proc=BitSerialNetwork, protocol=LoihiProtocol)
@requires(CPU)
class PyBitSerialNetworkModel(AbstractSubProcessModel):
    """The layer processes are built and wired by the Process itself (as lava-dl's netx
    does), so that their Vars are reachable before and after a run; here they only become
    attributes, which is how Lava's compiler finds a model's sub-processes."""

    def __init__(self, proc: AbstractProcess) -> None:
        for idx, layer in enumerate(proc.layers[1:], start=1):
            setattr(self, f"layer{idx}", layer.neurons)
            for k, syn in enumerate(layer.synapses):
                setattr(self, f"layer{idx}_syn{k}", syn)
