"""Per-layer operation counts gathered during a simulation (summed over samples)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


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

    def merge(self, other: LayerCounts) -> None:
        for key in ("samples", "spikes_in", "synops", "input_macs", "spikes_out", "overflows"):
            setattr(self, key, getattr(self, key) + getattr(other, key))
        self.connections = other.connections or self.connections
        self.accumulate_steps = other.accumulate_steps or self.accumulate_steps
        self.fire_steps = other.fire_steps or self.fire_steps

    @property
    def spike_rate(self) -> float:
        """Spikes / (neurons × T)."""
        denom = self.neurons * self.fire_steps * self.samples
        return self.spikes_out / denom if denom else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "spike_rate": self.spike_rate}
