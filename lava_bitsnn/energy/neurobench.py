"""NeuroBench's metrics of the network as it ran, under NeuroBench's names and definitions
(neurobench 2.3.0, ``metrics/static`` and ``metrics/workload``), from the IR and the run:

* ``footprint``: bytes of the parameters and the state (NeuroBench: parameters + buffers);
  weights as 8-bit mantissas, biases and membranes as int32; a hidden bit-serial neuron keeps
  two membranes (``u_acc`` accumulates the next sample while ``u_fire`` fires this one), an IF
  neuron and the output's accumulator one;
* ``connection_sparsity``: zero weights / weights, over every synapse (the deployed weights:
  ``weight_int`` in fixed point);
* ``activation_sparsity``: zero outputs / outputs of the spiking layers over all their fire
  steps and samples, i.e. 1 − spikes / (neurons × T × samples);
* ``synaptic_operations``: per sample, ``Dense``, every connection (zero weights included,
  padding not) at every step its synapse carries input (the source's fire steps);
  ``Effective_ACs``, Σ over binary input events (spikes) of the source's fan-out through
  non-zero weights; ``Effective_MACs``, the same over non-zero graded inputs (the graded input
  layer). A folded sum-pool is part of its
  synapse (each pooled pixel's events count with the whole window's fan-out).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from lava_bitsnn.core.counts import LayerCounts
from lava_bitsnn.core.fanout import fan_out
from lava_bitsnn.core.ir import INPUT_BITS, Network, Synapse
from lava_bitsnn.energy.memory import membranes

WEIGHT_BYTES, BIAS_BYTES, STATE_BYTES = 1, 4, 4


def _weights(syn: Synapse, integer: bool) -> np.ndarray:
    return syn.weight_int if integer and syn.weight_int is not None else syn.weight


def footprint(net: Network, neuron: str = "bit-serial") -> int:
    """Bytes of weights, biases and membrane state."""
    layers = net.layers[1:]
    weights = sum(int(s.weight_int.size) for layer in layers for s in layer.synapses)
    biases = sum(int(np.size(layer.bias)) for layer in layers if layer.bias is not None)
    return (weights * WEIGHT_BYTES + biases * BIAS_BYTES
            + sum(membranes(layer, neuron) for layer in layers) * STATE_BYTES)


def connection_sparsity(net: Network, integer: bool) -> float:
    """Zero weights / all weights."""
    synapses = [s for layer in net.layers[1:] for s in layer.synapses]
    zeros = sum(int((_weights(s, integer) == 0).sum()) for s in synapses)
    return zeros / sum(int(s.weight_int.size) for s in synapses)


def activation_sparsity(counts: list[LayerCounts]) -> float:
    """1 − spikes / spike slots over the spiking layers."""
    spiking = [c for c in counts[1:] if c.fire_steps]
    slots = sum(c.neurons * c.fire_steps * c.samples for c in spiking)
    return 1.0 - sum(c.spikes_out for c in spiking) / slots if slots else 0.0


def _fan_out(net: Network, syn: Synapse, weight: np.ndarray) -> np.ndarray:
    return fan_out(replace(syn, weight=weight), net.layers[syn.source].shape)


def synaptic_operations(net: Network, counts: list[LayerCounts], events: list, graded: bool,
                        integer: bool) -> dict[str, float]:
    """Dense, Effective_MACs and Effective_ACs per sample; ``events``: see ``input_events``."""
    samples = counts[1].samples
    ops = {"Dense": 0.0, "Effective_MACs": 0.0, "Effective_ACs": 0.0}
    for layer, c in zip(net.layers[1:], counts[1:], strict=True):
        for syn in layer.synapses:
            # the steps this synapse carries input: its source's fire steps (pixels: 8 bits;
            # graded: the layer's accumulate steps, 1 bit-serial, T for IF)
            if syn.source:
                steps = counts[syn.source].fire_steps
            else:
                steps = c.accumulate_steps if graded else INPUT_BITS
            dense = _fan_out(net, syn, np.ones_like(syn.weight_int)).sum()
            ops["Dense"] += float(dense) * steps * samples
            effective = float((events[syn.source] * _fan_out(net, syn, _weights(syn, integer)))
                              .sum())
            if graded and syn.source == 0:
                ops["Effective_MACs"] += effective * steps
            else:
                ops["Effective_ACs"] += effective
    return {key: value / samples for key, value in ops.items()}


def graded_input(engine) -> bool:
    """Whether the engine's input sends graded values (IF baseline, graded encoding)."""
    return engine.neuron == "if" or engine.net.encoding == "graded"


