"""Accuracy vs time steps (the shape of the paper's Table 1): the bit-serial SNN at T = 1..b on
the full test set, the QCFS IF baseline at T = 1, 2, 4, ..., 64 on the first N test images
(with the bit-serial SNN on the same images), and the ANN.

The IF numbers come from one run of 64 steps: a run of T steps is the prefix of a longer one
(tested), so the read-out after step T is the T-step result. Needs the checkpoints of
benchmarks/train_mnist_cnn.py. Usage:

    python benchmarks/accuracy_vs_t.py [--only mnist ...] [--if-samples 1000]

Writes benchmarks/results/accuracy_vs_t.json and accuracy_vs_t.png; prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from checkpoints import RESULTS, previous_results, save_result, trained_models
from tqdm import tqdm

from lava_bitsnn.reference import ReferenceEngine

IF_STEPS = (1, 2, 4, 8, 16, 32, 64)
DEFAULT = ["mnist", "fashion-mnist", "mnist-bitl1-1e-8", "fashion-mnist-bitl1-1e-8"]


def bit_serial_predictions(net, images: np.ndarray, steps: list[int]) -> dict[int, np.ndarray]:
    """Fixed-point bit-serial predictions at each T in ``steps``."""
    return {t: ReferenceEngine(net, "fixed", time_steps=t).evaluate(images, batch_size=500)[0]
            for t in steps}


def accuracies(predictions: dict[int, np.ndarray], labels: np.ndarray) -> dict[str, float]:
    """``{"T=t": accuracy}`` over the first ``len(labels)`` predictions."""
    return {f"T={t}": float((p[:len(labels)] == labels).mean()) for t, p in predictions.items()}


def if_accuracy(net, images: np.ndarray, labels: np.ndarray, batch: int = 16
                ) -> dict[str, float]:
    engine = ReferenceEngine(net, "float", "if", max(IF_STEPS))
    correct = np.zeros(max(IF_STEPS))
    for start in tqdm(range(0, len(labels), batch), desc="IF", unit="batch", leave=False):
        by_step = engine.run_batch(images[start:start + batch]).logits_by_step
        correct += (by_step.argmax(axis=2) == labels[start:start + batch, None]).sum(axis=0)
    return {f"T={t}": float(correct[t - 1] / len(labels)) for t in IF_STEPS}


def plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    cols = min(4, len(names))  # at most four panels a row, so a README can show them
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, names, strict=False):
        r = results[name]
        if r["if"]:
            ax.plot(list(IF_STEPS), [100 * r["if"][f"T={t}"] for t in IF_STEPS], "o-",
                    label=f"QCFS IF ({r['if_samples']} images)")
        steps = range(1, len(r["bit_serial"]) + 1)
        ax.plot(list(steps), [100 * r["bit_serial"][f"T={t}"] for t in steps], "s-",
                label="bit-serial (full test set)")
        ax.axhline(100 * r["ann"], color="grey", ls="--", label="ANN")
        ax.set_xscale("log", base=2)
        ax.set_ylim(0, 100.5)
        ax.set_xlabel("time steps T")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(name)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="*", default=DEFAULT)
    p.add_argument("--if-samples", type=int, default=1000,
                   help="test images for the IF baseline (64 steps each; 0: no IF run)")
    args = p.parse_args()
    results: dict = {}
    for model in trained_models(args.only):
        name = model.name
        x, y = model.data.test.images, model.data.test.labels
        xs, ys = x[:args.if_samples], y[:args.if_samples]
        t0 = time.perf_counter()
        bit_serial = bit_serial_predictions(model.net, x, list(range(1, model.net.bits + 1)))
        entry = {
            "command": f"python benchmarks/accuracy_vs_t.py --only {name} "
                       f"--if-samples {args.if_samples}",
            "ann": model.checkpoint["log"][-1]["test_accuracy"],
            "test_images": int(len(y)),
            "bit_serial": accuracies(bit_serial, y),
            "if_samples": int(len(ys)),
            "bit_serial_on_if_samples": accuracies(bit_serial, ys) if len(ys) else None,
            "if": if_accuracy(model.net, xs, ys) if len(ys) else None,  # --if-samples 0
        }
        entry["seconds"] = time.perf_counter() - t0
        results = save_result("accuracy_vs_t.json", name, entry)
        print(json.dumps({name: entry}, indent=1))
    results = results or previous_results("accuracy_vs_t.json")[1]
    plot(results, str(RESULTS / "accuracy_vs_t.png"))
    print("\n| model | ANN | bit-serial T=1 / 2 / 3 / 4 | IF T=" + " / ".join(map(str, IF_STEPS))
          + " |\n|---|---:|---|---|")
    for name, r in results.items():
        bs = " / ".join(f"{100 * v:.2f}" for v in r["bit_serial"].values())
        if_ = " / ".join(f"{100 * r['if'][f'T={t}']:.2f}" for t in IF_STEPS) if r["if"] else "–"
        print(f"| {name} | {100 * r['ann']:.2f} | {bs} | {if_} ({r['if_samples']} images) |")


if __name__ == "__main__":
    main()
