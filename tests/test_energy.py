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
from lava_bitsnn.energy.presets import ANN_OPS, SNN_OPS
from lava_bitsnn.energy.report import to_csv
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


def test_energy_is_counts_times_constants(digits_net, digits_data):
    counts = ReferenceEngine(digits_net).evaluate(digits_data.test.images[:50])[1]
    for name in ("cmos45nm", "loihi", "keras-spinnaker2"):
        preset = PRESETS[name]
        report = energy_report(counts, preset, {})
        validate_report(report)
        for c, row in zip(counts[1:], report["layers"], strict=True):
            snn = sum(getattr(c, op) * preset.snn[op] for op in SNN_OPS) / c.samples
            assert row["snn_pj"] == pytest.approx(snn, rel=1e-12)
            assert row["ann_pj"] == pytest.approx(
                c.connections * preset.ann["macs"] + c.neurons * preset.ann["neurons"])
        total = sum(row["snn_pj"] for row in report["layers"])
        assert report["totals"]["snn_pj"] == pytest.approx(total)
        assert sum(row["share"] for row in report["layers"]) == pytest.approx(1.0)
        rows = list(csv.DictReader(io.StringIO(to_csv(report))))
        assert float(rows[0]["snn_pj"]) == pytest.approx(report["layers"][0]["snn_pj"])
        assert rows[-1]["layer"] == "total"


def test_presets_are_complete_and_sourced():
    for preset in PRESETS.values():
        assert set(preset.snn) == set(SNN_OPS) and set(preset.ann) == set(ANN_OPS)
        assert all(v >= 0 for v in (*preset.snn.values(), *preset.ann.values()))
        assert preset.sources and preset.description
    assert PRESETS["loihi"].snn["synops"] == 23.6 and PRESETS["keras-loihi"].snn["synops"] \
        == 27.1
    assert PRESETS["cmos45nm"].ann["macs"] == 4.6


def _preset_file(tmp_path, suffix: str, text: str):
    path = tmp_path / f"p{suffix}"
    path.write_text(text)
    return str(path)


def test_user_presets(tmp_path):
    full = {"name": "mine", "snn": {op: 1.0 for op in SNN_OPS},
            "ann": {op: 2.0 for op in ANN_OPS}, "qann": {op: 0.5 for op in ANN_OPS}}
    assert load_preset(_preset_file(tmp_path, ".json", json.dumps(full))).snn["shifts"] == 1.0
    toml = 'name = "t"\n' + "".join(
        f"[{key}]\n" + "".join(f"{op} = 1\n" for op in table) for key, table in
        (("snn", SNN_OPS), ("ann", ANN_OPS), ("qann", ANN_OPS)))
    assert load_preset(_preset_file(tmp_path, ".toml", toml)).qann["macs"] == 1.0
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
    counts = ReferenceEngine(digits_net).evaluate(digits_data.test.images[:5])[1]
    report = energy_report(counts, PRESETS["cmos45nm"], {})
    del report["layers"][1]["energy_pj"]["shifts"]
    with pytest.raises(BitsnnError, match="energy_pj lacks shifts"):
        validate_report(report)


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
    not_ours = tmp_path / "plain.net"
    not_ours.write_bytes(b"not hdf5")
    one_line_error(cli("energy", str(not_ours), "--dataset", "digits", "--json", str(out)),
                   "plain.net", out)
