"""A network as the bytes of its netx file, for embedding in a training checkpoint that must
stay loadable with ``torch.load(weights_only=True)`` (a ``--fixed-point`` model's grid)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from lava_bitsnn.core.ir import Network
from lava_bitsnn.netx.reader import read_network
from lava_bitsnn.netx.writer import write_network


def network_to_bytes(net: Network) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "network.net"
        write_network(net, path)
        return path.read_bytes()


def network_from_bytes(data: bytes) -> Network:
    """The network of ``network_to_bytes`` (checked as any file is by ``read_network``)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "network.net"
        path.write_bytes(data)
        return read_network(path)
