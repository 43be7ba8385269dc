"""Fidelity benchmark (issue 3): on full test sets, layer-by-layer equality of the QCFS ANN,
the float SNN, the fixed-point SNN and the integer QANN (reference engine). Accuracy vs T is
benchmarks/accuracy_vs_t.py.

Needs the checkpoints of benchmarks/train_mnist_cnn.py (runs/benchmarks/*.pt). Usage:

    python benchmarks/fidelity.py [--only fashion-mnist mnist]

Writes benchmarks/results/fidelity.json and prints markdown tables.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict

from checkpoints import save_result, trained_models
from tqdm import tqdm

from lava_bitsnn.ann.checkpoint import model_from_checkpoint
from lava_bitsnn.verify import VerifyReport, verify_batch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="*", default=["fashion-mnist", "mnist"])
    args = p.parse_args()
    for bench in trained_models(args.only):
        name = bench.name
        x, y = bench.data.test.images, bench.data.test.labels
        model, net = model_from_checkpoint(bench.checkpoint), bench.net
        t0 = time.perf_counter()
        report = VerifyReport(0)
        for start in tqdm(range(0, len(y), 500), desc=f"{name} verify", leave=False):
            report.merge(verify_batch(model, net, x[start:start + 500], y[start:start + 500]))
        verify_s = time.perf_counter() - t0
        save_result("fidelity.json", name, {
            "command": f"python benchmarks/fidelity.py --only {name}", "test_images": int(len(y)),
            "verify": {**asdict(report), "ok": report.ok}, "verify_seconds": verify_s})
        print(f"\n### {name} ({len(y)} test images)\n")
        print("| layer | neurons | ANN≠float SNN | off-edge | QANN≠fixed SNN | float≠fixed |")
        print("|---|---:|---:|---:|---:|---:|")
        for r in report.layers:
            print(f"| {r.name} | {r.neurons} | {r.ann_vs_float} | {r.ann_vs_float_unexplained}"
                  f" | {r.qann_vs_fixed} | {r.float_vs_fixed} |")
        print(f"\naccuracy {report.accuracy}; agreement {report.agreement}; ok={report.ok}")


if __name__ == "__main__":
    main()
