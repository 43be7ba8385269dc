"""The shipped digits netx model is rebuilt bit for bit by its export recipe."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_digits_recipe_rebuilds_the_shipped_model(tmp_path):
    shipped = ROOT / "netx_models" / "digits-mnist-cnn.net"
    proc = subprocess.run([sys.executable, str(ROOT / "export" / "digits_mnist_cnn.py"),
                           "--out-dir", str(tmp_path)], capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr
    rebuilt = tmp_path / "digits-mnist-cnn.net"
    digest = hashlib.sha256(rebuilt.read_bytes()).hexdigest()
    assert digest == hashlib.sha256(shipped.read_bytes()).hexdigest()
    assert f"sha256 {digest}" in proc.stdout
