"""Clean-up after a Lava run whose parent dies without stopping it (SIGKILL, a crash).

Two mechanisms, both armed by ``LavaRunner.run_dataset``:

* every process Lava forks during a run gets the parent-death signal (Linux ``prctl``): the
  kernel kills it the moment the parent dies;
* a watchdog, a separate small Python process (``python -m lava_bitsnn.watchdog``),
  reads lines from the parent on its stdin — ``before NAME`` (a segment that existed before
  the run), ``pid N`` (a child to kill) and ``shm NAME`` (a shared-memory segment of the run)
  — until ``done``. If its stdin closes before ``done``, the parent has died: it kills the
  listed children and unlinks the segments. If the parent died before it could list them
  (during the first chunk of steps), it unlinks every ``psm_*`` segment not listed as
  ``before``, which includes those of another Lava run started in the same seconds.

The watchdog ignores SIGINT, SIGTERM and SIGHUP (it runs in its own session) and never
imports Lava (it lives outside ``lava_bitsnn.lava``), so it starts in a fraction of a second.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from pathlib import Path

SHM = Path("/dev/shm")
PR_SET_PDEATHSIG = 1
_armed = False
_parent = 0  # the pid that forked, recorded just before each fork


def shm_segments() -> set[str]:
    """Names of Lava's shared-memory segments (``psm_*``) now in /dev/shm."""
    if not SHM.is_dir():
        return set()
    return {p.name for p in SHM.iterdir() if p.name.startswith("psm_")}


def _remember_parent() -> None:
    global _parent
    _parent = os.getpid()


def _libc_prctl():
    """libc's prctl, looked up once in the parent: loading a library in a forked child of a
    multi-threaded process can deadlock on the loader's lock."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _libc_prctl() if sys.platform.startswith("linux") else None


def _die_with_parent() -> None:
    if not _armed or _PRCTL is None:
        return
    _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != _parent:  # the parent died before prctl took effect
        os._exit(1)


if _PRCTL is not None and hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_remember_parent, after_in_child=_die_with_parent)


def arm(on: bool) -> None:
    """Give (or stop giving) processes forked from now on the parent-death signal."""
    global _armed
    _armed = on


class Watchdog:
    """The parent's handle on the watchdog process."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen([sys.executable, "-m", "lava_bitsnn.watchdog"],
                                      stdin=subprocess.PIPE, text=True, bufsize=1,
                                      start_new_session=True, close_fds=True)
        self._send([f"before {name}" for name in sorted(shm_segments())])

    def _send(self, lines: list[str]) -> None:
        try:
            for line in lines:
                self._proc.stdin.write(line + "\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass

    def tell(self, pids: list[int], segments: set[str]) -> None:
        """The run's children and shared-memory segments, once its runtime is up."""
        self._send([f"pid {pid}" for pid in pids] + [f"shm {name}" for name in sorted(segments)])

    def close(self) -> None:
        """The run ended normally: release the watchdog (it exits by itself; not waiting
        for it keeps its start-up off the run's critical path)."""
        try:
            self._proc.stdin.write("done\n")
            self._proc.stdin.close()
        except (BrokenPipeError, ValueError):
            pass


def _watch() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    before: set[str] = set()
    pids: list[int] = []
    segments: set[str] = set()
    told = False
    for line in sys.stdin:
        word, _, value = line.strip().partition(" ")
        if word == "done":
            return
        if word == "before":
            before.add(value)
        elif word == "pid":
            pids.append(int(value))
        elif word == "shm":
            segments.add(value)
            told = True
    for pid in pids:  # the parent died mid-run
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if not told:  # it died before it could list the segments: take every new one
        segments = shm_segments() - before
    for name in segments:
        (SHM / name).unlink(missing_ok=True)


if __name__ == "__main__":
    _watch()
