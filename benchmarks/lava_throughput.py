"""Throughput benchmark (issue 4): samples/s of the Lava runtime (sequential, streaming and
batched) against the reference engine, on mnist-cnn (b=4) trained on MNIST. The Lava runs are
also checked bit-exact against the reference on the same images.

    python benchmarks/lava_throughput.py [--checkpoint runs/benchmarks/mnist.pt]

Writes benchmarks/results/lava_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from lava_bitsnn.ann.checkpoint import load_checkpoint
from lava_bitsnn.ann.data import load_dataset
from lava_bitsnn.convert.model import convert_checkpoint
from lava_bitsnn.lava.network import Network
from lava_bitsnn.reference import ReferenceEngine

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=str(ROOT / "runs" / "benchmarks" / "mnist.pt"))
    p.add_argument("--data-root", default=str(ROOT.parent / "shared" / "datasets"))
    p.add_argument("--lava-samples", type=int, default=64)
    args = p.parse_args()
    ckpt = load_checkpoint(args.checkpoint)
    data = load_dataset(ckpt["dataset"], Path(args.data_root) / ckpt["dataset"])
    net = convert_checkpoint(args.checkpoint)
    x = data.test.images
    rows = {}
    for precision, fused in (("fixed", True), ("fixed", False), ("float", False)):
        engine = ReferenceEngine(net, precision, fused=fused)
        t0 = time.perf_counter()
        engine.evaluate(x[:2000], batch_size=500)
        wall = time.perf_counter() - t0
        rows[f"reference {precision}{' fused' if fused else ' step-wise'}"] = {
            "samples": 2000, "wall_seconds": wall, "samples_per_second": 2000 / wall}
    sub = x[:args.lava_samples]
    expected = ReferenceEngine(net, "fixed").run_batch(sub)
    configs = [("sequential B=1", "bit-serial", 1, False, 16),
               ("streaming B=1", "bit-serial", 1, True, 16),
               ("batched B=16", "bit-serial", 16, True, args.lava_samples),
               ("batched B=64", "bit-serial", 64, True, args.lava_samples),
               ("rate-coded IF T=32, batched B=16", "if", 16, True, 32)]
    for label, neuron, batch, pipelined, n in configs:
        steps = 32 if neuron == "if" else None
        lava = Network(net, "fixed", neuron, steps, batch_size=batch, pipelined=pipelined)
        result = lava.run_dataset(sub[:n])
        reference = expected if neuron == "bit-serial" else ReferenceEngine(
            net, "fixed", "if", 32).run_batch(sub[:n])
        exact = bool(np.array_equal(result.logits, reference.logits[:n]))
        rows[f"lava fixed {label}"] = {
            "samples": n, "wall_seconds": result.wall_seconds,
            "samples_per_second": n / result.wall_seconds, "simulated_steps": result.steps,
            "ms_per_step": 1000 * result.wall_seconds / result.steps,
            "period_steps": result.period, "latency_steps": result.latency,
            "logits_equal_reference": exact}
        print(label, rows[f"lava fixed {label}"])
    best_lava = max(v["samples_per_second"] for k, v in rows.items() if k.startswith("lava"))
    ref = rows["reference fixed fused"]["samples_per_second"]
    summary = {"command": "python benchmarks/lava_throughput.py", "rows": rows,
               "lava_batched_vs_reference": best_lava / ref,
               "machine": f"{platform.machine()}, {os.cpu_count()} cores"}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "lava_throughput.json").write_text(json.dumps(summary, indent=1))
    print("\n| engine | samples | samples/s | ms/step | exact |\n|---|---:|---:|---:|---|")
    for k, v in rows.items():
        print(f"| {k} | {v['samples']} | {v['samples_per_second']:.1f} | "
              f"{v.get('ms_per_step', float('nan')):.1f} | {v.get('logits_equal_reference', '')} |")
    print(f"\nbest Lava / reference fixed fused = {best_lava / ref:.2f}")


if __name__ == "__main__":
    main()
