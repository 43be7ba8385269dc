"""Shared runner of the export recipes: train with bitsnn-train's own code path, export with
bitsnn-export's, and print the SHA-256 of the netx file (training is deterministic on the CPU
for a seed, so a rerun on the same kind of machine rebuilds the same bytes)."""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_recipe(name: str, train_args: list[str], dataset_dir: str | None = None) -> None:
    """``dataset_dir``: the dataset's folder under ``--data-root`` (None for digits)."""
    p = argparse.ArgumentParser(description=f"Rebuild netx_models/{name}.net from scratch.")
    p.add_argument("--out-dir", default=str(ROOT / "netx_models"), help="where NAME.net goes")
    p.add_argument("--checkpoint-dir", help="keep the trained NAME.pt here (default: discard)")
    p.add_argument("--data-root", default=str(ROOT.parent / "shared" / "datasets"))
    args = p.parse_args()

    from lava_bitsnn.cli import export, train

    data = ["--data-dir", str(Path(args.data_root) / dataset_dir)] if dataset_dir else []
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(args.checkpoint_dir or tmp) / f"{name}.pt"
        net = Path(args.out_dir) / f"{name}.net"
        for step in (lambda: train.main([*train_args, *data, "-o", str(ckpt)]),
                     lambda: export.main([str(ckpt), "-o", str(net)])):
            code = step()
            if code:
                sys.exit(code)
    print(f"{net}  sha256 {sha256(net)}")
