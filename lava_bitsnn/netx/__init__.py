"""netx HDF5 files: lava-dl's schema where it has a field, extended with our neuron types,
folded pools and skip edges (docs/netx-schema.md). numpy + h5py only."""

from lava_bitsnn.netx.reader import read_network
from lava_bitsnn.netx.writer import write_lava_dl_cuba, write_network

__all__ = ["read_network", "write_lava_dl_cuba", "write_network"]
