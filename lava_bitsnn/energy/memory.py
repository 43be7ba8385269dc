"""Memory traffic per inference: which arrays each model reads and writes, how often, how wide,
and, under a preset's ``memory`` section, at what price.

Rules (docs/energy-report.md, "Memory traffic"):

* SNN: one weight read per synaptic op and per graded input MAC; the membrane reads and writes
  the simulation counts; every spike is written once by its layer (``spikes_out``) and read
  once by each layer it reaches (``spikes_in``); graded input MACs also read their pixel.
* ANN, int8 QANN, b-bit QANN: every MAC reads its weight and its input activation; every
  neuron writes its output once (the partial sum stays in a register). No reuse, on either
  side. The b-bit QANN's input of a synapse is as wide as that synapse's source (8 bits for
  pixels); a layer with sources of different widths reads at their mean over its MACs.
* An array sits in the smallest SRAM level that holds it (DRAM above the largest); an access of
  ``w`` bits costs ``w / word_bits`` of a word access at that level.
"""

from __future__ import annotations

from dataclasses import dataclass

from lava_bitsnn.core.counts import LayerCounts
from lava_bitsnn.core.fanout import fan_out
from lava_bitsnn.core.ir import INPUT_BITS, Layer, Network
from lava_bitsnn.energy.presets import LEVELS

MODELS = ("snn", "ann", "qann", "qann_b")


@dataclass(frozen=True)
class LayerArrays:
    """A layer's array sizes (elements), from the network."""

    weights: int  # weight elements of its synapses
    inputs: int  # values of its source layers
    neurons: int
    membranes: int  # membrane values the SNN keeps for it (``membranes``)
    source_bits: float  # the b-bit QANN's input width: 8 (pixels) or the source layer's b;
    # with sources of different bits (residual), the mean over its MACs (each synapse's
    # connections at its own source's bits)
    bits: int  # its own code bits; 0 for the output
    input_bytes_b: float = 0.0  # the b-bit QANN's input arrays: Σ source values × bits / 8


@dataclass(frozen=True)
class Stream:
    """Accesses per inference to one array, each ``bits`` wide."""

    accesses: float
    bits: float
    array_bytes: float


def membranes(layer: Layer, neuron: str) -> int:
    """Membranes a layer keeps: two per hidden bit-serial neuron (double-buffered: ``u_acc``
    accumulates the next sample while ``u_fire`` fires this one), one per IF neuron and per
    output accumulator."""
    per_neuron = 2 if neuron == "bit-serial" and layer.kind == "neuron" else 1
    return layer.size * per_neuron


def layer_arrays(net: Network, neuron: str) -> list[LayerArrays]:
    """One entry per layer after the input, for an SNN of ``neuron``s."""
    rows = []
    for layer in net.layers[1:]:
        sources = [net.layers[s.source] for s in layer.synapses]
        widths = [INPUT_BITS if src.kind == "input" else src.bits for src in sources]
        if len(set(widths)) == 1:
            source_bits: float = widths[0]
        else:
            macs = [int(fan_out(s, src.shape).sum()) for s, src in
                    zip(layer.synapses, sources, strict=True)]
            source_bits = sum(m * w for m, w in zip(macs, widths, strict=True)) / sum(macs)
        rows.append(LayerArrays(
            weights=sum(int(s.weight_int.size) for s in layer.synapses),
            inputs=sum(src.size for src in sources), neurons=layer.size,
            membranes=membranes(layer, neuron),
            source_bits=source_bits, bits=layer.bits,
            input_bytes_b=sum(src.size * w for src, w in zip(sources, widths, strict=True)) / 8))
    return rows


def _stream(accesses: float, bits: float, elements: int) -> Stream:
    return Stream(accesses, bits, elements * bits / 8)


def snn_streams(c: LayerCounts, a: LayerArrays, mem: dict[str, float]) -> dict[str, Stream]:
    """The SNN's traffic of one layer, per inference."""
    n = c.samples
    return {
        "weights": _stream((c.synops + c.input_macs) / n, mem["snn_weight_bits"], a.weights),
        "membrane": _stream((c.mem_reads + c.mem_writes) / n, mem["membrane_bits"],
                            a.membranes),
        "spikes_in": _stream(c.spikes_in / n, mem["spike_bits"], a.inputs),
        "spikes_out": _stream(c.spikes_out / n, mem["spike_bits"], a.neurons),
        "pixels": _stream(c.input_macs / n, INPUT_BITS, a.inputs),
    }


def ann_streams(c: LayerCounts, a: LayerArrays, weight_bits: float, in_bits: float,
                out_bits: float, in_bytes: float | None = None) -> dict[str, Stream]:
    """A (quantised) ANN's traffic of one layer, per inference (``in_bytes``: the input
    arrays' size where their widths differ; default ``inputs × in_bits / 8``)."""
    inputs = _stream(c.connections, in_bits, a.inputs)
    if in_bytes is not None:
        inputs = Stream(inputs.accesses, in_bits, in_bytes)
    return {
        "weights": _stream(c.connections, weight_bits, a.weights),
        "inputs": inputs,
        "outputs": _stream(a.neurons, out_bits, a.neurons),
    }


def model_streams(c: LayerCounts, a: LayerArrays, mem: dict[str, float]
                  ) -> dict[str, dict[str, Stream]]:
    """Every model's traffic of one layer."""
    out = a.bits == 0
    logit = mem["logit_bits"]
    return {
        "snn": snn_streams(c, a, mem),
        "ann": ann_streams(c, a, mem["ann_weight_bits"], mem["ann_act_bits"],
                           logit if out else mem["ann_act_bits"]),
        "qann": ann_streams(c, a, mem["qann_weight_bits"], mem["qann_act_bits"],
                            logit if out else mem["qann_act_bits"]),
        "qann_b": ann_streams(c, a, mem["qann_weight_bits"], a.source_bits,
                              logit if out else a.bits, a.input_bytes_b),
    }


def word_pj(mem: dict[str, float], array_bytes: float) -> float:
    """pJ of one word access to an array of ``array_bytes``: its level's figure."""
    for level in LEVELS:
        if array_bytes <= mem[f"{level}_bytes"]:
            return mem[f"{level}_pj"]
    return mem["dram_pj"]


def stream_pj(mem: dict[str, float], s: Stream) -> float:
    """pJ of a stream per inference."""
    return s.accesses * s.bits / mem["word_bits"] * word_pj(mem, s.array_bytes)
