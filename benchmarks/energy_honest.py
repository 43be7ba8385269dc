"""The honest energy table (issue 14): energy per inference of the bit-serial SNN, the QCFS IF
SNN at the T where it matches the bit-serial SNN's accuracy, and the b-bit QANN, int8 QANN and
fp32 ANN of the same layers, under cmos45nm, cmos45nm-mem and loihi; with the break-even
hidden spike rate of the SNN against each ANN.

The IF baseline's T and the ANN's accuracy are read from benchmarks/results/accuracy_vs_t.json
(python benchmarks/accuracy_vs_t.py), not recomputed. Usage:

    python benchmarks/energy_honest.py [--samples N] [--only mnist fashion-mnist]

Writes benchmarks/results/energy_honest.json and energy_honest.png; prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from checkpoints import DATA_ROOT, RESULTS, ROOT, previous_results, trained_models

from lava_bitsnn.ann.data import load_dataset
from lava_bitsnn.core.counts import LayerCounts
from lava_bitsnn.energy import PRESETS, energy_report
from lava_bitsnn.energy.neurobench import input_events, neurobench_metrics
from lava_bitsnn.netx import read_network
from lava_bitsnn.reference import ReferenceEngine

SHIPPED = {"mnist": "mnist-mnist-cnn.net", "fashion-mnist": "fashion-mnist-mnist-cnn.net"}
BITL1 = {"mnist": ["mnist-bitl1-1e-8", "mnist-bitl1-3e-8"],
         "fashion-mnist": ["fashion-mnist-bitl1-1e-8", "fashion-mnist-bitl1-3e-8"]}
PRESET_NAMES = ("cmos45nm", "cmos45nm-mem", "loihi")
ANNS = {"qann_b_pj": "b-bit QANN", "qann_pj": "int8 QANN", "ann_pj": "fp32 ANN"}


def matching_if_steps(accuracy: dict, bit_serial_steps: int) -> int:
    """The smallest T at which the IF SNN is at least as accurate as the bit-serial SNN (at its
    T) on the same images (accuracy_vs_t.json)."""
    target = accuracy["bit_serial_on_if_samples"][f"T={bit_serial_steps}"]
    steps = sorted(int(k[2:]) for k in accuracy["if"])
    return next((t for t in steps if accuracy["if"][f"T={t}"] >= target), steps[-1])


def without_hidden_spikes(net, counts: list[LayerCounts]) -> list[LayerCounts]:
    """The same run with every hidden spike removed: the part of the SNN's energy that does
    not scale with the hidden spike rate (synaptic ops of the input's spikes stay)."""
    out = [counts[0]]
    for layer, c in zip(net.layers[1:], counts[1:], strict=True):
        from_input = net.layers[layer.synapses[0].source].kind == "input"
        out.append(replace(c, spikes_out=0, subtractions=0, mem_writes=c.mem_writes
                           - c.spikes_out, synops=c.synops if from_input else 0,
                           spikes_in=c.spikes_in if from_input else 0))
    return out


def hidden_spike_rate(counts: list[LayerCounts]) -> float:
    spiking = [c for c in counts[1:] if c.fire_steps]
    return sum(c.spikes_out for c in spiking) / sum(c.neurons * c.fire_steps * c.samples
                                                    for c in spiking)


def run(net, images, labels, precision: str, neuron: str, steps: int | None,
        batch_size: int = 200) -> dict:
    """Accuracy, spike rate and the reports of one SNN run under every preset (an IF run holds
    every layer's spike trains: keep ``batch_size`` small for deep networks)."""
    engine = ReferenceEngine(net, precision, neuron, steps)
    t0 = time.perf_counter()
    preds, counts = engine.evaluate(images, batch_size=batch_size)
    neurobench = neurobench_metrics(net, counts, *input_events(engine, images),
                                    precision == "fixed", neuron)
    reports = {p: energy_report(counts, PRESETS[p], {}, net, neurobench, neuron)["totals"]
               for p in PRESET_NAMES}
    idle = {p: energy_report(without_hidden_spikes(net, counts), PRESETS[p], {}, net,
                             neurobench, neuron)["totals"]["snn_pj"] for p in PRESET_NAMES}
    rate = hidden_spike_rate(counts)
    return {"time_steps": engine.time_steps, "accuracy": float((preds == labels).mean()),
            "spike_rate": rate, "seconds": time.perf_counter() - t0, "neurobench": neurobench,
            "totals": reports, "break_even_spike_rate": {
                p: {key: break_even(rate, idle[p], reports[p]["snn_pj"], reports[p][key])
                    for key in ANNS} for p in PRESET_NAMES}}


def break_even(rate: float, idle_pj: float, snn_pj: float, ann_pj: float) -> float | None:
    """The hidden spike rate at which the SNN costs as much as ``ann_pj``, its energy taken
    linear in the rate through (0, idle) and (rate, snn); None where it loses even at 0."""
    if idle_pj >= ann_pj:
        return None
    return rate * (ann_pj - idle_pj) / (snn_pj - idle_pj)


def measure(name: str, net_path: Path, samples: int | None, accuracy: dict) -> dict:
    net = read_network(net_path)
    data = load_dataset(name, DATA_ROOT / name).test
    images, labels = data.images[:samples], data.labels[:samples]
    if_steps = matching_if_steps(accuracy, net.time_steps)
    return {"network": str(net_path.relative_to(ROOT)), "samples": len(labels),
            "ann_accuracy_full_test_set": accuracy["ann"], "if_steps_from": accuracy["command"],
            "bit_serial": run(net, images, labels, "fixed", "bit-serial", None),
            "if": run(net, images, labels, "float", "if", if_steps)}


def bitl1_rates(dataset: str) -> dict:
    """Spike rates per bit-ℓ1 coefficient saved by benchmarks/energy.py (full test sets)."""
    saved = json.loads((RESULTS / "energy.json").read_text()) \
        if (RESULTS / "energy.json").exists() else {}
    return {str(r["bit_l1"]): r["bits_per_activation"] / 4 for r in saved.values()
            if r["dataset"] == dataset}


def plot(results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.2), squeeze=False)
    systems = [("bit_serial", "snn_pj", "bit-serial SNN"), ("if", "snn_pj", "IF SNN")] + \
        [("bit_serial", key, label) for key, label in ANNS.items()]
    for ax, (name, r) in zip(axes[0], results.items(), strict=True):
        x = np.arange(len(PRESET_NAMES))
        for i, (run_key, key, label) in enumerate(systems):
            values = [r[run_key]["totals"][p][key] / 1e6 for p in PRESET_NAMES]
            ax.bar(x + (i - 2) * 0.16, values, width=0.16, label=label)
        ax.set_xticks(x, PRESET_NAMES)
        ax.set_yscale("log")
        ax.set_ylabel("energy per inference (µJ)")
        ax.set_title(f"{name}: bit-serial T = {r['bit_serial']['time_steps']}, IF T = "
                     f"{r['if']['time_steps']} ({r['samples']} test images)", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / "energy_honest.png", dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, help="first N test images (default: all)")
    p.add_argument("--only", nargs="*", default=list(SHIPPED))
    args = p.parse_args()
    out_file, results = previous_results("energy_honest.json")
    accuracy = json.loads((RESULTS / "accuracy_vs_t.json").read_text())
    for model in trained_models([m for name in args.only for m in BITL1[name]]):
        print(f"found {model.name}; this table covers the shipped models only")
    for name in args.only:
        results[name] = {**measure(name, ROOT / "netx_models" / SHIPPED[name], args.samples,
                                   accuracy[name]), "bitl1_spike_rates": bitl1_rates(name)}
        out_file.write_text(json.dumps(results, indent=1))
    plot(results)
    print_table(results)


