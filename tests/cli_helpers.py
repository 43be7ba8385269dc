"""Running console scripts in a subprocess, and checking their one-line errors."""

from __future__ import annotations

import subprocess
import sys


def cli(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"lava_bitsnn.cli.{module}", *args],
                          capture_output=True, text=True, timeout=300)


def one_line_error(proc: subprocess.CompletedProcess, message: str, *must_not_exist) -> None:
    """Non-zero exit, one line on stderr naming ``message``, no traceback, no files."""
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    for path in must_not_exist:
        assert not path.exists()
