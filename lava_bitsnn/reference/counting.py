"""Synaptic-event counting shared by the reference engine's paths."""

from __future__ import annotations

import torch

from lava_bitsnn.core.counts import LayerCounts


def add_synops(counts: LayerCounts, fan_outs: list[torch.Tensor],
               spikes_per_neuron: list[torch.Tensor]) -> None:
    """Σ spikes × fan-out, per synapse; ``spikes_per_neuron``: source spikes summed over the
    batch and the steps, shaped like the source layer."""
    for per_source, spikes in zip(fan_outs, spikes_per_neuron, strict=True):
        spikes = spikes.double()
        counts.synops += int((spikes * per_source).sum())
        counts.spikes_in += int(spikes.sum())
    counts.connections = sum(int(f.sum()) for f in fan_outs)


def add_input_macs(counts: LayerCounts, fan_outs: list[torch.Tensor], pixels: torch.Tensor,
                   steps: int) -> None:
    """Graded (multi-bit) input: one MAC per connection, per step, per sample with input
    (``pixels``: the batch, sample first)."""
    active = int(pixels.reshape(pixels.shape[0], -1).any(dim=1).sum())
    counts.connections = sum(int(f.sum()) for f in fan_outs)
    counts.input_macs += counts.connections * active * steps


def shift_steps(src_bits: int, acc_steps: int) -> int:
    """Accumulate steps ``t`` whose left shift ``src_bits − t`` is > 0."""
    return max(0, min(acc_steps, src_bits - 1))


def add_accumulate_ops(counts: LayerCounts, samples: int, steps: int, shifts: int) -> None:
    """``steps`` accumulate steps of every neuron: update, bias add, read, write; ``shifts``
    of them also shift (see lava_bitsnn.core.counts)."""
    k = counts.neurons * samples
    counts.neuron_updates += k * steps
    counts.bias_adds += k * steps
    counts.mem_reads += k * steps
    counts.mem_writes += k * steps
    counts.shifts += k * shifts


def add_fire_ops(counts: LayerCounts, samples: int, steps: int, spikes: int,
                 own_update: bool) -> None:
    """``steps`` fire steps: a comparison each and a subtraction per spike; ``own_update``
    (bit-serial) makes each a separate update with a read, and a write per spike."""
    k = counts.neurons * samples
    counts.comparisons += k * steps
    counts.subtractions += spikes
    if own_update:
        counts.neuron_updates += k * steps
        counts.mem_reads += k * steps
        counts.mem_writes += spikes
