"""What every console script shares: one-line errors with a non-zero exit, never a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable

from lava_bitsnn.errors import BitsnnError


def run_cli(prog: str, body: Callable[[], int | None]) -> int:
    """Run ``body``; turn user errors, Ctrl-C and broken pipes into a one-line message."""
    try:
        return body() or 0
    except BitsnnError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"{prog}: error: out of memory", file=sys.stderr)
        return 1
