"""Layer-by-layer comparison of the QCFS ANN, the float SNN and the fixed-point SNN.

Promises checked (docs/method.md):
* fixed-point SNN == integer QANN on the same grid, every layer: zero mismatches, for the
  fused closed form on every sample and for the step-wise bit-serial dynamics (the rules the
  Lava models run) on the first ``stepwise_samples`` of each batch;
* float SNN == QCFS ANN (both float64): every mismatch must be a bin-edge case, i.e. at the
  first layer where a sample differs, the ANN pre-activation of every differing neuron lies
  within ``EDGE_TOL`` of a quantisation edge (``|z/Δ + ½ − round(z/Δ + ½)| < EDGE_TOL``).
The float-vs-fixed gap (weight rounding) is measured, not required to be zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np
import torch
from torch import nn

from lava_bitsnn.ann.data import normalise
from lava_bitsnn.ann.qcfs import qcfs_layers
from lava_bitsnn.convert.trace import call_name
from lava_bitsnn.core.ir import Network
from lava_bitsnn.core.schedule import build_schedule
from lava_bitsnn.reference.engine import ReferenceEngine
from lava_bitsnn.reference.qann import integer_qann

EDGE_TOL = 1e-6


@dataclass
class AnnTrace:
    codes: dict[str, np.ndarray]  # QCFS module path → integer codes
    edge: dict[str, np.ndarray]  # distance of z/Δ + ½ to the nearest integer
    logits: np.ndarray


@torch.no_grad()
def ann_trace(model: nn.Module, pixels: np.ndarray, mean: list[float], std: list[float]
              ) -> AnnTrace:
    """Run the QCFS ANN in float64 and record every QCFS layer's codes and bin-edge distance."""
    model = model.double().eval()
    layers = qcfs_layers(model)
    for _, m in layers:
        m.record_codes = True
        m.records = []
    try:
        # normalised in float64 too: float32 inputs alone move z/Δ by up to ~1e-6
        logits = model(normalise(pixels, mean, std, torch.float64))
        codes, edge = {}, {}
        for name, m in layers:  # a module used at several places: one entry per call
            for call, (code, z) in enumerate(m.records):  # a FixedCode knows its IR name
                key = call_name(getattr(m, "layer_name", name), call)
                codes[key] = code.numpy().astype(np.int64)
                x = (m.level(z) + 0.5).numpy()
                edge[key] = np.abs(x - np.round(x))
    finally:
        for _, m in layers:
            m.record_codes = False
            m.last_code = m.last_input = None
            m.records = []
    return AnnTrace(codes, edge, logits.numpy())


@dataclass
class LayerReport:
    name: str
    neurons: int
    ann_vs_float: int = 0  # mismatching codes
    ann_vs_float_unexplained: int = 0  # of those, at a first-differing layer and not at an edge
    qann_vs_fixed: int = 0
    float_vs_fixed: int = 0
    lava_fixed_vs_reference: int = 0  # Lava fixed_pt vs integer reference (must be 0)
    lava_float_vs_ann: int = 0
    lava_float_unexplained: int = 0  # must be 0, as for the float reference


COUNTS = tuple(f.name for f in fields(LayerReport) if f.name not in ("name", "neurons"))
"""The mismatch counts of a LayerReport: they add up over batches and over layers."""


@dataclass
class VerifyReport:
    samples: int
    layers: list[LayerReport] = field(default_factory=list)
    lava_samples: int = 0
    stepwise_samples: int = 0  # samples whose QANN column also checked the step-wise dynamics
    ann_compared: bool = True  # False where T < b: the SNN is then not the ANN, only the QANN
    accuracy: dict[str, float] = field(default_factory=dict)
    agreement: dict[str, float] = field(default_factory=dict)
    logit_mismatches: int = 0  # integer QANN logits vs fixed-point SNN logits (must be 0)

    @property
    def ok(self) -> bool:
        return self.logit_mismatches == 0 and all(
            r.qann_vs_fixed == 0 and r.ann_vs_float_unexplained == 0 and
            r.lava_fixed_vs_reference == 0 and r.lava_float_unexplained == 0
            for r in self.layers)

    def merge(self, other: VerifyReport) -> None:
        if not self.layers:
            self.layers = [LayerReport(r.name, r.neurons) for r in other.layers]
        for mine, theirs in zip(self.layers, other.layers, strict=True):
            for key in COUNTS:
                setattr(mine, key, getattr(mine, key) + getattr(theirs, key))
        self.logit_mismatches += other.logit_mismatches
        self.ann_compared = self.ann_compared and other.ann_compared
        self.lava_samples += other.lava_samples
        self.stepwise_samples += other.stepwise_samples
        if not other.samples:
            return
        total = self.samples + other.samples
        for d_self, d_other in ((self.accuracy, other.accuracy),
                                (self.agreement, other.agreement)):
            for key, value in d_other.items():
                d_self[key] = (d_self.get(key, 0.0) * self.samples + value * other.samples) / total
        self.samples = total


