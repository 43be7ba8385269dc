"""Training side: QCFS activation, regularisers, model zoo, data, training loop (torch only)."""

from lava_bitsnn.ann.qcfs import QCFS, qcfs_layers

__all__ = ["QCFS", "qcfs_layers"]
