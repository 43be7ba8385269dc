"""Benchmark "your own model" (issue 11): a ReLU + MaxPool CNN trained on Fashion-MNIST by
plain PyTorch code (below, written the way users write it), saved with ``torch.save(model)``,
then ``bitsnn-train --from`` (ReLU → QCFS, MaxPool → AvgPool or, with ``--maxpool keep``,
MaxPool kept and taken bit-serially; calibrate, fine-tune) → ``bitsnn-export`` →
``bitsnn-verify``. Reports the ReLU, QCFS and fixed-point SNN accuracies at T = b and writes
``benchmarks/results/own_model.json`` (``own_model-keep.json``). Usage:

    python benchmarks/own_model.py [--data-dir ../shared/datasets/fashion-mnist] [--epochs 2]
        [--tune-epochs 1] [--bits 4] [--samples 2000] [--maxpool avg|keep] [--reuse]
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]


class FashionCNN(nn.Module):
    """A typical small CNN: conv-bn-relu ×2, max-pool, conv-relu, max-pool, two linears."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 32, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(32)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(64 * 7 * 7, 128)
        self.dropout = nn.Dropout(0.25)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.pool(F.relu(self.bn2(self.conv2(x))))
        x = self.pool(F.relu(self.conv3(x)))
        x = x.view(x.size(0), -1)
        x = self.dropout(F.relu(self.fc1(x)))
        return self.fc2(x)


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def train_relu(data_dir: Path, epochs: int, out: Path) -> float:
    """Plain PyTorch training, the user's side: returns the test accuracy."""
    torch.manual_seed(0)
    x = torch.tensor(read_idx(data_dir / "train-images-idx3-ubyte.gz"), dtype=torch.float32)
    y = torch.tensor(read_idx(data_dir / "train-labels-idx1-ubyte.gz"), dtype=torch.long)
    xt = torch.tensor(read_idx(data_dir / "t10k-images-idx3-ubyte.gz"), dtype=torch.float32)
    yt = torch.tensor(read_idx(data_dir / "t10k-labels-idx1-ubyte.gz"), dtype=torch.long)
    x, xt = (x[:, None] / 255 - MEAN) / STD, (xt[:, None] / 255 - MEAN) / STD
    model = FashionCNN()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(epochs):
        model.train()
        t0 = time.time()
        for idx in torch.randperm(len(y)).split(128):
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            acc = float(torch.cat([model(b).argmax(1) for b in xt.split(1000)]).eq(yt)
                        .float().mean())
        print(f"ReLU epoch {epoch + 1}/{epochs}: test {100 * acc:.2f}%  {time.time() - t0:.0f}s",
              flush=True)
    torch.save(model, out)
    return acc


MEAN, STD = 0.2860, 0.3530  # the usual Fashion-MNIST statistics


def cli(name: str, *args: str) -> str:
    cmd = [sys.executable, "-m", f"lava_bitsnn.cli.{name}", *args]
    print("$ bitsnn-" + name, " ".join(args), flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    print(proc.stdout, proc.stderr[-2000:] if proc.returncode else "", flush=True)
    if proc.returncode:
        raise SystemExit(f"bitsnn-{name} failed ({proc.returncode})")
    return proc.stdout


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared/datasets/fashion-mnist"))
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--tune-epochs", type=int, default=1)
    p.add_argument("--bits", type=int, default=4)
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--work", default=str(ROOT / "runs" / "own_model"))
    p.add_argument("--reuse", action="store_true",
                   help="skip the training steps whose outputs exist in --work")
    p.add_argument("--maxpool", choices=["avg", "keep"], default="avg",
                   help="swap the MaxPools for AvgPools (avg) or keep them exact (keep)")
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.maxpool == "avg" else f"-{args.maxpool}"
    qcfs = work / f"qcfs{suffix}.pt"
    t0 = time.time()
    t_relu = t_tune = float("nan")
    if not (args.reuse and (work / "relu.pt").is_file()):
        train_relu(Path(args.data_dir), args.epochs, work / "relu.pt")
        t_relu = time.time() - t0
    log = work / f"train_from{suffix}.log"
    if not (args.reuse and log.is_file()):
        t1 = time.time()
        meta = ["--mean", str(MEAN), "--std", str(STD), "--import", str(Path(__file__))]
        log.write_text(cli("train", "--from", str(work / "relu.pt"), *meta, "--dataset",
                           "fashion-mnist", "--data-dir", args.data_dir, "--bits",
                           str(args.bits), "--epochs", str(args.tune_epochs), "--lr", "0.01",
                           "--maxpool", args.maxpool, "--quiet", "-o", str(qcfs)))
        t_tune = time.time() - t1
    m = re.search(r"ReLU model ([\d.]+)%  after the swap ([\d.]+)%  after fine-tuning ([\d.]+)%",
                  log.read_text())
    relu_acc, swap_acc, qcfs_acc = (float(v) / 100 for v in m.groups())
    cli("export", str(qcfs), "-o", str(qcfs.with_suffix(".net")))
    report = work / f"verify{suffix}.json"
    cli("verify", str(qcfs), str(qcfs.with_suffix(".net")), "--dataset", "fashion-mnist",
        "--data-dir", args.data_dir, "--samples", str(args.samples), "--lava-samples", "4",
        "--json", str(report))
    v = json.loads(report.read_text())
    result = {
        "command": "python benchmarks/own_model.py " + " ".join(sys.argv[1:]),
        "maxpool": args.maxpool, "bits": args.bits, "time_steps": args.bits,
        "relu_epochs": args.epochs,
        "fine_tune_epochs": args.tune_epochs,
        "relu_test_accuracy": relu_acc, "after_swap_accuracy": swap_acc,
        "qcfs_test_accuracy": qcfs_acc, "verify_samples": v["samples"],
        "verify_accuracy": v["accuracy"], "verify_ok": v["ok"],
        "qann_vs_fixed_mismatches": sum(r["qann_vs_fixed"] for r in v["layers"]),
        "ann_vs_float_off_edge": sum(r["ann_vs_float_unexplained"] for r in v["layers"]),
        "seconds": {"relu_training": None if t_relu != t_relu else round(t_relu),
                    "fine_tuning": None if t_tune != t_tune else round(t_tune)},
    }
    path = ROOT / "benchmarks" / "results" / f"own_model{suffix}.json"
    path.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