def _float_vs_ann(net: Network, codes: list[np.ndarray], ann: AnnTrace
                  ) -> dict[int, tuple[int, int]]:
    """Per hidden layer: (mismatching codes, of which unexplained). A mismatch is explained
    when it sits at a bin edge in the first layer where its sample differs (later layers
    inherit the difference). Not compared (all zero) where the file runs fewer steps than
    bits: its SNN then emits each code's top bits, which no layer of the ANN does."""
    hidden = [(i, layer) for i, layer in enumerate(net.layers) if layer.kind == "neuron"]
    if not runs_all_bits(net):
        return {i: (0, 0) for i, _ in hidden}
    n = len(codes[0])
    never = len(net.layers)
    first = np.full(n, never)
    diffs = {}
    for i, layer in hidden:
        d = (codes[i] != ann.codes[layer.name]).reshape(n, -1)
        diffs[i] = d
        first[d.any(axis=1) & (first == never)] = i
    out = {}
    for i, layer in hidden:
        off_edge = ann.edge[layer.name].reshape(n, -1) >= EDGE_TOL
        at_first = diffs[i] & (first == i)[:, None]
        out[i] = (int(diffs[i].sum()), int((at_first & off_edge).sum()))
    return out


def runs_all_bits(net: Network) -> bool:
    """Whether every layer fires all its bits at the file's T (T ≥ b)."""
    timing = build_schedule(net).layers
    return all(t.send_steps == layer.bits for t, layer in zip(timing, net.layers, strict=True)
               if layer.kind == "neuron")


def verify_lava(model: nn.Module, net: Network, pixels: np.ndarray, batch_size: int = 8
                ) -> VerifyReport:
    """Lava fixed_pt against the integer reference, Lava floating_pt against the ANN."""
    from lava_bitsnn.lava.runner import LavaRunner

    ann = ann_trace(model, pixels, net.normalisation["mean"], net.normalisation["std"])
    fixed = LavaRunner(net, "fixed", batch_size=batch_size).run_dataset(pixels, record=True)
    floating = LavaRunner(net, "float", batch_size=batch_size).run_dataset(pixels, record=True)
    ref = ReferenceEngine(net, "fixed").run_batch(pixels)
    float_cmp = _float_vs_ann(net, floating.codes, ann)
    report = VerifyReport(0, lava_samples=len(pixels), ann_compared=runs_all_bits(net))
    for i, layer in enumerate(net.layers):
        if layer.kind != "neuron":
            continue
        r = LayerReport(layer.name, layer.size)
        r.lava_fixed_vs_reference = int((fixed.codes[i] != ref.codes[i]).sum())
        r.lava_float_vs_ann, r.lava_float_unexplained = float_cmp[i]
        report.layers.append(r)
    report.logit_mismatches = int((fixed.logits != ref.logits).sum())
    return report


def verify_batch(model: nn.Module, net: Network, pixels: np.ndarray, labels: np.ndarray,
                 stepwise_samples: int = 16) -> VerifyReport:
    """Compare ANN, integer QANN, float SNN and fixed SNN on one batch (the fixed SNN also
    step by step on its first ``stepwise_samples`` images)."""
    ann = ann_trace(model, pixels, net.normalisation["mean"], net.normalisation["std"])
    snn_float = ReferenceEngine(net, "float").run_batch(pixels)
    snn_fixed = ReferenceEngine(net, "fixed").run_batch(pixels)  # fused where it can be
    k = min(stepwise_samples, len(pixels))
    stepwise = ReferenceEngine(net, "fixed", fused=False).run_batch(pixels[:k])
    qann = integer_qann(net, pixels)
    float_cmp = _float_vs_ann(net, snn_float.codes, ann)
    report = VerifyReport(len(labels), stepwise_samples=k, ann_compared=runs_all_bits(net))
    scaled = qann[-1] / net.output.threshold_unit
    report.logit_mismatches = int((scaled != snn_fixed.logits).sum()) + int(
        (scaled[:k] != stepwise.logits).sum())
    for i, layer in enumerate(net.layers):
        if layer.kind != "neuron":
            continue
        r = LayerReport(layer.name, layer.size)
        r.ann_vs_float, r.ann_vs_float_unexplained = float_cmp[i]
        r.qann_vs_fixed = int((qann[i] != snn_fixed.codes[i]).sum()) + int(
            (qann[i][:k] != stepwise.codes[i]).sum())
        r.float_vs_fixed = int((snn_float.codes[i] != snn_fixed.codes[i]).sum())
        report.layers.append(r)
    preds = {"ann": ann.logits.argmax(1), "float_snn": snn_float.predictions,
             "fixed_snn": snn_fixed.predictions, "int_qann": qann[-1].argmax(1)}
    report.accuracy = {k: float((v == labels).mean()) for k, v in preds.items()}
    report.agreement = {
        "ann_vs_float_snn": float((preds["ann"] == preds["float_snn"]).mean()),
        "int_qann_vs_fixed_snn": float((preds["int_qann"] == preds["fixed_snn"]).mean()),
        "float_snn_vs_fixed_snn": float((preds["float_snn"] == preds["fixed_snn"]).mean()),
    }
    return report
