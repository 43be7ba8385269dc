"""Ablation of the method's three parts (the shape of the paper's Table 4): the left shift
of the accumulated input, the BN-bias shift (bias / T per step) and the deferred-firing neuron,
every on/off combination, in fixed point (exact integers; accumulator clipping is counted) at
T = b on the first N test images. The switches are ReferenceEngine's ``ablate`` (tested in
tests/test_ablation.py). Needs the checkpoints of benchmarks/train_mnist_cnn.py. Usage:

    python benchmarks/ablation.py [--only mnist fashion-mnist] [--samples 1000]

Writes benchmarks/results/ablation.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

from checkpoints import previous_results, trained_models
from tqdm import tqdm

from lava_bitsnn.reference import ReferenceEngine
from lava_bitsnn.reference.engine import ABLATIONS


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="*", default=["mnist", "fashion-mnist"])
    p.add_argument("--samples", type=int, default=1000)
    args = p.parse_args()
    out_file, results = previous_results("ablation.json")
    for model in trained_models(args.only):
        name = model.name
        x, y = model.data.test.images[:args.samples], model.data.test.labels[:args.samples]
        rows = []
        for off in tqdm(list(itertools.product((False, True), repeat=len(ABLATIONS))),
                        desc=name, leave=False):
            ablate = tuple(a for a, o in zip(ABLATIONS, off, strict=True) if o)
            t0 = time.perf_counter()
            preds, counts = ReferenceEngine(model.net, "fixed", ablate=ablate).evaluate(
                x, batch_size=100)
            rows.append({"ablate": list(ablate), "accuracy": float((preds == y).mean()),
                         "overflows": sum(c.overflows for c in counts),
                         "seconds": time.perf_counter() - t0})
        results[name] = {"command": f"python benchmarks/ablation.py --only {name} "
                                    f"--samples {args.samples}",
                         "samples": int(len(y)),
                         "ann": model.checkpoint["log"][-1]["test_accuracy"], "rows": rows}
        out_file.write_text(json.dumps(results, indent=1))
    print("| model | " + " | ".join(ABLATIONS) + " | accuracy | clipped |\n|---|"
          + "---|" * len(ABLATIONS) + "---:|---:|")
    for name, r in results.items():
        for row in r["rows"]:
            marks = " | ".join("✗" if a in row["ablate"] else "✓" for a in ABLATIONS)
            print(f"| {name} ({r['samples']} images) | {marks} | {100 * row['accuracy']:.2f} | "
                  f"{row['overflows']} |")


if __name__ == "__main__":
    main()
