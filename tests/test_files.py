"""Atomic writes: no partial file on failure, and the usual permissions on success."""

from __future__ import annotations

import os
import stat

import pytest

from lava_bitsnn.files import atomic_write


def test_atomic_write_permissions_follow_the_umask(tmp_path):
    out = tmp_path / "f.txt"
    old = os.umask(0o022)
    try:
        atomic_write(out, lambda tmp: open(tmp, "w").write("x"))
    finally:
        os.umask(old)
    assert out.read_text() == "x"
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    out = tmp_path / "f.txt"

    def fail(tmp: str) -> None:
        open(tmp, "w").write("partial")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        atomic_write(out, fail)
    assert list(tmp_path.iterdir()) == []
