"""When every layer accumulates, fires and sends: computed once from the IR, used by the Lava
builder, both reference paths and the op counts (docs/method.md, "Schedule").

Bit-serial neuron. A layer of ``b`` bits fires ``T_l = min(T, b)`` steps (``T`` defaults to the
file's ``time_steps``: the most bits of any layer, unless exported with fewer), sending bit
``t`` of its code, worth ``2^(b−t)``, at its ``t``-th send step. The 8-bit input sends its
pixels MSB first over 8 steps (graded: the pixel value in one step). A layer accumulates over a
window of ``A`` steps and at accumulate step ``t`` shifts its input current by ``shift_bits −
t``, with ``shift_bits`` the most bits among its sources; a source of fewer bits is delayed by
``offset = shift_bits − send_bits`` steps inside the window, so each of its bits lands where
the shift gives it its weight. ``A`` covers the latest bit of every source. Then the layer
fires (double-buffered: it accumulates the next sample while firing this one), so a new batch
can enter every ``period`` steps.

IF baseline: every layer integrates and fires in the same ``T`` steps; the input is the graded
pixel value, repeated for ``T`` steps.

Lava timing: every synapse adds one step (send first, like Lava's Dense), plus an extra
``delay`` so that the inputs of all its synapses land in the same window.
"""

from __future__ import annotations

from dataclasses import dataclass

from lava_bitsnn.core.dynamics import shifts
from lava_bitsnn.core.ir import INPUT_BITS, Network

NEURONS = ("bit-serial", "if")


@dataclass(frozen=True)
class LayerTiming:
    send_bits: int  # what the layer sends at send step t weighs 2^(send_bits − t)
    send_steps: int  # steps it sends per sample (0 for the output)
    graded: bool  # sends values (the graded input), not spikes
    acc_steps: int  # length A of the accumulate window (0 for the input)
    shift_bits: int  # the accumulate step t shifts the current by shift_bits − t
    offsets: tuple[int, ...]  # per synapse: the source's bits arrive this many steps later
    start: int  # global step at which the window starts (input: its first send step)
    first_send: int  # global step of the first send
    delays: tuple[int, ...]  # per synapse: the Lava synapse's extra delay

    def shifted(self, t: int) -> bool:
        """Whether accumulate step ``t`` shifts (the shift amount is > 0)."""
        return shifts(self.shift_bits, t)


@dataclass(frozen=True)
class Schedule:
    neuron: str
    time_steps: int  # T: the one asked for, else the file's (each layer fires min(T, b))
    layers: tuple[LayerTiming, ...]
    period: int  # steps between consecutive batches
    latency: int  # steps from a batch's first input to its complete logits

    def total_steps(self, samples: int, batch_size: int) -> int:
        """Steps to simulate for ``samples`` in batches of ``batch_size``."""
        return self.latency + (batch_count(samples, batch_size) - 1) * self.period

    def logit_step(self, batch_index: int) -> int:
        """The global step at which the logits of batch ``batch_index`` are complete."""
        return self.latency + batch_index * self.period


def batch_count(samples: int, batch_size: int) -> int:
    return -(-samples // batch_size)


def window(k: int, start: int, period: int, periods: int, length: int) -> tuple[int, int]:
    """(batch index n, 1-based step t) if global step ``k`` lies in the ``length``-step window
    of batch n (windows start at ``start + n·period``), else (-1, 0)."""
    rel = k - start
    if rel < 0:
        return -1, 0
    n, t = divmod(rel, period)
    if n >= periods or t >= length:
        return -1, 0
    return n, t + 1


def fire_steps(net: Network, time_steps: int) -> list[int]:
    """Per layer: the bit-serial fire steps ``min(T, b)`` (input: 8, output: 0)."""
    out = []
    for layer in net.layers:
        if layer.kind == "input":
            out.append(INPUT_BITS)
        elif layer.kind == "output":
            out.append(0)
        else:
            out.append(min(time_steps, layer.bits))
    return out


def check_time_steps(net: Network, neuron: str, time_steps: int | None) -> None:
    """ValueError unless ``time_steps`` fits the neuron (bit-serial: 1..the most bits)."""
    if neuron not in NEURONS:
        raise ValueError(f"neuron must be one of {NEURONS}")
    if neuron == "if" and any(s.pool_kind == "max" for layer in net.layers
                              for s in layer.synapses):
        raise ValueError("the QCFS IF baseline has no exact max-pool, and this network "
                         "max-pools: run it with the bit-serial neuron")
    if time_steps is None:
        return
    if time_steps < 1:
        raise ValueError("time steps must be at least 1")
    most = max(layer.bits for layer in net.layers if layer.kind == "neuron")
    if neuron == "bit-serial" and time_steps > most:
        raise ValueError(f"bit-serial time steps must be 1..{most}")


def build_schedule(net: Network, neuron: str = "bit-serial", time_steps: int | None = None,
                   pipelined: bool = True) -> Schedule:
    """The schedule of ``net`` for a neuron kind and ``T`` (default: the file's
    ``time_steps``, the T it was exported for). ``pipelined=False`` admits a batch only after
    the previous one's logits."""
    check_time_steps(net, neuron, time_steps)
    time_steps = time_steps or net.time_steps
    if neuron == "if":
        return _if_schedule(net, time_steps, pipelined)
    fires = fire_steps(net, time_steps)
    graded_input = net.encoding == "graded"
    timings: list[LayerTiming] = [LayerTiming(
        send_bits=1 if graded_input else INPUT_BITS, send_steps=1 if graded_input else INPUT_BITS,
        graded=graded_input, acc_steps=0, shift_bits=0, offsets=(), start=1, first_send=1,
        delays=())]
    for idx, layer in enumerate(net.layers[1:], start=1):
        srcs = [timings[s.source] for s in layer.synapses]
        shift_bits = max(s.send_bits for s in srcs)
        offsets = tuple(shift_bits - s.send_bits for s in srcs)
        acc = max(s.send_steps + o for s, o in zip(srcs, offsets, strict=True))
        start = max(s.first_send + 1 - o for s, o in zip(srcs, offsets, strict=True))
        delays = tuple(start + o - 1 - s.first_send for s, o in zip(srcs, offsets, strict=True))
        timings.append(LayerTiming(layer.bits, fires[idx], False, acc, shift_bits, offsets,
                                   start, start + acc, delays))
    period = max(max(t.send_steps, t.acc_steps) for t in timings)
    return _finish("bit-serial", time_steps, timings, period, pipelined)


def _if_schedule(net: Network, steps: int, pipelined: bool) -> Schedule:
    timings = [LayerTiming(0, steps, True, 0, 0, (), 1, 1, ())]
    for layer in net.layers[1:]:
        srcs = [timings[s.source] for s in layer.synapses]
        start = max(s.first_send + 1 for s in srcs)
        delays = tuple(start - 1 - s.first_send for s in srcs)
        sends = 0 if layer.kind == "output" else steps
        timings.append(LayerTiming(0, sends, False, steps, 0, (0,) * len(srcs), start, start,
                                   delays))
    return _finish("if", steps, timings, steps, pipelined)


def _finish(neuron: str, time_steps: int, timings: list[LayerTiming], period: int,
            pipelined: bool) -> Schedule:
    last = timings[-1]
    latency = last.start + last.acc_steps - 1
    return Schedule(neuron, time_steps, tuple(timings), period if pipelined else latency,
                    latency)
