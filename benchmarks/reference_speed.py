"""Speed of the reference engine (issue 3): the fused fixed-point path on a full 10k test set,
and the step-wise paths on a subset, for a shipped netx model.

    python benchmarks/reference_speed.py [--net netx_models/mnist-mnist-cnn.net]
        [--dataset mnist] [--stepwise-samples 1000]

Writes benchmarks/results/reference_speed.json. Each row is timed once after a warm-up batch.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from lava_bitsnn.ann.data import load_dataset
from lava_bitsnn.netx import read_network
from lava_bitsnn.reference import ReferenceEngine

ROOT = Path(__file__).resolve().parents[1]


def timed(engine: ReferenceEngine, images, labels, batch: int) -> dict:
    engine.evaluate(images[:batch], batch_size=batch)  # warm-up (oneDNN primitives)
    t0 = time.perf_counter()
    preds, counts = engine.evaluate(images, batch_size=batch)
    seconds = time.perf_counter() - t0
    return {"samples": len(labels), "seconds": seconds, "samples_per_second": len(labels) / seconds,
            "accuracy": float((preds == labels).mean()),
            "synops": sum(c.synops for c in counts)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--net", default=str(ROOT / "netx_models" / "mnist-mnist-cnn.net"))
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--data-root", default=str(ROOT.parent / "shared" / "datasets"))
    p.add_argument("--stepwise-samples", type=int, default=1000)
    args = p.parse_args()
    net = read_network(args.net)
    test = load_dataset(args.dataset, Path(args.data_root) / args.dataset).test
    x, y = test.images, test.labels
    n = args.stepwise_samples
    rows = {
        "fixed, fused (default)": timed(ReferenceEngine(net, "fixed"), x, y, 256),
        "fixed, step-wise": timed(ReferenceEngine(net, "fixed", fused=False), x[:n], y[:n], 256),
        "float, step-wise": timed(ReferenceEngine(net, "float"), x[:n], y[:n], 256),
    }
    for name, row in rows.items():
        print(f"{name:<24} {row['samples']:>6} images  {row['seconds']:7.1f} s  "
              f"{row['samples_per_second']:7.1f} img/s  accuracy {100 * row['accuracy']:.2f}%")
    out = ROOT / "benchmarks" / "results" / "reference_speed.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    results[f"{Path(args.net).name} on {args.dataset}"] = {
        "command": f"python benchmarks/reference_speed.py --net {args.net} --dataset "
                   f"{args.dataset}", "rows": rows,
        "machine": f"{os.cpu_count()} cores, torch {torch.__version__}, "
                   f"{torch.get_num_threads()} threads"}
    out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
