"""Fidelity benchmark (issue 3): on full test sets, layer-by-layer equality of the QCFS ANN,
the float SNN, the fixed-point SNN and the integer QANN (reference engine), plus accuracy vs T
for the bit-serial SNN and the rate-coded IF baseline.

Needs the checkpoints of benchmarks/train_mnist_cnn.py (runs/benchmarks/*.pt). Usage:

    python benchmarks/fidelity.py [--only fashion-mnist mnist] [--if-samples 2000]

Writes benchmarks/results/fidelity.json and prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lava_bitsnn.ann.checkpoint import load_checkpoint, model_from_checkpoint
from lava_bitsnn.ann.data import load_dataset
from lava_bitsnn.convert.model import convert_checkpoint
from lava_bitsnn.reference import ReferenceEngine
from lava_bitsnn.verify import VerifyReport, verify_batch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MODELS = ROOT / "runs" / "benchmarks"
IF_STEPS = (1, 2, 4, 8, 16, 32)


def accuracy(engine: ReferenceEngine, images: np.ndarray, labels: np.ndarray) -> float:
    # IF holds all T steps of a batch at once: keep the batch × T product bounded
    batch = 500 if engine.neuron == "bit-serial" else max(10, 2000 // engine.time_steps)
    preds, _ = engine.evaluate(images, batch_size=batch)
    return float((preds == labels).mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default=str(ROOT.parent / "shared" / "datasets"))
    p.add_argument("--only", nargs="*", default=["fashion-mnist", "mnist"])
    p.add_argument("--if-samples", type=int, default=1000,
                   help="test images for the IF baseline (its cost grows with T)")
    args = p.parse_args()
    out_file = RESULTS / "fidelity.json"
    results = json.loads(out_file.read_text()) if out_file.exists() else {}
    for name in args.only:
        ckpt_path = MODELS / f"{name}.pt"
        ckpt = load_checkpoint(ckpt_path)
        data = load_dataset(ckpt["dataset"], Path(args.data_root) / ckpt["dataset"])
        x, y = data.test.images, data.test.labels
        model = model_from_checkpoint(ckpt)
        net = convert_checkpoint(ckpt_path)
        t0 = time.perf_counter()
        report = VerifyReport(0)
        for start in tqdm(range(0, len(y), 500), desc=f"{name} verify", leave=False):
            report.merge(verify_batch(model, net, x[start:start + 500], y[start:start + 500]))
        verify_s = time.perf_counter() - t0
        results[name] = {"command": f"python benchmarks/fidelity.py --only {name}",
                         "test_images": int(len(y)), "verify": {**asdict(report), "ok": report.ok},
                         "verify_seconds": verify_s}
        out_file.write_text(json.dumps(results, indent=1))  # saved before the slower stages
        print(json.dumps(results[name]["verify"], indent=1))
        bit_serial = {}
        for t in range(1, net.bits + 1):  # float at T=b is in the verify report
            bit_serial[f"fixed T={t}"] = accuracy(ReferenceEngine(net, "fixed", time_steps=t),
                                                  x, y)
        results[name]["bit_serial_accuracy"] = bit_serial
        out_file.write_text(json.dumps(results, indent=1))
        print(f"bit-serial fixed accuracy vs T: {bit_serial}")
        if not args.if_samples:
            continue
        xs, ys = x[:args.if_samples], y[:args.if_samples]
        if_acc = {f"T={t}": accuracy(ReferenceEngine(net, "float", "if", t), xs, ys)
                  for t in tqdm(IF_STEPS, desc=f"{name} IF", leave=False)}
        t0 = time.perf_counter()
        accuracy(ReferenceEngine(net, "fixed"), x, y)
        ref_s = time.perf_counter() - t0
        results[name] = {
            "command": f"python benchmarks/fidelity.py --only {name}",
            "test_images": int(len(y)), "verify": {**asdict(report), "ok": report.ok},
            "verify_seconds": verify_s, "bit_serial_accuracy": bit_serial,
            "if_accuracy": if_acc, "if_samples": int(len(ys)),
            "reference_fixed_seconds_full_test_set": ref_s,
        }
        out_file.write_text(json.dumps(results, indent=1))
        print(f"\n### {name} ({len(y)} test images)\n")
        print("| layer | neurons | ANN≠float SNN | off-edge | QANN≠fixed SNN | float≠fixed |")
        print("|---|---:|---:|---:|---:|---:|")
        for r in report.layers:
            print(f"| {r.name} | {r.neurons} | {r.ann_vs_float} | {r.ann_vs_float_unexplained}"
                  f" | {r.qann_vs_fixed} | {r.float_vs_fixed} |")
        print(f"\naccuracy {report.accuracy}; agreement {report.agreement}; ok={report.ok}")
        print(f"bit-serial: {bit_serial}\nIF ({len(ys)} images): {if_acc}")
        print(f"reference fixed-point engine, full test set: {ref_s:.1f} s")


if __name__ == "__main__":
    main()
