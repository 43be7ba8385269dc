"""Lava runtime: our Processes/ProcessModels (``procs/``, numpy only) and the network builder
that wires them from a netx file. Nothing here imports torch."""

import multiprocessing as _mp

from lava_bitsnn.errors import BitsnnError as _BitsnnError


def _allow_lava_fork() -> None:
    """Lava calls ``multiprocessing.set_start_method('fork')`` when imported, which raises
    once anything (a tqdm bar, say) has fixed the start method. Fork is the Linux default, so
    un-fix it and let Lava set it again; any other method is a real conflict."""
    method = _mp.get_start_method(allow_none=True)
    if method not in (None, "fork"):
        raise _BitsnnError(f"Lava needs the 'fork' multiprocessing start method, not {method!r}")
    if method == "fork":
        _mp.context._default_context._actual_context = None  # type: ignore[attr-defined]


_allow_lava_fork()
import lava.magma.core.process.process  # noqa: E402,F401 - sets the start method once
