"""Clean-up after a Lava run whose parent dies without stopping it (SIGKILL, a crash).

Two mechanisms, both armed by ``LavaRunner.run_dataset``:

* every process Lava forks during a run gets the parent-death signal (Linux ``prctl``): the
  kernel kills it the moment the parent dies;
* a watchdog, a small process forked before Lava starts (in a session of its own, so it
  outlives the parent), reads lines from the parent on a pipe — ``before NAME`` (a segment
  that existed before the run), ``pid N`` (a child to kill) and ``shm NAME`` (a shared-memory
  segment of the run) — until ``done``. If its pipe closes before ``done``, the parent has
  died: it kills the listed children and unlinks the segments. If the parent died before it
  could list them (during the first chunk of steps), it unlinks every ``psm_*`` segment not
  listed as ``before``, which includes those of another Lava run started in the same seconds.

The watchdog ignores SIGINT, SIGTERM and SIGHUP and runs only this module's few lines; being
forked, it costs the run no interpreter start-up.
"""

from __future__ import annotations

import ctypes
import os
import signal
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
    """The parent's handle on the watchdog: a process forked (twice, so that it is nobody's
    zombie) before Lava starts, in a session of its own, reading the parent's pipe."""

    def __init__(self) -> None:
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # the intermediate child: fork the watchdog and exit at once
            try:
                os.close(write)
                os.setsid()
                if os.fork() == 0:
                    with os.fdopen(read) as lines:
                        _watch(lines)
            finally:
                os._exit(0)
        os.close(read)
        os.waitpid(child, 0)
        self._pipe = os.fdopen(write, "w", buffering=1)
        self._send([f"before {name}" for name in sorted(shm_segments())])

    def _send(self, lines: list[str]) -> None:
        try:
            for line in lines:
                self._pipe.write(line + "\n")
            self._pipe.flush()
        except (BrokenPipeError, ValueError):
            pass

    def tell(self, pids: list[int], segments: set[str]) -> None:
        """The run's children and shared-memory segments, once its runtime is up."""
        self._send([f"pid {pid}" for pid in pids] + [f"shm {name}" for name in sorted(segments)])

    def close(self) -> None:
        """The run ended normally: release the watchdog."""
        self._send(["done"])
        try:
            self._pipe.close()
        except (BrokenPipeError, ValueError):
            pass


def _watch(lines) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    before: set[str] = set()
    pids: list[int] = []
    segments: set[str] = set()
    told = False
    for line in lines:
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
