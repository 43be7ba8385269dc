"""QCFS b × T grid (the shape of the QCFS talk's tables) on sklearn digits: mnist-cnn trained
with b = 1..6 activation bits (L = 2^b − 1 levels); for each, the ANN, the bit-serial SNN at
T = b (exact) and the QCFS IF baseline at T = 1, 2, 4, ..., 64. Digits keeps six trainings to
minutes on 2 cores. Usage:

    python benchmarks/qcfs_grid.py [--bits 1 2 3 4 5 6]

Writes benchmarks/results/qcfs_grid.json and qcfs_grid.png; prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import time

from accuracy_vs_t import IF_STEPS, accuracies, bit_serial_predictions, if_accuracy
from checkpoints import MODELS, RESULTS

from lava_bitsnn.ann.data import load_dataset
from lava_bitsnn.ann.train import TrainConfig, train
from lava_bitsnn.convert.model import convert_checkpoint


def plot(rows: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for b, r in rows.items():
        line, = ax.plot(list(IF_STEPS), [100 * r["if"][f"T={t}"] for t in IF_STEPS], "o-",
                        label=f"IF, b={b} (L={2 ** int(b) - 1})")
        ax.plot([int(b)], [100 * r["bit_serial"]], "*", ms=12, color=line.get_color())
    ax.set_xscale("log", base=2)
    ax.set_xlabel("time steps T (★: bit-serial at T = b)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100.5)
    ax.set_title("digits, mnist-cnn: QCFS levels × time steps")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bits", nargs="*", type=int, default=[1, 2, 3, 4, 5, 6])
    args = p.parse_args()
    data = load_dataset("digits")
    x, y = data.test.images, data.test.labels
    out_file = RESULTS / "qcfs_grid.json"
    MODELS.mkdir(parents=True, exist_ok=True)
    rows = {}
    for b in args.bits:
        t0 = time.perf_counter()
        path = MODELS / f"digits-b{b}.pt"
        cfg = TrainConfig(arch="mnist-cnn", dataset="digits", bits=b, epochs=15, batch_size=64,
                          lr=0.05, seed=0)
        ckpt = train(cfg, data, str(path), progress=False)
        net = convert_checkpoint(path)
        rows[str(b)] = {"levels": 2 ** b - 1, "ann": ckpt["log"][-1]["test_accuracy"],
                        "bit_serial": accuracies(bit_serial_predictions(net, x, [b]), y)[f"T={b}"],
                        "if": if_accuracy(net, x, y), "seconds": time.perf_counter() - t0}
        print(f"b={b}: {rows[str(b)]}")
    out_file.write_text(json.dumps({"command": "python benchmarks/qcfs_grid.py",
                                    "test_images": int(len(y)), "rows": rows}, indent=1))
    plot(rows, str(RESULTS / "qcfs_grid.png"))
    print("\n| b | L | ANN | bit-serial T=b | " + " | ".join(f"IF T={t}" for t in IF_STEPS)
          + " |\n|---:|---:|---:|---:|" + "---:|" * len(IF_STEPS))
    for b, r in rows.items():
        print(f"| {b} | {r['levels']} | {100 * r['ann']:.2f} | {100 * r['bit_serial']:.2f} | "
              + " | ".join(f"{100 * r['if'][f'T={t}']:.2f}" for t in IF_STEPS) + " |")


if __name__ == "__main__":
    main()
