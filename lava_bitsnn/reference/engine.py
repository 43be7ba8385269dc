"""Reference engine: the SNN evaluated layer by layer on whole batches.

Bit-serial neuron (DESIGN.md §2), per hidden layer with ``A`` accumulate steps (8 or 1 after
the input, ``T`` elsewhere) and ``T`` fire steps:

* accumulate, ``t = 1..A``: ``u ← u + (I(t) << (b_src − t)) + bias_step(t)``, with
  ``I(t) = Σ_syn W · s_src(t)``; ``bias_step`` is ``bias / A`` (fixed point: the integer
  quotient, the remainder added at ``t = 1``, so the total is exact);
* fire, ``t = 1..T``: ``s(t) = [u ≥ θ_t]``, ``u ← u − s(t)·θ_t``, ``θ_t = Δ·2^(b−t)``
  (fixed point: ``D·2^(b−t)``).

The output layer only accumulates. Fixed point runs on exact integers (float64 tensors holding
integers below 2^53, so torch's convolutions are exact) with a saturating 24-bit accumulator
whose clipping events are counted. In fixed point both phases may be fused, which tests check
against the step-wise loops:

* accumulate: by linearity ``Σ_t 2^(b−t) W·s(t) = W·code`` holds exactly in integers;
* fire: the greedy MSB-first subtraction has a closed form;

see ``fused.py`` for the argument. The IF baseline (rate coding, reset by subtraction,
``v0 = θ/2``, constant input current) runs any ``T``; its read-out after every step is kept,
since a run of ``T`` steps is the prefix of any longer run.

``ablate`` switches off parts of the method for the ablation benchmark (the paper's Table 4),
step-wise paths only: ``left-shift`` (accumulate ``I(t)`` unweighted), ``bias-shift`` (add the
whole bias at every accumulate step instead of ``bias / A``) and ``deferred-firing`` (fire bit
``t`` right after accumulate step ``t``, before the lower bits have arrived; inputs arriving
after the last fire step are lost).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from lava_bitsnn.convert.synapse_ops import apply_synapse
from lava_bitsnn.core.counts import LayerCounts
from lava_bitsnn.core.fanout import fan_out
from lava_bitsnn.core.ir import ACC_MAX, INPUT_BITS, Layer, Network
from lava_bitsnn.reference.counting import (
    add_accumulate_ops,
    add_fire_ops,
    add_input_macs,
    add_synops,
    shift_steps,
)
from lava_bitsnn.reference.fused import FusedFixed, may_clip

PRECISIONS = ("fixed", "float")
NEURONS = ("bit-serial", "if")
ABLATIONS = ("left-shift", "bias-shift", "deferred-firing")


@dataclass
class BatchResult:
    logits: np.ndarray  # (N, classes)
    codes: list[np.ndarray]  # per layer: input pixels, hidden codes (IF: spike counts), logits
    spikes: list[np.ndarray | None] = field(default_factory=list)  # (N, T, *shape) bool
    counts: list[LayerCounts] = field(default_factory=list)
    logits_by_step: np.ndarray | None = None  # IF: (N, T, classes), the read-out after step t

    @property
    def predictions(self) -> np.ndarray:
        return self.logits.argmax(axis=1)


def _bit(code: torch.Tensor, bits: int, t: int) -> torch.Tensor:
    """Spike of step ``t`` (1-based, MSB first) of ``bits``-bit codes."""
    return torch.bitwise_and(torch.bitwise_right_shift(code, bits - t), 1)


def _spike_count(code: torch.Tensor, bits: int, steps: int) -> torch.Tensor:
    """Spikes sent over ``steps`` MSB-first steps by ``bits``-bit codes."""
    return sum((_bit(code, bits, t) for t in range(1, steps + 1)), torch.zeros_like(code))


class _Firing:
    """MSB-first fire steps of one layer: ``s(t) = [u ≥ θ_t]``, ``u ← u − s(t)·θ_t``."""

    def __init__(self, layer: Layer, integer: bool, steps: int) -> None:
        self.unit = float(layer.threshold_unit) if integer else layer.step
        self.bits = layer.bits
        self.steps = steps
        self.spikes: list[torch.Tensor] = []

    def step(self, u: torch.Tensor) -> torch.Tensor:
        """Fire the next bit, if any is left, and return the membrane after it."""
        if len(self.spikes) == self.steps:
            return u
        theta = self.unit * float(1 << (self.bits - len(self.spikes) - 1))
        s = u >= theta
        self.spikes.append(s)
        return u - s.double() * theta


class ReferenceEngine:
    def __init__(self, net: Network, precision: str = "fixed", neuron: str = "bit-serial",
                 time_steps: int | None = None, fused: bool | None = None,
                 ablate: tuple[str, ...] = ()) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}")
        if neuron not in NEURONS:
            raise ValueError(f"neuron must be one of {NEURONS}")
        self.net = net
        self.precision = precision
        self.neuron = neuron
        self.time_steps = time_steps or net.time_steps
        if neuron == "bit-serial" and not 1 <= self.time_steps <= net.bits:
            raise ValueError(f"bit-serial time steps must be 1..{net.bits}")
        if self.time_steps < 1:
            raise ValueError("time steps must be at least 1")
        unknown = set(ablate) - set(ABLATIONS)
        if unknown or (ablate and neuron != "bit-serial"):
            raise ValueError(f"ablate takes {ABLATIONS} with the bit-serial neuron; "
                             f"got {tuple(ablate)}")
        self.ablate = frozenset(ablate)
        fusable = (precision == "fixed" and neuron == "bit-serial" and not self.ablate
                   and not may_clip(net))
        self.fused = fusable if fused is None else fused
        if self.fused and not fusable:
            raise ValueError("the fused path is exact only for the bit-serial neuron in fixed "
                             "point, not ablated, where no accumulator can clip")
        integer = precision == "fixed"
        self._weights = [[torch.from_numpy((s.weight_int if integer else s.weight)
                                           .astype(np.float64)) for s in layer.synapses]
                         for layer in net.layers]
        self._fan_out = [[torch.from_numpy(fan_out(s, net.layers[s.source].shape)
                                           .astype(np.float64)) for s in layer.synapses]
                         for layer in net.layers]
        self._fused = FusedFixed(net, self.time_steps, self._fan_out) if self.fused else None

    # ---- helpers -------------------------------------------------------------------------
    def _integer(self) -> bool:
        return self.precision == "fixed"

    def _current(self, layer_idx: int, inputs: list[torch.Tensor]) -> torch.Tensor:
        """Σ over synapses of W · input (inputs indexed like the layer's synapses)."""
        layer = self.net.layers[layer_idx]
        total = None
        for syn, w, x in zip(layer.synapses, self._weights[layer_idx], inputs, strict=True):
            y = apply_synapse(syn, x.double(), w)
            total = y if total is None else total + y
        assert total is not None
        return total.reshape(total.shape[0], *layer.shape)

    def _bias(self, layer: Layer) -> torch.Tensor:
        return torch.from_numpy(layer.bias_full(self._integer()).astype(np.float64))

    def _saturate(self, u: torch.Tensor, counts: LayerCounts) -> torch.Tensor:
        if not self._integer():
            return u
        over = (u > ACC_MAX) | (u < -ACC_MAX - 1)
        if bool(over.any()):
            counts.overflows += int(over.sum())
            u = u.clamp(-ACC_MAX - 1, ACC_MAX)
        return u

    # ---- bit-serial ----------------------------------------------------------------------
    def _source_view(self, src: Layer, code: torch.Tensor) -> tuple[int, int, bool]:
        """(bits of the source code, steps, graded?) for a synapse from ``src``."""
        if src.kind == "input":
            graded = self.net.encoding == "graded"
            return INPUT_BITS, 1 if graded else INPUT_BITS, graded
        return src.bits, self.time_steps, False

    def _accumulate(self, idx: int, codes: list[torch.Tensor], counts: LayerCounts,
                    fire: _Firing | None = None) -> torch.Tensor:
        """The accumulate phase; ``fire`` (ablation of deferred firing) fires bit ``t`` right
        after accumulate step ``t``."""
        layer = self.net.layers[idx]
        srcs = [self.net.layers[s.source] for s in layer.synapses]
        src_codes = [codes[s.source] for s in layer.synapses]
        bits, steps, graded = self._source_view(srcs[0], src_codes[0])
        bias = self._bias(layer)
        n = src_codes[0].shape[0]
        counts.samples += n
        counts.accumulate_steps = steps
        add_accumulate_ops(counts, n, steps, 0 if graded else shift_steps(bits, steps))
        if graded:
            add_input_macs(counts, self._fan_out[idx], src_codes[0], steps=1)
            u = self._saturate(self._current(idx, src_codes) + bias, counts)
            return fire.step(u) if fire is not None else u
        add_synops(counts, self._fan_out[idx],
                   [_spike_count(c, bits, steps).sum(dim=0) for c in src_codes])
        if "bias-shift" in self.ablate:
            step_bias, first_extra = bias, torch.zeros_like(bias)
        else:
            step_bias = torch.div(bias, steps, rounding_mode="floor") if self._integer() \
                else bias / steps
            first_extra = bias - step_bias * steps
        u = torch.zeros(n, *layer.shape, dtype=torch.float64)
        for t in range(1, steps + 1):
            current = self._current(idx, [_bit(c, bits, t).double() for c in src_codes])
            weight = 1.0 if "left-shift" in self.ablate else float(1 << (bits - t))
            u = u + current * weight + step_bias
            if t == 1:
                u = u + first_extra
            u = self._saturate(u, counts)
            if fire is not None:
                u = fire.step(u)
        return u

    def _fire(self, layer: Layer, u: torch.Tensor, counts: LayerCounts,
              firing: _Firing | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The fire phase: the fire steps ``firing`` (if given) has not already taken."""
        counts.fire_steps = self.time_steps
        firing = firing or _Firing(layer, self._integer(), self.time_steps)
        while len(firing.spikes) < self.time_steps:
            u = firing.step(u)
        spk = torch.stack(firing.spikes, dim=1)
        weights = torch.tensor([1 << (layer.bits - t) for t in range(1, self.time_steps + 1)],
                               dtype=torch.int64).view(1, -1, *([1] * len(layer.shape)))
        code = (spk.to(torch.int64) * weights).sum(dim=1)
        counts.spikes_out += int(spk.sum())
        add_fire_ops(counts, u.shape[0], self.time_steps, int(spk.sum()), own_update=True)
        return code, spk

    def _run_bit_serial(self, pixels: torch.Tensor, record: bool) -> BatchResult:
        codes: list[torch.Tensor] = [pixels]
        spikes: list[np.ndarray | None] = [None]
        counts = [LayerCounts(layer.name, layer.size) for layer in self.net.layers]
        logits = None
        for idx, layer in enumerate(self.net.layers[1:], start=1):
            eager = None
            if "deferred-firing" in self.ablate and layer.kind != "output":
                eager = _Firing(layer, self._integer(), self.time_steps)
            u = self._accumulate(idx, codes, counts[idx], eager)
            if layer.kind == "output":
                logits = u / layer.threshold_unit if self._integer() else u
                codes.append(logits)
                spikes.append(None)
                break
            code, spk = self._fire(layer, u, counts[idx], eager)
            codes.append(code)
            spikes.append(spk.numpy() if record else None)
        assert logits is not None
        return BatchResult(logits.numpy(), [c.numpy() for c in codes], spikes, counts)

    # ---- IF baseline ---------------------------------------------------------------------
    def _run_if(self, pixels: torch.Tensor, record: bool) -> BatchResult:
        """Rate-coded QCFS baseline: spikes carry λ_src, v0 = θ/2, θ = λ = KΔ."""
        steps = self.time_steps
        n = pixels.shape[0]
        trains: list[torch.Tensor] = [pixels.double().unsqueeze(1).expand(n, steps,
                                                                          *pixels.shape[1:])]
        counts = [LayerCounts(layer.name, layer.size) for layer in self.net.layers]
        codes: list[np.ndarray] = [pixels.numpy()]
        spikes_out: list[np.ndarray | None] = [None]
        logits, by_step = None, []
        for idx, layer in enumerate(self.net.layers[1:], start=1):
            c = counts[idx]
            c.samples += n
            inputs, spike_counts = [], []
            for syn in layer.synapses:
                src = self.net.layers[syn.source]
                x = trains[syn.source]
                spike_counts.append(x.sum(dim=1))
                value = 1.0 if src.kind == "input" else float(src.max_code)
                inputs.append((x * value).reshape(n * steps, *x.shape[2:]))
            from_input = self.net.layers[layer.synapses[0].source].kind == "input"
            if from_input:
                add_input_macs(c, self._fan_out[idx], spike_counts[0], steps)
            else:
                add_synops(c, self._fan_out[idx], [sc.sum(dim=0) for sc in spike_counts])
            current = self._current(idx, inputs).reshape(n, steps, *layer.shape)
            unit = float(layer.threshold_unit) if self._integer() else layer.step
            bias = self._bias(layer)
            c.accumulate_steps = steps
            add_accumulate_ops(c, n, steps, 0)
            if layer.kind == "output":  # accumulate step by step, saturating like Lava's
                total = torch.zeros(n, *layer.shape, dtype=torch.float64)
                scale = float(layer.threshold_unit) if self._integer() else 1.0
                for t in range(steps):
                    total = self._saturate(total + current[:, t] + bias, c)
                    by_step.append(total / (t + 1) / scale)
                logits = by_step[-1]
                codes.append(logits.numpy())
                spikes_out.append(None)
                break
            step_bias = bias - unit / 2  # the QCFS half step is replaced by v0 = θ/2
            theta = unit * layer.max_code
            v = torch.full((n, *layer.shape), theta / 2)
            if self._integer():
                v = torch.floor(v)
            out = []
            for t in range(steps):
                v = self._saturate(v + current[:, t] + step_bias, c)
                s = v >= theta
                v = v - s.double() * theta
                out.append(s)
            spk = torch.stack(out, dim=1)
            c.spikes_out += int(spk.sum())
            c.fire_steps = steps
            add_fire_ops(c, n, steps, int(spk.sum()), own_update=False)
            trains.append(spk.double())
            codes.append(spk.sum(dim=1).numpy())
            spikes_out.append(spk.numpy() if record else None)
        assert logits is not None
        return BatchResult(logits.numpy(), codes, spikes_out, counts,
                           torch.stack(by_step, dim=1).numpy())

    # ---- public --------------------------------------------------------------------------
    def run_batch(self, pixels: np.ndarray, record: bool = False) -> BatchResult:
        """Run uint8 images (N, C, H, W); ``record`` keeps every layer's spike trains."""
        x = torch.from_numpy(np.asarray(pixels).astype(np.int64))
        if tuple(x.shape[1:]) != tuple(self.net.input_shape):
            raise ValueError(f"input shape {tuple(x.shape[1:])} does not match the network's "
                             f"{tuple(self.net.input_shape)}")
        with torch.no_grad():
            if self.neuron == "if":
                return self._run_if(x, record)
            if self._fused is not None:
                counts = [LayerCounts(layer.name, layer.size) for layer in self.net.layers]
                logits, codes, spikes = self._fused.run(x, counts, record)
                logits = logits.numpy()
                return BatchResult(logits, [c.long().numpy() for c in codes] + [logits], spikes,
                                   counts)
            return self._run_bit_serial(x, record)

    def evaluate(self, images: np.ndarray, batch_size: int = 256, progress: bool = False
                 ) -> tuple[np.ndarray, list[LayerCounts]]:
        """Predictions for a whole image set, streamed in batches, with merged op counts."""
        from tqdm import tqdm

        preds, total = [], [LayerCounts(layer.name, layer.size) for layer in self.net.layers]
        bar = tqdm(total=len(images), unit="img", disable=not progress, leave=False)
        for start in range(0, len(images), batch_size):
            result = self.run_batch(images[start:start + batch_size])
            preds.append(result.predictions)
            for mine, theirs in zip(total, result.counts, strict=True):
                mine.merge(theirs)
            bar.update(len(result.predictions))
        bar.close()
        return np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64), total
