"""Rebuild every shipped netx model from scratch with its export/ recipe and compare SHA-256
with the file in netx_models/ (the digits one is also checked by tests/test_recipes.py).

    python benchmarks/rebuild_models.py [--only digits-mnist-cnn mnist-mnist-cnn ...]

Writes benchmarks/results/rebuild_models.json. MNIST and Fashion-MNIST take 25–30 min each
on 2 cores; bit-for-bit equality assumes the same CPU kind and thread count as the build.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPES = {"digits-mnist-cnn": "digits_mnist_cnn.py", "mnist-mnist-cnn": "mnist_mnist_cnn.py",
           "fashion-mnist-mnist-cnn": "fashion_mnist_mnist_cnn.py"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="*", choices=list(RECIPES), default=list(RECIPES))
    args = p.parse_args()
    out_file = ROOT / "benchmarks" / "results" / "rebuild_models.json"
    results = json.loads(out_file.read_text()) if out_file.exists() else {}
    for name in args.only:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, str(ROOT / "export" / RECIPES[name]),
                                   "--out-dir", tmp], capture_output=True, text=True)
            if proc.returncode:
                sys.exit(f"{name}: recipe failed: {proc.stderr.strip().splitlines()[-1]}")
            rebuilt = hashlib.sha256((Path(tmp) / f"{name}.net").read_bytes()).hexdigest()
        shipped = hashlib.sha256((ROOT / "netx_models" / f"{name}.net").read_bytes()).hexdigest()
        results[name] = {"shipped_sha256": shipped, "rebuilt_sha256": rebuilt,
                         "identical": rebuilt == shipped,
                         "seconds": time.perf_counter() - t0}
        print(f"{name}: {'identical' if rebuilt == shipped else 'DIFFERENT'} ({rebuilt[:16]}…)")
        out_file.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
