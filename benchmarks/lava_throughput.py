"""Throughput benchmark (issue 4): samples/s of the Lava runtime (sequential, streaming and
batched; bit-serial and graded input) against the reference engine, on mnist-cnn (b=4)
trained on MNIST, and against a plain lava-dl netx CUBA network of the same neuron counts
run rate-coded for the T at which the IF baseline comes within 0.5 pp of the ANN
(benchmarks/accuracy_vs_t.json; 32 if absent). The Lava runs are also checked bit-exact
against the reference on the same images.

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
from checkpoints import DATA_ROOT, MODELS, RESULTS, previous_results
from lava_dl_cuba import cuba_throughput

from lava_bitsnn.ann.checkpoint import load_checkpoint
from lava_bitsnn.ann.data import load_dataset
from lava_bitsnn.convert.model import convert_checkpoint
from lava_bitsnn.lava.runner import LavaRunner
from lava_bitsnn.reference import ReferenceEngine


def rate_coded_steps(name: str = "mnist", within: float = 0.005) -> int:
    """The first IF T of accuracy_vs_t.json within ``within`` of the ANN (32 if unknown)."""
    _, table = previous_results("accuracy_vs_t.json")
    if name not in table:
        return 32
    r = table[name]
    good = [int(k[2:]) for k, v in r["if"].items() if v >= r["ann"] - within]
    return min(good) if good else max(int(k[2:]) for k in r["if"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=str(MODELS / "mnist.pt"))
    p.add_argument("--data-root", default=str(DATA_ROOT))
    p.add_argument("--lava-samples", type=int, default=1024)
    p.add_argument("--cuba-samples", type=int, default=32)
    args = p.parse_args()
    ckpt = load_checkpoint(args.checkpoint)
    data = load_dataset(ckpt["dataset"], Path(args.data_root) / ckpt["dataset"])
    net = convert_checkpoint(args.checkpoint)
    x = data.test.images
    rows = {}
    for precision, fused, n in (("fixed", True, 2000), ("fixed", False, 500),
                                ("float", False, 500)):
        engine = ReferenceEngine(net, precision, fused=fused)
        t0 = time.perf_counter()
        engine.evaluate(x[:n], batch_size=500)
        wall = time.perf_counter() - t0
        rows[f"reference {precision}{' fused' if fused else ' step-wise'}"] = {
            "samples": n, "wall_seconds": wall, "samples_per_second": n / wall}
    sub = x[:args.lava_samples]
    nets = {"bit-serial": net,
            "graded": convert_checkpoint(args.checkpoint, encoding="graded")}
    expected: dict[tuple[str, str], np.ndarray] = {}
    if_steps = rate_coded_steps()
    configs = [("sequential B=1", "bit-serial", "bit-serial", 1, False, 16),
               ("streaming B=1", "bit-serial", "bit-serial", 1, True, 32),
               ("batched B=16", "bit-serial", "bit-serial", 16, True, args.lava_samples // 2),
               ("batched B=64", "bit-serial", "bit-serial", 64, True, args.lava_samples),
               ("batched B=64, graded input", "bit-serial", "graded", 64, True,
                args.lava_samples),
               (f"rate-coded IF T={if_steps}, batched B=16", "if", "bit-serial", 16, True,
                args.lava_samples // 2)]
    for label, neuron, encoding, batch, pipelined, n in configs:
        steps = if_steps if neuron == "if" else None
        lava = LavaRunner(nets[encoding], "fixed", neuron, steps, batch_size=batch,
                       pipelined=pipelined)
        result = lava.run_dataset(sub[:n])
        if (encoding, neuron) not in expected:  # once per network and neuron, on all of sub
            expected[encoding, neuron] = ReferenceEngine(nets[encoding], "fixed", neuron,
                                                         steps).run_batch(sub).logits
        exact = bool(np.array_equal(result.logits, expected[encoding, neuron][:n]))
        rows[f"lava fixed {label}"] = {
            "samples": n, "wall_seconds": result.wall_seconds,
            "samples_per_second": n / result.wall_seconds, "simulated_steps": result.steps,
            "ms_per_step": 1000 * result.wall_seconds / result.steps,
            "period_steps": result.period, "latency_steps": result.latency,
            "logits_equal_reference": exact}
        print(label, rows[f"lava fixed {label}"])
    rows[f"lava-dl netx CUBA twin, rate-coded T={if_steps}, B=1"] = cuba_throughput(
        sub[:args.cuba_samples], if_steps)
    print(rows[f"lava-dl netx CUBA twin, rate-coded T={if_steps}, B=1"])
    best_lava = max(v["samples_per_second"] for k, v in rows.items()
                    if k.startswith("lava fixed"))
    ref = rows["reference fixed fused"]["samples_per_second"]
    step_wise = rows["reference fixed step-wise"]["samples_per_second"]
    summary = {"command": "python benchmarks/lava_throughput.py", "rows": rows,
               "lava_batched_vs_reference": best_lava / ref,
               "lava_batched_vs_reference_step_wise": best_lava / step_wise,
               "machine": f"{platform.machine()}, {os.cpu_count()} cores"}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "lava_throughput.json").write_text(json.dumps(summary, indent=1))
    print("\n| engine | samples | samples/s | ms/step | exact |\n|---|---:|---:|---:|---|")
    for k, v in rows.items():
        print(f"| {k} | {v['samples']} | {v['samples_per_second']:.1f} | "
              f"{v.get('ms_per_step', float('nan')):.1f} | {v.get('logits_equal_reference', '')} |")
    print(f"\nbest Lava / reference fixed fused = {best_lava / ref:.3f}; "
          f"/ reference fixed step-wise = {best_lava / step_wise:.2f}")


if __name__ == "__main__":
    main()
