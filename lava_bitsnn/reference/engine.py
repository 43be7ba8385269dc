"""Reference engine: the SNN evaluated layer by layer on whole batches.

The step-wise paths run the neuron rules of ``lava_bitsnn.core.dynamics`` (the same functions
the Lava ProcessModels call) on the schedule of ``lava_bitsnn.core.schedule``; only the
synapses' currents come from torch's convolutions. Bit-serial neuron (docs/method.md), per
hidden layer with ``A`` accumulate steps and ``T_l`` fire steps:

* accumulate, ``t = 1..A``: ``u ← u + I(t)·2^(shift_bits − t) + bias_step(t)``, with
  ``I(t) = Σ_syn W · s_src(t)``; ``bias_step`` is ``bias / A`` (fixed point: the integer
  quotient, the remainder added at ``t = 1``, so the total is exact);
* hand-over: ``u ← min(u, K·D)`` where the largest code ``K`` is below ``2^b − 1``;
* fire, ``t = 1..T_l``: ``s(t) = [u ≥ θ_t]``, ``u ← u − s(t)·θ_t``, ``θ_t = Δ·2^(b−t)``
  (fixed point: ``D·2^(b−t)``).

The output layer only accumulates. Fixed point runs on exact integers (float64 arrays holding
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
from lava_bitsnn.core import dynamics as dyn
from lava_bitsnn.core.counts import LayerCounts
from lava_bitsnn.core.fanout import fan_out
from lava_bitsnn.core.ir import Layer, Network
from lava_bitsnn.core.schedule import NEURONS, build_schedule
from lava_bitsnn.reference.counting import (
    add_accumulate_phase,
    add_fire_phase,
    add_if_phase,
    add_input_macs,
    add_synops,
)
from lava_bitsnn.reference.fused import FusedFixed, may_clip

PRECISIONS = ("fixed", "float")
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


class _Firing:
    """The fire steps of one layer's batch, from the shared rule ``dynamics.fire``."""

    def __init__(self, layer: Layer, integer: bool, steps: int) -> None:
        self.unit = layer.threshold_unit if integer else layer.step
        self.layer = layer
        self.integer = integer
        self.steps = steps
        self.spikes: list[np.ndarray] = []

    def step(self, u: np.ndarray) -> np.ndarray:
        """Fire the next bit, if any is left, and return the membrane after it."""
        if len(self.spikes) == self.steps:
            return u
        if not self.spikes:
            u = dyn.clip_to_max_code(u, self.unit, self.layer.max_code, self.layer.bits,
                                     self.integer)
        s, u = dyn.fire(u, len(self.spikes) + 1, self.unit, self.layer.bits)
        self.spikes.append(s)
        return u


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
        self.schedule = build_schedule(net, neuron, time_steps)
        self.time_steps = self.schedule.time_steps
        unknown = set(ablate) - set(ABLATIONS)
        if unknown or (ablate and neuron != "bit-serial"):
            raise ValueError(f"ablate takes {ABLATIONS} with the bit-serial neuron; "
                             f"got {tuple(ablate)}")
        self.ablate = frozenset(ablate)
        fusable = (precision == "fixed" and neuron == "bit-serial" and not self.ablate
                   and not may_clip(net, self.schedule))
        self.fused = fusable if fused is None else fused
        if self.fused and not fusable:
            raise ValueError("the fused path is exact only for the bit-serial neuron in fixed "
                             "point, not ablated, where no accumulator can clip")
        integer = precision == "fixed"
        if not integer:
            net.require_float_weights()
        self._weights = [[torch.from_numpy((s.weight_int if integer else s.weight)
                                           .astype(np.float64)) for s in layer.synapses]
                         for layer in net.layers]
        self._fan_out = [[torch.from_numpy(fan_out(s, net.layers[s.source].shape)
                                           .astype(np.float64)) for s in layer.synapses]
                         for layer in net.layers]
        self._fused = FusedFixed(net, self.schedule, self._fan_out) if self.fused else None

    # ---- helpers -------------------------------------------------------------------------
    def _integer(self) -> bool:
        return self.precision == "fixed"

    def _current(self, layer_idx: int, inputs: list[np.ndarray | None],
                 pooled: list[bool] | None = None) -> np.ndarray:
        """Σ over synapses of W · input (inputs indexed like the layer's synapses; None: no
        input this step; ``pooled``: which inputs are max-pooled already)."""
        layer = self.net.layers[layer_idx]
        total = np.zeros((0,))
        pooled = pooled or [False] * len(inputs)
        for syn, w, x, done in zip(layer.synapses, self._weights[layer_idx], inputs, pooled,
                                   strict=True):
            if x is None:
                continue
            y = apply_synapse(syn, torch.from_numpy(x.astype(np.float64)), w, done).numpy()
            total = y if not total.size else total + y
        return total.reshape(total.shape[0], *layer.shape) if total.size else np.float64(0.0)

    def _bias(self, layer: Layer) -> np.ndarray:
        return layer.bias_full(self._integer()).astype(np.float64)

    def _unit(self, layer: Layer) -> float:
        return float(layer.threshold_unit) if self._integer() else layer.step

    # ---- bit-serial ----------------------------------------------------------------------
    def _accumulate(self, idx: int, codes: list[np.ndarray], counts: LayerCounts,
                    fire: _Firing | None = None) -> np.ndarray:
        """The accumulate phase; ``fire`` (ablation of deferred firing) fires bit ``t`` right
        after accumulate step ``t``."""
        layer = self.net.layers[idx]
        timing = self.schedule.layers[idx]
        sources = [(self.schedule.layers[s.source], codes[s.source]) for s in layer.synapses]
        n = sources[0][1].shape[0]
        add_accumulate_phase(counts, n, timing)
        if sources[0][0].graded:
            add_input_macs(counts, self._fan_out[idx], torch.from_numpy(sources[0][1]), steps=1)
        else:
            add_synops(counts, self._fan_out[idx],
                       [torch.from_numpy(sum(dyn.source_frame(code, src.send_bits, t, False)
                                             for t in range(1, src.send_steps + 1)).sum(axis=0))
                        for src, code in sources])
        bias = self._bias(layer)
        if "bias-shift" in self.ablate:
            per_step, first_extra = bias, np.zeros_like(bias)
        else:
            per_step, first_extra = dyn.split_bias(bias, timing.acc_steps, self._integer())
        u = np.zeros((n, *layer.shape))
        max_bits = [dyn.max_pools_bits(s.pool_kind, src.graded)
                    for s, (src, _) in zip(layer.synapses, sources, strict=True)]
        candidates: list[np.ndarray | None] = [None] * len(sources)
        for t in range(1, timing.acc_steps + 1):
            frames: list[np.ndarray | None] = []
            for k, ((src, code), o, syn) in enumerate(zip(sources, timing.offsets,
                                                          layer.synapses, strict=True)):
                if not 1 <= t - o <= src.send_steps:
                    frames.append(None)
                    continue
                frame = dyn.source_frame(code, src.send_bits, t - o, src.graded)
                if max_bits[k]:  # the window maxima, bit by bit (a new sample at bit 1)
                    frame, candidates[k] = dyn.max_pool_bits(
                        frame, None if t - o == 1 else candidates[k], syn.pool, syn.pool_step,
                        syn.pool_padding)
                frames.append(frame)
            shift_bits = t if "left-shift" in self.ablate else timing.shift_bits
            u, clipped = dyn.accumulate(u, self._current(idx, frames, max_bits), t, shift_bits,
                                        per_step, first_extra, self._integer())
            counts.overflows += clipped
            if fire is not None:
                u = fire.step(u)
        return u

    def _fire(self, idx: int, u: np.ndarray, counts: LayerCounts,
              firing: _Firing | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The fire phase: the fire steps ``firing`` (if given) has not already taken."""
        layer = self.net.layers[idx]
        steps = self.schedule.layers[idx].send_steps
        firing = firing or _Firing(layer, self._integer(), steps)
        while len(firing.spikes) < steps:
            u = firing.step(u)
        spk = np.stack(firing.spikes, axis=1)
        code = sum(spk[:, t - 1].astype(np.int64) * dyn.spike_weight(layer.bits, t)
                   for t in range(1, steps + 1))
        add_fire_phase(counts, u.shape[0], steps, int(spk.sum()))
        return code, spk

    def _run_bit_serial(self, pixels: np.ndarray, record: bool) -> BatchResult:
        codes: list[np.ndarray] = [pixels]
        spikes: list[np.ndarray | None] = [None]
        counts = [LayerCounts(layer.name, layer.size) for layer in self.net.layers]
        for idx, layer in enumerate(self.net.layers[1:], start=1):
            eager = None
            if "deferred-firing" in self.ablate and layer.kind != "output":
                eager = _Firing(layer, self._integer(), self.schedule.layers[idx].send_steps)
            u = self._accumulate(idx, codes, counts[idx], eager)
            if layer.kind == "output":
                logits = dyn.logits(u, layer.threshold_unit, self._integer())
                codes.append(logits)
                spikes.append(None)
                return BatchResult(logits, codes, spikes, counts)
            code, spk = self._fire(idx, u, counts[idx], eager)
            codes.append(code)
            spikes.append(spk if record else None)
        raise AssertionError("a network ends with its output layer")

    # ---- IF baseline ---------------------------------------------------------------------
    def _run_if(self, pixels: np.ndarray, record: bool) -> BatchResult:
        """Rate-coded QCFS baseline: spikes carry λ_src = K·Δ, v0 = θ/2, θ = λ."""
        steps = self.schedule.layers[0].send_steps
        n = pixels.shape[0]
        integer = self._integer()
        trains: list[np.ndarray] = [np.broadcast_to(pixels[:, None].astype(np.float64),
                                                    (n, steps, *pixels.shape[1:]))]
        counts = [LayerCounts(layer.name, layer.size) for layer in self.net.layers]
        codes: list[np.ndarray] = [pixels]
        spikes_out: list[np.ndarray | None] = [None]
        for idx, layer in enumerate(self.net.layers[1:], start=1):
            c = counts[idx]
            inputs, spike_counts = [], []
            for syn in layer.synapses:
                src = self.net.layers[syn.source]
                x = trains[syn.source]
                spike_counts.append(torch.from_numpy(x.sum(axis=1)))
                value = 1 if src.kind == "input" else dyn.if_spike_value(src.max_code)
                inputs.append((x * value).reshape(n * steps, *x.shape[2:]))
            if self.net.layers[layer.synapses[0].source].kind == "input":
                add_input_macs(c, self._fan_out[idx], spike_counts[0], steps)
            else:
                add_synops(c, self._fan_out[idx], [sc.sum(dim=0) for sc in spike_counts])
            current = self._current(idx, inputs).reshape(n, steps, *layer.shape)
            bias = self._bias(layer)
            if layer.kind == "output":  # accumulate step by step, saturating like Lava's
                u, by_step = np.zeros((n, *layer.shape)), []
                for t in range(steps):
                    u, clipped = dyn.output_add(u, current[:, t], bias, integer)
                    c.overflows += clipped
                    by_step.append(dyn.logits(u, layer.threshold_unit, integer, t + 1))
                add_if_phase(c, n, steps, 0, fires=False)
                codes.append(by_step[-1])
                spikes_out.append(None)
                return BatchResult(by_step[-1], codes, spikes_out, counts,
                                   np.stack(by_step, axis=1))
            unit = self._unit(layer)
            theta = dyn.top_threshold(unit, layer.max_code)
            step_bias = dyn.if_bias(bias, unit, integer)
            v = dyn.if_initial((n, *layer.shape), theta, integer).astype(np.float64)
            out = []
            for t in range(steps):
                s, v, clipped = dyn.if_step(v, current[:, t], step_bias, theta, integer)
                c.overflows += clipped
                out.append(s)
            spk = np.stack(out, axis=1)
            add_if_phase(c, n, steps, int(spk.sum()), fires=True)
            trains.append(spk.astype(np.float64))
            codes.append(spk.sum(axis=1))
            spikes_out.append(spk if record else None)
        raise AssertionError("a network ends with its output layer")

    # ---- public --------------------------------------------------------------------------
    def run_batch(self, pixels: np.ndarray, record: bool = False) -> BatchResult:
        """Run uint8 images (N, C, H, W); ``record`` keeps every layer's spike trains."""
        x = np.asarray(pixels).astype(np.int64)
        if tuple(x.shape[1:]) != tuple(self.net.input_shape):
            raise ValueError(f"input shape {tuple(x.shape[1:])} does not match the network's "
                             f"{tuple(self.net.input_shape)}")
        with torch.no_grad():
            if self.neuron == "if":
                return self._run_if(x, record)
            if self._fused is not None:
                counts = [LayerCounts(layer.name, layer.size) for layer in self.net.layers]
                logits, codes, spikes = self._fused.run(torch.from_numpy(x), counts, record)
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
