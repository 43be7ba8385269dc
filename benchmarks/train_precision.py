"""Training-step time in float32 against bfloat16 mixed precision (``bitsnn-train --bf16``):
forward, backward and SGD step of a zoo model at batch 128 on random 32x32 images.

    python benchmarks/train_precision.py [--archs resnet20:1 resnet20:2] [--rounds 5]

The modes alternate round by round in one process, so machine noise hits both alike; each
figure is the median over rounds of the mean of ``--steps`` steps. Writes
benchmarks/results/train_precision.json, one entry per CPU model with its AMX flag: bfloat16 is
only fast where the matrix units exist, and emulated (far slower) elsewhere.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from lava_bitsnn.ann.train import cpu_model, training_forward
from lava_bitsnn.ann.zoo import build_model

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def step_seconds(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor,
                 y: torch.Tensor, bf16: bool, steps: int) -> float:
    model.to(memory_format=torch.channels_last if bf16 else torch.contiguous_format)
    t0 = 0.0
    for i in range(steps + 1):  # the first step warms up (oneDNN primitives)
        if i == 1:
            t0 = time.perf_counter()
        loss = F.cross_entropy(training_forward(model, x, bf16), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archs", nargs="*", default=["resnet20:1", "resnet20:2"],
                   help="ARCH:WIDTH pairs")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=128)
    args = p.parse_args()
    torch.manual_seed(0)
    x = torch.randn(args.batch_size, 1, 32, 32)
    y = torch.randint(0, 10, (args.batch_size,))
    results = {"threads": torch.get_num_threads(), "cpu": cpu_model(),
               "batch_size": args.batch_size, "torch": torch.__version__,
               "command": " ".join(["python", "benchmarks/train_precision.py", *sys.argv[1:]]),
               "models": {}}
    for spec in args.archs:
        arch, width = spec.split(":")
        model = build_model(arch, in_channels=1, image_size=32, num_classes=10, bits=4,
                            width=int(width))
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        times: dict[str, list[float]] = {"float32": [], "bf16": []}
        for _ in range(args.rounds):
            for mode in times:
                times[mode].append(step_seconds(model, opt, x, y, mode == "bf16", args.steps))
        row = {mode: statistics.median(t) for mode, t in times.items()}
        row["speedup"] = row["float32"] / row["bf16"]
        per_round = [f / b for f, b in zip(times["float32"], times["bf16"], strict=True)]
        row["speedup_per_round"] = {"min": min(per_round), "max": max(per_round)}
        row["all_rounds"] = times
        results["models"][spec] = row
        print(f"{spec:14s} float32 {row['float32']:.2f} s/step  bf16 {row['bf16']:.2f} s/step  "
              f"speed-up {row['speedup']:.2f}x (rounds {min(per_round):.2f}-{max(per_round):.2f}x)",
              flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "train_precision.json"  # one entry per CPU model: the verdict depends on it
    machines = json.loads(path.read_text()) if path.exists() else {}
    machines[results["cpu"]["model"]] = results
    path.write_text(json.dumps(machines, indent=1))


if __name__ == "__main__":
    main()
