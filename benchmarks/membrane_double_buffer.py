"""A known limit of the memory model, measured: ``energy/memory.py`` sizes a layer's SNN
membrane array as one 24-bit value per neuron, but a hidden bit-serial neuron keeps two
(``u_acc`` accumulates the next sample while ``u_fire`` fires this one; the NeuroBench
footprint counts both). The array's size picks its SRAM level (8 KB / 32 KB / 1 MB), so the
``cmos45nm-mem`` SNN energy can be too low. This prices the same counts of a fixed-point run
both ways, per shipped network, until the memory model is fixed.

    python benchmarks/membrane_double_buffer.py [--samples 32]

Writes benchmarks/results/membrane_double_buffer.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from unittest import mock

from checkpoints import DATA_ROOT, ROOT, previous_results

import lava_bitsnn.energy.memory as memory
from lava_bitsnn.ann.data import load_dataset
from lava_bitsnn.energy import PRESETS, energy_report
from lava_bitsnn.netx import read_network
from lava_bitsnn.reference import ReferenceEngine

NETWORKS = {"digits-mnist-cnn.net": "digits", "mnist-mnist-cnn.net": "mnist",
            "fashion-mnist-resnet20.net": "fashion-mnist"}
_ONE_MEMBRANE = memory.snn_streams


def _two_membranes(c, a, mem):
    """The SNN's streams with a hidden layer's membrane array twice as large."""
    streams = _ONE_MEMBRANE(c, a, mem)
    m = streams["membrane"]
    streams["membrane"] = memory.Stream(m.accesses, m.bits, m.array_bytes * (2 if a.bits else 1))
    return streams


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=32)
    args = p.parse_args()
    path, results = previous_results("membrane_double_buffer.json")
    preset = PRESETS["cmos45nm-mem"]
    for name, dataset in NETWORKS.items():
        net = read_network(ROOT / "netx_models" / name)
        data = load_dataset(dataset, None if dataset == "digits" else Path(DATA_ROOT) / dataset,
                            image_size=int(net.input_shape[-1]))
        _, counts = ReferenceEngine(net, "fixed").evaluate(data.test.images[:args.samples],
                                                           batch_size=16)
        one = energy_report(counts, preset, {}, net, {})
        with mock.patch.object(memory, "snn_streams", _two_membranes):
            two = energy_report(counts, preset, {}, net, {})
        changed = {a["name"]: [a["snn_pj"], b["snn_pj"]]
                   for a, b in zip(one["layers"], two["layers"], strict=True)
                   if a["snn_pj"] != b["snn_pj"]}
        ratio = two["totals"]["snn_pj"] / one["totals"]["snn_pj"]
        results[name] = {
            "command": f"python benchmarks/membrane_double_buffer.py --samples {args.samples}",
            "samples": args.samples, "snn_pj_one_membrane": one["totals"]["snn_pj"],
            "snn_pj_two_membranes": two["totals"]["snn_pj"], "ratio": ratio,
            "b_bit_qann_pj": one["totals"]["qann_b_pj"], "layers_changed_pj": changed}
        print(f"{name:<28} SNN cmos45nm-mem {one['totals']['snn_pj'] / 1e6:8.2f} µJ with one "
              f"membrane, {two['totals']['snn_pj'] / 1e6:8.2f} µJ with two ({ratio:.3f}x; "
              f"{len(changed)} layers change); b-bit QANN "
              f"{one['totals']['qann_b_pj'] / 1e6:.2f} µJ")
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