def print_table(results: dict) -> None:
    """Markdown: one row per system, and the break-even spike rates."""
    print("| model | system | T | accuracy | hidden spike rate | cmos45nm | cmos45nm-mem | loihi |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        bs, if_ = r["bit_serial"], r["if"]
        rows = [("bit-serial SNN", if_ is None, bs, "snn_pj", bs["accuracy"]),
                ("QCFS IF SNN", False, if_, "snn_pj", if_["accuracy"])]
        rows += [(label, True, bs, key, {"qann_b_pj": bs["accuracy"], "qann_pj": None,
                                         "ann_pj": r["ann_accuracy_full_test_set"]}[key])
                 for key, label in ANNS.items()]
        for label, is_ann, run_, key, acc in rows:
            cells = [name, label, "–" if is_ann else str(run_["time_steps"]),
                     "–" if acc is None else f"{100 * acc:.2f}%",
                     "–" if is_ann else f"{run_['spike_rate']:.4f}"]
            cells += [f"{run_['totals'][p][key] / 1e6:.3g} µJ" for p in PRESET_NAMES]
            print("| " + " | ".join(cells) + " |")
    for name, r in results.items():
        for p in PRESET_NAMES:
            even = r["bit_serial"]["break_even_spike_rate"][p]
            print(f"{name}, {p}: break-even hidden spike rate vs " + ", ".join(
                f"{ANNS[k]} {'none' if v is None else f'{v:.4f}'}" for k, v in even.items()))
        print(f"{name}: saved bit-l1 spike rates (energy.json) {r['bitl1_spike_rates']}")


if __name__ == "__main__":
    main()
