"""Energy benchmark (issue 5): spikes and energy per inference of mnist-cnn (b = 4) with and
without the bit-sparsity regulariser, and the SNN / ANN energy ratios under every preset.

Counts come from the fixed-point reference engine on the full test set (its counts are
tested equal to the Lava models'). Needs the checkpoints of benchmarks/train_mnist_cnn.py
(runs/benchmarks/*.pt; missing ones are skipped with a message). Usage:

    python benchmarks/energy.py [--only fashion-mnist mnist ...] [--samples N]

Writes benchmarks/results/energy.json, energy_<model>.png (per layer) and
energy_bitl1.png (accuracy vs spikes), and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from checkpoints import DATA_ROOT, RESULTS, load_benchmark_model, previous_results

from lava_bitsnn.energy import PRESETS, energy_report
from lava_bitsnn.energy.neurobench import input_events, neurobench_metrics
from lava_bitsnn.energy.plot import plot_report
from lava_bitsnn.reference import ReferenceEngine

DEFAULT = ["digits-bitl1-0", "digits-bitl1-1e-06", "digits-bitl1-3e-06", "digits-bitl1-1e-05",
           "fashion-mnist", "fashion-mnist-bitl1-1e-8",
           "fashion-mnist-bitl1-3e-8", "mnist", "mnist-bitl1-1e-8", "mnist-bitl1-3e-8"]


def measure(name: str, data_root: Path, samples: int | None) -> dict | None:
    bench = load_benchmark_model(name, data_root)
    if bench is None:
        return None
    ckpt, net, dataset = bench.checkpoint, bench.net, bench.checkpoint["dataset"]
    x, y = bench.data.test.images[:samples], bench.data.test.labels[:samples]
    t0 = time.perf_counter()
    engine = ReferenceEngine(net)
    preds, counts = engine.evaluate(x, batch_size=256, progress=True)
    seconds = time.perf_counter() - t0
    hidden = [c for c in counts[1:] if c.fire_steps]
    neurobench = neurobench_metrics(net, counts, *input_events(engine, x), True)
    reports = {p: energy_report(counts, PRESETS[p], {"model": name}, net, neurobench,
                                  "bit-serial")
               for p in PRESETS}
    plot_report(reports["cmos45nm"], str(RESULTS / f"energy_{name}.png"))
    return {
        "dataset": dataset, "bit_l1": ckpt["train_args"].get("bit_l1", 0.0),
        "samples": len(y), "accuracy": float((preds == y).mean()),
        "spikes_per_inference": sum(c.spikes_out for c in hidden) / len(y),
        "bits_per_activation": sum(c.spikes_out for c in hidden)
        / sum(c.neurons * c.samples for c in hidden),
        "synops_per_inference": sum(c.synops for c in counts[1:]) / len(y),
        "ann_macs_per_inference": sum(c.connections for c in counts[1:]),
        "engine_seconds": seconds,
        "presets": {p: {k: r["totals"][k] for k in ("snn_pj", "ann_pj", "qann_pj", "qann_b_pj",
                                                     "snn_vs_ann", "snn_vs_qann",
                                                     "snn_vs_qann_b")}
                    for p, r in reports.items()},
        "neurobench": neurobench,
        "layers_cmos45nm": reports["cmos45nm"]["layers"],
    }


def plot_tradeoff(results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for dataset in sorted({r["dataset"] for r in results.values()}):
        rows = sorted((r for r in results.values() if r["dataset"] == dataset),
                      key=lambda r: r["bit_l1"])
        ax.plot([r["spikes_per_inference"] for r in rows], [100 * r["accuracy"] for r in rows],
                "o-", label=dataset)
        for r in rows:
            ax.annotate(f"{r['bit_l1']:g}", (r["spikes_per_inference"], 100 * r["accuracy"]),
                        fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("spikes per inference (hidden layers)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("bit-ℓ1 coefficient (labels): spikes vs accuracy", fontsize=10)
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "energy_bitl1.png", dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default=str(DATA_ROOT))
    p.add_argument("--only", nargs="*", default=DEFAULT)
    p.add_argument("--samples", type=int, help="first N test images (default: all)")
    args = p.parse_args()
    out_file, results = previous_results("energy.json")
    for name in args.only:
        row = measure(name, Path(args.data_root), args.samples)
        if row is not None:
            results[name] = row
            out_file.write_text(json.dumps(results, indent=1))
    plot_tradeoff(results)
    print("| model | bit-ℓ1 | accuracy | spikes/inf | bits/act | SNN 45nm | ANN fp32 | "
          "QANN | SNN/ANN | SNN/QANN | SNN Loihi |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        cm, lo = r["presets"]["cmos45nm"], r["presets"]["loihi"]
        print(f"| {name} | {r['bit_l1']:g} | {100 * r['accuracy']:.2f}% | "
              f"{r['spikes_per_inference']:,.0f} | {r['bits_per_activation']:.3f} | "
              f"{cm['snn_pj'] / 1e3:,.1f} nJ | {cm['ann_pj'] / 1e3:,.0f} nJ | "
              f"{cm['qann_pj'] / 1e3:,.1f} nJ | {cm['snn_vs_ann']:.4f} | "
              f"{cm['snn_vs_qann']:.3f} | {lo['snn_pj'] / 1e6:,.2f} µJ |")


if __name__ == "__main__":
    main()
