"""The shipped digits netx model is rebuilt bit for bit by its export recipe."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _same_kernels_as_the_build() -> bool:
    """Float training is deterministic per torch version, CPU kernel set and thread count."""
    build = json.loads((ROOT / "netx_models" / "build.json").read_text())
    here = (torch.__version__, torch.backends.cpu.get_cpu_capability(), torch.get_num_threads())
    return here == (build["torch"], build["cpu_capability"], build["threads"])


def test_digits_recipe_rebuilds_the_shipped_model(tmp_path):
    if not _same_kernels_as_the_build():
        pytest.skip("netx_models/ was built with other torch CPU kernels (see build.json); "
                    "a bit-for-bit rebuild needs the same ones")
    shipped = ROOT / "netx_models" / "digits-mnist-cnn.net"
    proc = subprocess.run([sys.executable, str(ROOT / "export" / "digits_mnist_cnn.py"),
                           "--out-dir", str(tmp_path)], capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr
    rebuilt = tmp_path / "digits-mnist-cnn.net"
    digest = hashlib.sha256(rebuilt.read_bytes()).hexdigest()
    assert digest == hashlib.sha256(shipped.read_bytes()).hexdigest()
    assert f"sha256 {digest}" in proc.stdout


def test_digits_recipe_is_deterministic_on_this_machine(tmp_path):
    """Where the shipped hash cannot be checked: two rebuilds give the same bytes."""
    if _same_kernels_as_the_build():
        pytest.skip("the shipped-hash test above already rebuilds and compares bit for bit")
    digests = []
    for k in range(2):
        out = tmp_path / str(k)
        out.mkdir()
        proc = subprocess.run([sys.executable, str(ROOT / "export" / "digits_mnist_cnn.py"),
                               "--out-dir", str(out)], capture_output=True, text=True,
                              timeout=900)
        assert proc.returncode == 0, proc.stderr
        digests.append(hashlib.sha256((out / "digits-mnist-cnn.net").read_bytes()).hexdigest())
    assert digests[0] == digests[1]