def batch_events(engine, codes: list) -> list:
    """Per layer, the events each neuron sent in one batch (``codes``: a BatchResult's),
    summed over the batch: spikes of the input bits and hidden layers (each hidden layer's
    ``T_l = min(T, b_l)`` fire steps, from the schedule), or, for graded input, the samples in
    which each pixel is non-zero. The output sends none (zeros)."""
    import torch

    from lava_bitsnn.reference.fused import spike_bits

    net = engine.net
    pixels = torch.from_numpy(np.asarray(codes[0], dtype=np.int64))
    events = [((pixels != 0) if graded_input(engine) else spike_bits(pixels, INPUT_BITS,
                                                                     INPUT_BITS).sum(dim=1))
              .sum(dim=0).numpy().astype(np.float64)]
    for idx, layer in enumerate(net.layers[1:-1], start=1):
        code = torch.from_numpy(np.asarray(codes[idx])).long()
        spikes = code if engine.neuron == "if" else \
            spike_bits(code, layer.bits, engine.schedule.layers[idx].send_steps).sum(dim=1)
        events.append(spikes.sum(dim=0).numpy().astype(np.float64))
    events.append(np.zeros(net.layers[-1].shape))
    return events


def evaluate_with_events(engine, images: np.ndarray, batch_size: int = 256,
                         progress: bool = False) -> tuple[np.ndarray, list[LayerCounts], list]:
    """One run of ``images`` on a ReferenceEngine: (predictions, merged op counts, per-layer
    events as ``input_events``): the counts and the NeuroBench events of the same batches."""
    from tqdm import tqdm

    net = engine.net
    preds = []
    counts = [LayerCounts(layer.name, layer.size) for layer in net.layers]
    totals = [np.zeros(layer.shape) for layer in net.layers]
    bar = tqdm(total=len(images), unit="img", disable=not progress, leave=False)
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size]
        result = engine.run_batch(x)
        preds.append(result.predictions)
        for mine, theirs in zip(counts, result.counts, strict=True):
            mine.merge(theirs)
        for total, events in zip(totals, batch_events(engine, result.codes), strict=True):
            total += events
        bar.update(len(x))
    bar.close()
    return np.concatenate(preds), counts, totals


def input_events(engine, images: np.ndarray, batch_size: int = 256) -> tuple[list, bool]:
    """(per layer, the events each neuron sent, summed over ``images``; whether the input is
    graded): see ``batch_events``. ``engine``: a ReferenceEngine."""
    totals = [np.zeros(layer.shape) for layer in engine.net.layers]
    for start in range(0, len(images), batch_size):
        codes = engine.run_batch(images[start:start + batch_size]).codes
        for total, events in zip(totals, batch_events(engine, codes), strict=True):
            total += events
    return totals, graded_input(engine)


def neurobench_metrics(net: Network, counts: list[LayerCounts], events: list, graded: bool,
                       integer: bool, neuron: str = "bit-serial") -> dict:
    """The report's ``neurobench`` section."""
    return {"footprint": footprint(net, neuron),
            "connection_sparsity": connection_sparsity(net, integer),
            "activation_sparsity": activation_sparsity(counts),
            "synaptic_operations": synaptic_operations(net, counts, events, graded, integer)}
