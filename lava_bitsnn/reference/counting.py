"""Synaptic-event counting shared by the reference engine's paths."""

from __future__ import annotations

import torch

from lava_bitsnn.counts import LayerCounts


def add_synops(counts: LayerCounts, fan_outs: list[torch.Tensor],
               spikes_per_neuron: list[torch.Tensor]) -> None:
    """Σ spikes × fan-out, per synapse; ``spikes_per_neuron``: source spikes summed over the
    batch and the steps, shaped like the source layer."""
    for per_source, spikes in zip(fan_outs, spikes_per_neuron, strict=True):
        spikes = spikes.double()
        counts.synops += int((spikes * per_source).sum())
        counts.spikes_in += int(spikes.sum())
        counts.connections = int(per_source.sum())


def add_input_macs(counts: LayerCounts, fan_outs: list[torch.Tensor], active_samples: int,
                   steps: int) -> None:
    """Graded (multi-bit) input: one MAC per connection, per step, per sample with input."""
    for per_source in fan_outs:
        counts.input_macs += int(per_source.sum()) * active_samples * steps
        counts.connections = int(per_source.sum())
