"""Energy: exact op counts on hand-computed nets (reference and Lava), energy = counts ×
constants, presets, the report schema and bitsnn-energy's bad input."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from lava_bitsnn.core.counts import NEURON_OPS
from lava_bitsnn.core.ir import Layer, Network, Synapse
from lava_bitsnn.energy import PRESETS, energy_report, load_preset, validate_report
from lava_bitsnn.energy.memory import layer_arrays, word_pj
from lava_bitsnn.energy.neurobench import (
    evaluate_with_events,
    footprint,
    input_events,
    neurobench_metrics,
)
from lava_bitsnn.energy.presets import ANN_OPS, MEMORY_45NM, MEMORY_KEYS, QANN_B_OPS, SNN_OPS
from lava_bitsnn.energy.report import format_table, to_csv
from lava_bitsnn.errors import BitsnnError
from lava_bitsnn.netx import write_network
from lava_bitsnn.reference import ReferenceEngine
from tests.cli_helpers import cli, one_line_error


def _synapse(source: int, kind: str, weight: np.ndarray, **geometry) -> Synapse:
    w = np.asarray(weight, dtype=np.int64)
    return Synapse(source, kind, w.astype(np.float64), weight_int=w, **geometry)


def _layer(name: str, kind: str, shape, bits: int, synapse: Synapse, unit: int) -> Layer:
    bias = np.zeros(shape[0], dtype=np.int64)
    return Layer(name, kind, tuple(shape), bits, step=1.0, synapses=[synapse],
                 bias=bias.astype(np.float64), threshold_unit=unit, bias_int=bias)


def _net(layers: list[Layer], bits: int) -> Network:
    return Network(layers, bits, bits, "bit-serial", ["a", "b", "c"],
                   {"mean": [0.0], "std": [1.0]})


def strided_conv_net() -> Network:
    """1×4×4 input → conv 3×3, stride 2, padding 1, 2 channels (b = 2, D = 64) → dense 3."""
    conv = _synapse(0, "conv", np.ones((2, 1, 3, 3)), stride=2, padding=1)
    dense = _synapse(1, "dense", np.ones((3, 8)), flatten=True)
    return _net([Layer("in", "input", (1, 4, 4), 8),
                 _layer("conv", "neuron", (2, 2, 2), 2, conv, 64),
                 _layer("out", "output", (3,), 0, dense, 1)], bits=2)


def pooled_depthwise_net() -> Network:
    """2×4×4 input → sum-pool 2 folded into a depthwise 1×1 conv (b = 3, D = 2) → dense 3."""
    conv = _synapse(0, "conv", np.ones((2, 1, 1, 1)), groups=2, pool=2)
    dense = _synapse(1, "dense", np.ones((3, 8)), flatten=True)
    return _net([Layer("in", "input", (2, 4, 4), 8),
                 _layer("dw", "neuron", (2, 2, 2), 3, conv, 2),
                 _layer("out", "output", (3,), 0, dense, 1)], bits=3)


def _image(shape, pixels: dict) -> np.ndarray:
    x = np.zeros((1, *shape), dtype=np.uint8)
    for where, value in pixels.items():
        x[(0, *where)] = value
    return x


# Hand computation, strided conv: pixel (0,0) = 255 sends 8 spikes and reaches output (0,0)
# only; pixel (1,1) = 1 sends 1 spike and reaches all 4 outputs; 2 channels. Output (0,0)
# gets u = 255 + 1 = 256 = 4·D → code min(4, 3) = 3: 2 spikes per channel, 0 elsewhere.
# 8 neurons, A = 8 accumulate steps (7 shift), T = 2 fire steps. The output layer: 3
# neurons, A = 2 steps (1 shifts), every source neuron reaches all 3. Connections: the four
# outputs see 4, 6, 6 and 9 input pixels.
STRIDED = {
    "conv": dict(spikes_in=9, synops=8 * 2 + 1 * 8, spikes_out=4, neuron_updates=8 * 10,
                 shifts=8 * 7, bias_adds=8 * 8, comparisons=8 * 2, subtractions=4,
                 mem_reads=8 * 10, mem_writes=8 * 8 + 4, connections=2 * (4 + 6 + 6 + 9)),
    "out": dict(spikes_in=4, synops=4 * 3, spikes_out=0, neuron_updates=3 * 2, shifts=3 * 1,
                bias_adds=3 * 2, comparisons=0, subtractions=0, mem_reads=3 * 2,
                mem_writes=3 * 2, connections=24),
}
# Pooled depthwise: pixel (c0, 0,0) = 3 (2 spikes), pixel (c1, 3,3) = 129 (2 spikes); each
# pooled position reaches one output of its own channel. u = 3 → code ⌊3/2⌋ = 1 (1 spike),
# u = 129 → code min(64, 7) = 7 (3 spikes). 8 neurons, A = 8, T = 3 (2 of the output's 3
# accumulate steps shift).
POOLED = {
    "dw": dict(spikes_in=4, synops=4, spikes_out=4, neuron_updates=8 * 11, shifts=8 * 7,
               bias_adds=8 * 8, comparisons=8 * 3, subtractions=4, mem_reads=8 * 11,
               mem_writes=8 * 8 + 4, connections=32),
    "out": dict(spikes_in=4, synops=12, spikes_out=0, neuron_updates=9, shifts=6,
                bias_adds=9, comparisons=0, subtractions=0, mem_reads=9, mem_writes=9,
                connections=24),
}
CASES = [
    (strided_conv_net, (1, 4, 4), {(0, 0, 0): 255, (0, 1, 1): 1}, STRIDED),
    (pooled_depthwise_net, (2, 4, 4), {(0, 0, 0): 3, (1, 3, 3): 129}, POOLED),
]


def _check(counts, expected: dict) -> None:
    for c in counts[1:]:
        got = {key: getattr(c, key) for key in expected[c.name]}
        assert got == expected[c.name], c.name


@pytest.mark.parametrize("make,shape,pixels,expected", CASES)
def test_hand_computed_counts_reference(make, shape, pixels, expected):
    x = _image(shape, pixels)
    for fused in (True, False):
        result = ReferenceEngine(make(), "fixed", fused=fused).run_batch(x)
        _check(result.counts, expected)


@pytest.mark.parametrize("make,shape,pixels,expected", CASES)
def test_hand_computed_counts_lava(make, shape, pixels, expected):
    from lava_bitsnn.lava.runner import LavaRunner

    result = LavaRunner(make(), "fixed").run_dataset(_image(shape, pixels))
    _check(result.counts, expected)


def _report(net: Network, images: np.ndarray, preset: str) -> tuple[list, dict]:
    """Counts and the energy report of a fixed-point reference run."""
    engine = ReferenceEngine(net, "fixed")
    counts = engine.evaluate(images)[1]
    events, graded = input_events(engine, images)
    return counts, energy_report(counts, PRESETS[preset], {}, net,
                                 neurobench_metrics(net, counts, events, graded, True),
                                 "bit-serial")


# Hand computation under cmos45nm-mem (64-bit words; 8 KB level: 10 pJ per word; every array
# of these nets is ≤ 8 KB). A w-bit access costs w/64 · 10 pJ: 1.25 pJ at 8 bits, 3.75 at
# 24 (membranes), 5 at 32 (spike events, fp32 values, logits).
# Strided conv: SNN weights 24 synops × 1.25 = 30; membrane (80 + 68) × 3.75 = 555; spikes
# 9 in + 4 out × 5 = 65 → 650. ANN: 50 MACs read a weight and an input (5 + 5) = 500, 8
# outputs × 5 = 40 → 540. int8 QANN: 50 × (1.25 + 1.25) + 8 × 1.25 = 135. b-bit QANN: inputs
# are 8-bit pixels: 125, outputs 2-bit: 8 × 2/64 · 10 = 2.5 → 127.5. Output layer: SNN
# 12 × 1.25 + 12 × 3.75 + 4 × 5 = 80; ANN 24 × 10 + 3 logits × 5 = 255; QANN 24 × 2.5 + 15 =
# 75; b-bit QANN 24 × 1.25 + 24 × (2/64 · 10) + 15 = 52.5.
# Compute (cmos45nm): b-bit MAC = 0.2 · b / 8 + 0.1: 0.3 at b = 8, 0.15 at b = 2, 0.175 at 3.
STRIDED_MEM = {
    "conv": {"memory": {"snn": 650.0, "ann": 540.0, "qann": 135.0, "qann_b": 127.5},
             "snn_pj": 650 + 24 * 0.1 + 56 * 0.13 + 64 * 0.1 + 16 * 0.1 + 4 * 0.1,
             "ann_pj": 540 + 50 * 4.6, "qann_pj": 135 + 50 * 0.3, "qann_b_pj": 127.5 + 50 * 0.3},
    "out": {"memory": {"snn": 80.0, "ann": 255.0, "qann": 75.0, "qann_b": 52.5},
            "snn_pj": 80 + 12 * 0.1 + 3 * 0.13 + 6 * 0.1, "ann_pj": 255 + 24 * 4.6,
            "qann_pj": 75 + 24 * 0.3, "qann_b_pj": 52.5 + 24 * 0.15},
}
# Pooled depthwise: SNN 4 × 1.25 + (88 + 68) × 3.75 + (4 + 4) × 5 = 630; ANN 32 × 10 + 8 × 5 =
# 360; QANN 32 × 2.5 + 8 × 1.25 = 90; b-bit QANN 32 × 2.5 + 8 × 3/64 · 10 = 83.75. Output:
# SNN 12 × 1.25 + 18 × 3.75 + 4 × 5 = 102.5; ANN 24 × 10 + 15 = 255; QANN 75; b-bit QANN
# 24 × 1.25 + 24 × 3/64 · 10 + 15 = 56.25.
POOLED_MEM = {
    "dw": {"memory": {"snn": 630.0, "ann": 360.0, "qann": 90.0, "qann_b": 83.75},
           "snn_pj": 630 + 4 * 0.1 + 56 * 0.13 + 64 * 0.1 + 24 * 0.1 + 4 * 0.1,
           "ann_pj": 360 + 32 * 4.6, "qann_pj": 90 + 32 * 0.3, "qann_b_pj": 83.75 + 32 * 0.3},
    "out": {"memory": {"snn": 102.5, "ann": 255.0, "qann": 75.0, "qann_b": 56.25},
            "snn_pj": 102.5 + 12 * 0.1 + 6 * 0.13 + 9 * 0.1, "ann_pj": 255 + 24 * 4.6,
            "qann_pj": 75 + 24 * 0.3, "qann_b_pj": 56.25 + 24 * 0.175},
}


@pytest.mark.parametrize("case,expected", [(CASES[0], STRIDED_MEM), (CASES[1], POOLED_MEM)])
def test_hand_computed_memory_and_b_bit_qann(case, expected):
    make, shape, pixels, _ = case
    _, report = _report(make(), _image(shape, pixels), "cmos45nm-mem")
    validate_report(report)
    for row in report["layers"]:
        want = expected[row["name"]]
        assert row["memory_pj"] == pytest.approx(want["memory"], abs=1e-9), row["name"]
        for key in ("snn_pj", "ann_pj", "qann_pj", "qann_b_pj"):
            assert row[key] == pytest.approx(want[key], abs=1e-9), (row["name"], key)
    _, compute_only = _report(make(), _image(shape, pixels), "cmos45nm")
    for row in compute_only["layers"]:  # the same figures without the memory
        want = expected[row["name"]]
        assert row["memory"] == {} and not any(row["memory_pj"].values())
        assert row["qann_b_pj"] == pytest.approx(want["qann_b_pj"] - want["memory"]["qann_b"])


def test_memory_access_counts_strided():
    """The streams behind STRIDED_MEM: accesses, widths and array sizes (SNN and ANN sides)."""
    make, shape, pixels, _ = CASES[0]
    _, report = _report(make(), _image(shape, pixels), "cmos45nm-mem")
    conv, out = report["layers"]
    got = {m: {k: (v["accesses"], v["bits"], v["bytes"]) for k, v in streams.items()}
           for m, streams in conv["memory"].items()}
    assert got["snn"] == {"weights": (24, 8, 18), "membrane": (148, 24, 48),
                          "spikes_in": (9, 32, 64), "spikes_out": (4, 32, 32),
                          "pixels": (0, 8, 16)}
    assert got["ann"] == {"weights": (50, 32, 72), "inputs": (50, 32, 64),
                          "outputs": (8, 32, 32)}
    assert got["qann_b"] == {"weights": (50, 8, 18), "inputs": (50, 8, 16),
                             "outputs": (8, 2, 2)}
    assert out["memory"]["qann_b"]["inputs"]["bits"] == 2 and out["qann_b_bits"] == 2
    assert out["memory"]["ann"]["outputs"]["bits"] == 32  # logits
    # the membrane array: 8 hidden neurons × 2 (u_acc, u_fire) × 3 B for bit-serial, × 1 for IF
    assert [a.membranes for a in layer_arrays(make(), "bit-serial")] == [16, 3]
    assert [a.membranes for a in layer_arrays(make(), "if")] == [8, 3]


def test_memory_levels_by_size():
    mem = {**MEMORY_45NM, "l1_bytes": 16, "l2_bytes": 32, "l3_bytes": 64}
    assert [word_pj(mem, n) for n in (16, 17, 32, 33, 64, 65)] == [10, 20, 20, 100, 100, 1300]


def test_neurobench_metrics_by_hand():
    """Strided conv with integer output weights of which row 0 is zero (the float weights,
    which decide the fan-outs of synops, stay 1): footprint 42 weights × 1 B + 5 biases × 4 B
    + (8 hidden bit-serial neurons × 2 membranes + 3 output accumulators) × 4 B
    = 42 + 20 + 19 × 4 = 138 B; 8 zero weights of 42; 4 spikes in 8 neurons × 2 steps;
    Dense 50 × 8 + 24 × 2 steps = 448; Effective_ACs: 8 + 1 input spikes reach 2 and 8
    neurons (24), 4 hidden spikes reach 2 non-zero weights each (8)."""
    net = strided_conv_net()
    w = np.ones((3, 8), dtype=np.int64)
    w[0] = 0
    net.layers[2].synapses[0].weight_int = w
    _, report = _report(net, _image((1, 4, 4), {(0, 0, 0): 255, (0, 1, 1): 1}), "cmos45nm")
    assert report["neurobench"] == {
        "footprint": 138, "connection_sparsity": pytest.approx(8 / 42),
        "activation_sparsity": pytest.approx(0.75),
        "synaptic_operations": {"Dense": 448.0, "Effective_MACs": 0.0, "Effective_ACs": 32.0}}
    assert report["layers"][1]["counts"]["synops"] == 12  # synops: the float fan-out
    assert "NeuroBench: footprint 138 B" in format_table(report)
    assert footprint(net, "if") == 42 + 20 + 11 * 4  # IF: one membrane per neuron


def mixed_bits_net() -> Network:
    """1×2×2 input → dense A, 2 neurons, b = 1, D = 128 → dense B, 3 neurons, b = 3, D = 1 →
    output, 3 neurons, with synapses from B (b = 3) and, residual, from A (b = 1); all
    weights 1. The file's T = 3 > A's b."""
    a = _synapse(0, "dense", np.ones((2, 4)), flatten=True)
    b = _synapse(1, "dense", np.ones((3, 2)))
    out = _layer("out", "output", (3,), 0, _synapse(2, "dense", np.ones((3, 3))), 1)
    out.synapses.append(_synapse(1, "dense", np.ones((3, 2))))
    return _net([Layer("in", "input", (1, 2, 2), 8), _layer("A", "neuron", (2,), 1, a, 128),
                 _layer("B", "neuron", (3,), 3, b, 1), out], bits=3)


def test_neurobench_mixed_bits_and_residual_by_hand():
    """Pixel (0,0,0) = 255, the rest 0: 8 input spikes. A: u = 255 → code min(⌊255/128⌋, 1)
    = 1, one spike per neuron in its T_A = min(3, 1) = 1 fire step. B: u = 1 + 1 = 2 → code
    0b010, one spike per neuron in T_B = 3 steps.
    Events: input [8, 0, 0, 0], A [1, 1], B [1, 1, 1].
    Effective_ACs: 8 × 2 (pixel → A) + 2 × (3 + 3) (A → B and A → out) + 3 × 3 (B → out) = 37.
    Dense, each synapse at the steps its source fires: A 8 connections × 8 pixel bits = 64;
    B 6 × 1 (A fires 1 step) = 6; out 9 × 3 (B) + 6 × 1 (A) = 33; 64 + 6 + 33 = 103.
    Activation sparsity: slots 2 × 1 + 3 × 3 = 11, 5 spikes: 6 / 11.
    Footprint: 8 + 6 + 9 + 6 = 29 weights × 1 B + (2 + 3 + 3) biases × 4 B + ((2 + 3) × 2
    + 3) membranes × 4 B = 29 + 32 + 52 = 113.
    b-bit QANN at the output: 9 MACs on B's 3 bits, 6 on A's 1 bit: (27 + 6) / 15 = 2.2 bits;
    its input arrays 3 × 3 / 8 + 2 × 1 / 8 = 11 / 8 B; B reads A at 1 bit, A pixels at 8."""
    net = mixed_bits_net()
    images = _image((1, 2, 2), {(0, 0, 0): 255})
    engine = ReferenceEngine(net, "fixed")
    assert [t.send_steps for t in engine.schedule.layers] == [8, 1, 3, 0]
    events, graded = input_events(engine, images)
    assert not graded
    want = [[[[8, 0], [0, 0]]], [1, 1], [1, 1, 1], [0, 0, 0]]
    for got, expected in zip(events, want, strict=True):
        np.testing.assert_array_equal(got, expected)
    preds, counts, same_run = evaluate_with_events(engine, images, 1)
    for got, expected in zip(same_run, want, strict=True):
        np.testing.assert_array_equal(got, expected)
    _, report = _report(net, images, "cmos45nm-mem")
    assert report["neurobench"] == {
        "footprint": 113, "connection_sparsity": 0.0,
        "activation_sparsity": pytest.approx(6 / 11),
        "synaptic_operations": {"Dense": 103.0, "Effective_MACs": 0.0, "Effective_ACs": 37.0}}
    rows = {row["name"]: row for row in report["layers"]}
    assert [rows[n]["qann_b_bits"] for n in ("A", "B")] == [8, 1]
    assert rows["out"]["qann_b_bits"] == pytest.approx(2.2)
    inputs = rows["out"]["memory"]["qann_b"]["inputs"]
    assert (inputs["accesses"], inputs["bits"], inputs["bytes"]) == \
        (15, pytest.approx(2.2), pytest.approx(11 / 8))
    # compute: 15 MACs × (0.2 · 2.2 / 8 + 0.1) pJ + the neurons (cmos45nm-mem: as cmos45nm)
    compute = rows["out"]["qann_b_pj"] - rows["out"]["memory_pj"]["qann_b"]
    assert compute == pytest.approx(15 * (0.2 * 2.2 / 8 + 0.1)
                                    + 3 * PRESETS["cmos45nm"].qann_b["neurons"])


def test_energy_is_counts_times_constants(digits_net, digits_data):
    images = digits_data.test.images[:50]
    for name in ("cmos45nm", "cmos45nm-mem", "loihi", "keras-spinnaker2"):
        preset = PRESETS[name]
        counts, report = _report(digits_net, images, name)
        validate_report(report)
        for c, row in zip(counts[1:], report["layers"], strict=True):
            snn = sum(getattr(c, op) * preset.snn[op] for op in SNN_OPS) / c.samples
            memory = {m: sum(s["accesses"] * s["bits"] / 64 * word_pj(MEMORY_45NM, s["bytes"])
                             for s in streams.values()) for m, streams in row["memory"].items()}
            assert (name == "cmos45nm-mem") == bool(memory)
            assert row["snn_pj"] == pytest.approx(snn + memory.get("snn", 0), rel=1e-12)
            assert row["ann_pj"] == pytest.approx(
                c.connections * preset.ann["macs"] + c.neurons * preset.ann["neurons"]
                + memory.get("ann", 0))
            if memory:  # weights read once per synaptic op / MAC, membranes as counted
                assert row["memory"]["snn"]["weights"]["accesses"] == c.synops / c.samples
                assert row["memory"]["snn"]["membrane"]["accesses"] == \
                    (c.mem_reads + c.mem_writes) / c.samples
                assert row["memory"]["qann"]["weights"]["accesses"] == c.connections
        total = sum(row["snn_pj"] for row in report["layers"])
        assert report["totals"]["snn_pj"] == pytest.approx(total)
        assert sum(row["share"] for row in report["layers"]) == pytest.approx(1.0)
        rows = list(csv.DictReader(io.StringIO(to_csv(report))))
        assert float(rows[0]["snn_pj"]) == pytest.approx(report["layers"][0]["snn_pj"])
        assert rows[-1]["layer"] == "total"


def test_presets_are_complete_and_sourced():
    for preset in PRESETS.values():
        assert set(preset.snn) == set(SNN_OPS) and set(preset.ann) == set(ANN_OPS)
        assert set(preset.qann_b) == set(QANN_B_OPS)
        assert preset.memory is None or set(preset.memory) == set(MEMORY_KEYS)
        assert all(v >= 0 for v in (*preset.snn.values(), *preset.ann.values()))
        assert preset.sources and preset.description
    assert PRESETS["loihi"].snn["synops"] == 23.6 and PRESETS["keras-loihi"].snn["synops"] \
        == 27.1
    assert PRESETS["cmos45nm"].ann["macs"] == 4.6
    assert PRESETS["cmos45nm"].qann_b_mac(4) == pytest.approx(0.2)  # 0.2 · 4/8 + 0.1
    assert PRESETS["cmos45nm"].qann_b_mac(8) == pytest.approx(PRESETS["cmos45nm"].qann["macs"])
    mem = PRESETS["cmos45nm-mem"]
    assert (mem.snn, mem.ann, mem.qann) == (PRESETS["cmos45nm"].snn, PRESETS["cmos45nm"].ann,
                                            PRESETS["cmos45nm"].qann)
    assert [mem.memory[k] for k in ("l1_pj", "l2_pj", "l3_pj", "dram_pj")] == [10, 20, 100, 1300]


def _preset_file(tmp_path, suffix: str, text: str):
    path = tmp_path / f"p{suffix}"
    path.write_text(text)
    return str(path)


def test_user_presets(tmp_path):
    full = {"name": "mine", "snn": {op: 1.0 for op in SNN_OPS},
            "ann": {op: 2.0 for op in ANN_OPS}, "qann": {op: 0.5 for op in ANN_OPS},
            "qann_b": {op: 0.25 for op in QANN_B_OPS}, "memory": dict(MEMORY_45NM)}
    assert load_preset(_preset_file(tmp_path, ".json", json.dumps(full))).snn["shifts"] == 1.0
    toml = 'name = "t"\n' + "".join(
        f"[{key}]\n" + "".join(f"{op} = 1\n" for op in table) for key, table in
        (("snn", SNN_OPS), ("ann", ANN_OPS), ("qann", ANN_OPS), ("qann_b", QANN_B_OPS)))
    compute_only = load_preset(_preset_file(tmp_path, ".toml", toml))
    assert compute_only.qann["macs"] == 1.0 and compute_only.memory is None
    assert load_preset(_preset_file(tmp_path, ".json", json.dumps(full))).memory == MEMORY_45NM
    for name in ("cmos45nm", "cmos45nm-mem"):  # a preset's own JSON loads back as itself
        own = _preset_file(tmp_path, ".json", json.dumps(PRESETS[name].as_dict()))
        assert load_preset(own) == PRESETS[name]
    for broken, message in (({"l2_pj": None}, "memory.l2_pj' is missing"),
                            ({"dram_pj": -1}, "'memory.dram_pj' must be a number ≥ 0"),
                            ({"word_bits": 0}, "word_bits' must be > 0"),
                            ({"l1_bytes": 1e9}, "memory levels must grow")):
        bad = json.loads(json.dumps(full))
        bad["memory"].update(broken)
        bad["memory"] = {k: v for k, v in bad["memory"].items() if v is not None}
        with pytest.raises(BitsnnError, match=message):
            load_preset(_preset_file(tmp_path, ".json", json.dumps(bad)))
    missing = json.loads(json.dumps(full))
    del missing["snn"]["synops"]
    with pytest.raises(BitsnnError, match="snn.synops' is missing"):
        load_preset(_preset_file(tmp_path, ".json", json.dumps(missing)))
    negative = json.loads(json.dumps(full))
    negative["ann"]["macs"] = -1
    with pytest.raises(BitsnnError, match="≥ 0"):
        load_preset(_preset_file(tmp_path, ".json", json.dumps(negative)))
    with pytest.raises(BitsnnError, match="unknown preset"):
        load_preset("tpu")
    with pytest.raises(BitsnnError, match="not valid TOML"):
        load_preset(_preset_file(tmp_path, ".toml", "name = "))


def test_report_validation_rejects_a_broken_report(digits_net, digits_data):
    report = _report(digits_net, digits_data.test.images[:5], "cmos45nm-mem")[1]
    validate_report(report)
    for path, message in ((("layers", 1, "energy_pj", "shifts"), "energy_pj lacks shifts"),
                          (("layers", 0, "memory_pj", "qann_b"), "memory_pj lacks qann_b"),
                          (("neurobench", "synaptic_operations", "Dense"), "lacks Dense"),
                          (("totals", "qann_b_pj"), "totals lacks qann_b_pj")):
        broken = json.loads(json.dumps(report))
        where = broken
        for key in path[:-1]:
            where = where[key]
        del where[path[-1]]
        with pytest.raises(BitsnnError, match=message):
            validate_report(broken)


def test_bitsnn_energy_end_to_end(digits_net, tmp_path):
    net = tmp_path / "d.net"
    write_network(digits_net, net)
    files = [tmp_path / "e.json", tmp_path / "e.csv", tmp_path / "e.png"]
    proc = cli("energy", str(net), "--dataset", "digits", "--samples", "6", "--engine", "lava",
               "--batch-size", "3", "--preset", "loihi", "--quiet", "--json", str(files[0]),
               "--csv", str(files[1]), "--plot", str(files[2]))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(files[0].read_text())
    validate_report(report)
    assert report["samples"] == 6 and report["engine"] == "lava"
    assert report["preset"]["name"] == "loihi"
    assert files[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "spike_rate=" in proc.stdout and "SNN / fp32 ANN" in proc.stdout
    assert "SNN / b-bit QANN" in proc.stdout and "NeuroBench: footprint" in proc.stdout
    reference = cli("energy", str(net), "--dataset", "digits", "--samples", "6", "--preset",
                    "loihi", "--quiet", "--json", str(tmp_path / "r.json"))
    assert reference.returncode == 0, reference.stderr
    ref = json.loads((tmp_path / "r.json").read_text())
    assert ref["layers"] == report["layers"]  # same counts, same energy
    assert set(NEURON_OPS) <= set(report["layers"][0]["counts"])


def test_bitsnn_energy_bad_input(digits_net, tmp_path):
    net = tmp_path / "d.net"
    write_network(digits_net, net)
    out = tmp_path / "e.json"
    one_line_error(cli("energy", str(net), "--dataset", "digits", "--preset", "tpu",
                       "--json", str(out)), "unknown preset", out)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "snn": {}, "ann": {}, "qann": {}}))
    one_line_error(cli("energy", str(net), "--dataset", "digits", "--preset", str(bad),
                       "--json", str(out)), "is missing", out)
    full = {**{key: dict(getattr(PRESETS["cmos45nm-mem"], key)) for key in
               ("snn", "ann", "qann", "qann_b", "memory")}, "name": "x"}
    del full["memory"]["spike_bits"]
    bad.write_text(json.dumps(full))
    one_line_error(cli("energy", str(net), "--dataset", "digits", "--preset", str(bad),
                       "--json", str(out)), "'memory.spike_bits' is missing", out)
    full["memory"]["spike_bits"] = -32
    bad.write_text(json.dumps(full))
    one_line_error(cli("energy", str(net), "--dataset", "digits", "--preset", str(bad),
                       "--json", str(out)), "'memory.spike_bits' must be a number ≥ 0", out)
    not_ours = tmp_path / "plain.net"
    not_ours.write_bytes(b"not hdf5")
    one_line_error(cli("energy", str(not_ours), "--dataset", "digits", "--json", str(out)),
                   "plain.net", out)


def test_bitsnn_energy_reference_runs_once(digits_net, tmp_path, monkeypatch):
    """--engine reference: the counts and the NeuroBench events come from one run: 6 samples
    in batches of 3 are 2 batches, not 2 for the counts and 2 more for the events."""
    from lava_bitsnn.cli import energy

    net = tmp_path / "d.net"
    write_network(digits_net, net)
    calls = []
    run_batch = ReferenceEngine.run_batch

    def counted(self, pixels, record=False):
        calls.append(len(pixels))
        return run_batch(self, pixels, record)

    monkeypatch.setattr(ReferenceEngine, "run_batch", counted)
    assert energy.main([str(net), "--dataset", "digits", "--samples", "6", "--batch-size",
                        "3", "--quiet"]) == 0
    assert calls == [3, 3]


def test_bitsnn_energy_writes_all_or_nothing(digits_net, tmp_path, monkeypatch):
    """A failing plot leaves neither the JSON nor the CSV; a failing last write leaves none."""
    from lava_bitsnn.cli import energy
    from lava_bitsnn.energy import plot

    net = tmp_path / "d.net"
    write_network(digits_net, net)
    files = [tmp_path / "e.json", tmp_path / "e.csv", tmp_path / "e.png"]
    argv = [str(net), "--dataset", "digits", "--samples", "4", "--quiet", "--json",
            str(files[0]), "--csv", str(files[1]), "--plot", str(files[2])]

    def broken(report):
        raise BitsnnError("plot failed")

    monkeypatch.setattr(plot, "render_png", broken)
    assert energy.main(argv) == 2
    assert not any(f.exists() for f in files)
    assert list(tmp_path.iterdir()) == [net]  # no temporary files either
    with pytest.raises(BitsnnError, match="does not exist"):
        energy.write_all([(str(files[0]), b"{}"), (str(files[1]), b"a"),
                          (str(tmp_path / "missing" / "x.png"), b"png")])
    assert list(tmp_path.iterdir()) == [net]
    monkeypatch.undo()
    assert energy.main(argv) == 0
    assert files[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(files[0].read_text())["samples"] == 4
