"""Conversion: trace a QCFS model into the graph IR (lava_bitsnn.core.ir), fold BN and pools,
shift biases and choose the Loihi fixed-point format."""
