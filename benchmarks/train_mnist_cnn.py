"""Benchmark of the training side (issue 2): mnist-cnn, b=4, on MNIST and Fashion-MNIST.

Trains each configuration with ``bitsnn-train``'s own code path, records test accuracy,
epochs, seconds per epoch on this machine and mean 1-bits per hidden activation, and writes
``benchmarks/results/train_mnist_cnn.json``. Usage:

    python benchmarks/train_mnist_cnn.py [--data-root ../shared/datasets] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
from checkpoints import DATA_ROOT, MODELS, RESULTS

from lava_bitsnn.ann.data import load_dataset
from lava_bitsnn.ann.train import TrainConfig, train

DIGITS_SWEEP = (0.0, 1e-6, 3e-6, 1e-5, 3e-5)  # bit-ℓ1 coefficients for --digits-sweep

CONFIGS = {
    "fashion-mnist": dict(dataset="fashion-mnist", epochs=12, augment=True),
    "mnist": dict(dataset="mnist", epochs=8, augment=True),
    "fashion-mnist-bitl1-1e-8": dict(dataset="fashion-mnist", epochs=12, augment=True,
                                     bit_l1=1e-8),
    "mnist-bitl1-1e-8": dict(dataset="mnist", epochs=8, augment=True, bit_l1=1e-8),
    # more points of the regulariser trade-off (the shape of the paper's Figs. 6-7)
    "fashion-mnist-bitl1-3e-8": dict(dataset="fashion-mnist", epochs=12, augment=True,
                                     bit_l1=3e-8),
    "mnist-bitl1-3e-8": dict(dataset="mnist", epochs=8, augment=True, bit_l1=3e-8),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default=str(DATA_ROOT))
    p.add_argument("--only", nargs="*", choices=list(CONFIGS), default=list(CONFIGS))
    p.add_argument("--epochs", type=int, help="override the epochs of every configuration")
    p.add_argument("--digits-sweep", action="store_true",
                   help="instead: bit-l1 sweep on digits (15 epochs each, seconds per run)")
    args = p.parse_args()
    if args.digits_sweep:
        return digits_sweep()
    RESULTS.mkdir(parents=True, exist_ok=True)
    MODELS.mkdir(parents=True, exist_ok=True)
    out_file = RESULTS / "train_mnist_cnn.json"
    results = json.loads(out_file.read_text()) if out_file.exists() else {}
    for name in args.only:
        spec = dict(CONFIGS[name])
        if args.epochs:
            spec["epochs"] = args.epochs
        data = load_dataset(spec["dataset"], Path(args.data_root) / spec["dataset"])
        cfg = TrainConfig(arch="mnist-cnn", bits=4, batch_size=128, lr=0.1, seed=0, **spec)
        t0 = time.perf_counter()
        ckpt = train(cfg, data, str(MODELS / f"{name}.pt"))
        wall = time.perf_counter() - t0
        log = ckpt["log"]
        results[name] = {
            "command": f"python benchmarks/train_mnist_cnn.py --only {name}",
            "config": spec,
            "test_accuracy": log[-1]["test_accuracy"],
            "best_test_accuracy": max(e["test_accuracy"] for e in log),
            "bits_per_activation": log[-1]["bits_per_activation"],
            "epochs": len(log),
            "seconds_per_epoch": sum(e["seconds"] for e in log) / len(log),
            "wall_seconds": wall,
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                       f"torch {torch.__version__}, {torch.get_num_threads()} threads",
        }
        print(json.dumps({name: results[name]}, indent=1))
        out_file.write_text(json.dumps(results, indent=1))


def digits_sweep() -> None:
    """Accuracy vs mean 1-bits per activation on sklearn digits for several bit-ℓ1 weights."""
    data = load_dataset("digits")
    rows = {}
    for coef in DIGITS_SWEEP:
        cfg = TrainConfig(arch="mnist-cnn", dataset="digits", bits=4, epochs=15, batch_size=64,
                          lr=0.05, seed=0, bit_l1=coef)
        ckpt = train(cfg, data, str(MODELS / f"digits-bitl1-{coef:g}.pt"), progress=False)
        last = ckpt["log"][-1]
        rows[f"{coef:g}"] = {"test_accuracy": last["test_accuracy"],
                             "bits_per_activation": last["bits_per_activation"]}
        print(f"bit-l1 {coef:g}: accuracy {100 * last['test_accuracy']:.2f}%  "
              f"bits/activation {last['bits_per_activation']:.3f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bitl1_digits_sweep.json").write_text(json.dumps(
        {"command": "python benchmarks/train_mnist_cnn.py --digits-sweep", "rows": rows},
        indent=1))


if __name__ == "__main__":
    main()
