"""Conversion: trace a QCFS model into the graph IR, fold BN and pools, shift biases and
choose the Loihi fixed-point format. Only ``trace`` needs torch; the IR is numpy."""

from lava_bitsnn.convert.ir import Layer, Network, Synapse

__all__ = ["Layer", "Network", "Synapse"]
