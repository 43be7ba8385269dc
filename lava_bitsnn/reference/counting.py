"""The reference engine's counting: synaptic events from spike totals, neuron operations from
the per-step rules of ``lava_bitsnn.core.counts`` (one source with the Lava models)."""

from __future__ import annotations

import torch

from lava_bitsnn.core.counts import (
    LayerCounts,
    accumulate_step_ops,
    add_ops,
    fire_step_ops,
    if_step_ops,
)
from lava_bitsnn.core.schedule import LayerTiming


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


def add_accumulate_phase(counts: LayerCounts, samples: int, timing: LayerTiming) -> None:
    """Every accumulate step of the window, for ``samples`` samples."""
    counts.samples += samples
    counts.accumulate_steps = timing.acc_steps
    for t in range(1, timing.acc_steps + 1):
        add_ops(counts, accumulate_step_ops(counts.neurons * samples, timing.shifted(t)))


def add_fire_phase(counts: LayerCounts, samples: int, steps: int, spikes: int) -> None:
    """``steps`` bit-serial fire steps emitting ``spikes`` in all (the rule is linear)."""
    counts.fire_steps = steps
    counts.spikes_out += spikes
    add_ops(counts, fire_step_ops(counts.neurons * samples * steps, spikes))


def add_if_phase(counts: LayerCounts, samples: int, steps: int, spikes: int,
                 fires: bool) -> None:
    """``steps`` IF steps (the read-out integrates only: no comparisons, no spikes)."""
    counts.samples += samples
    counts.accumulate_steps = steps
    k = counts.neurons * samples * steps
    if fires:
        counts.fire_steps = steps
        counts.spikes_out += spikes
        add_ops(counts, if_step_ops(k, spikes))
    else:
        add_ops(counts, accumulate_step_ops(k, False))
