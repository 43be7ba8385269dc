"""Per-layer operation counts gathered during a simulation (summed over samples).

Neuron operations, per neuron and step of a layer's windows (docs/energy-report.md): every
accumulate step is one update with a bias add, a membrane read and write, and a left shift
when the shift amount is > 0; every fire step of the bit-serial neuron is one update with a
comparison and a read, plus a subtraction and a write where it spikes; an IF step is one
update with a bias add, a comparison, a read and a write, plus a subtraction where it spikes.
The three ``*_step_ops`` functions are these rules; both simulators add what they return.

``neurons`` and ``spikes`` may be ints or arrays (one value per batch slot)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

NEURON_OPS = ("neuron_updates", "shifts", "bias_adds", "comparisons", "subtractions",
              "mem_reads", "mem_writes")
SUMMED = ("samples", "spikes_in", "synops", "input_macs", "spikes_out", "overflows") + NEURON_OPS


@dataclass
class LayerCounts:
    name: str
    neurons: int
    samples: int = 0
    spikes_in: int = 0  # spikes arriving at the layer's synapses
    synops: int = 0  # Σ spikes × fan-out
    input_macs: int = 0  # graded input: one MAC per connection of every pixel
    spikes_out: int = 0
    overflows: int = 0  # saturating-accumulator clip events (fixed point)
    connections: int = 0  # synapses of the layer = the ANN's MACs per sample
    accumulate_steps: int = 0
    fire_steps: int = 0
    neuron_updates: int = 0
    shifts: int = 0
    bias_adds: int = 0
    comparisons: int = 0
    subtractions: int = 0
    mem_reads: int = 0
    mem_writes: int = 0

    def merge(self, other: LayerCounts) -> None:
        for key in SUMMED:
            setattr(self, key, getattr(self, key) + getattr(other, key))
        self.connections = other.connections or self.connections
        self.accumulate_steps = other.accumulate_steps or self.accumulate_steps
        self.fire_steps = other.fire_steps or self.fire_steps

    @property
    def ann_macs(self) -> int:
        """MACs of the same layer in the ANN (and the quantised ANN), over all samples."""
        return self.connections * self.samples

    @property
    def bits_per_activation(self) -> float:
        """Mean 1-bits (spikes) per activation and sample."""
        denom = self.neurons * self.samples
        return self.spikes_out / denom if denom else 0.0

    @property
    def spike_rate(self) -> float:
        """Spikes / (neurons × T)."""
        denom = self.neurons * self.fire_steps * self.samples
        return self.spikes_out / denom if denom else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "spike_rate": self.spike_rate, "ann_macs": self.ann_macs,
                "bits_per_activation": self.bits_per_activation}


def accumulate_step_ops(neurons: Any, shifted: bool) -> dict[str, Any]:
    """One accumulate step of ``neurons`` neurons."""
    ops = dict.fromkeys(("neuron_updates", "bias_adds", "mem_reads", "mem_writes"), neurons)
    if shifted:
        ops["shifts"] = neurons
    return ops


def fire_step_ops(neurons: Any, spikes: Any) -> dict[str, Any]:
    """One bit-serial fire step of ``neurons`` neurons, ``spikes`` of which fire."""
    return {"neuron_updates": neurons, "comparisons": neurons, "mem_reads": neurons,
            "subtractions": spikes, "mem_writes": spikes}


def if_step_ops(neurons: Any, spikes: Any) -> dict[str, Any]:
    """One IF step (integrate and fire in one update)."""
    return {**accumulate_step_ops(neurons, False), "comparisons": neurons,
            "subtractions": spikes}


def add_ops(counts: LayerCounts, ops: dict[str, Any], times: int = 1) -> None:
    """Add ``times`` × the scalar ``ops`` to ``counts``."""
    for op, value in ops.items():
        setattr(counts, op, getattr(counts, op) + int(value) * times)
