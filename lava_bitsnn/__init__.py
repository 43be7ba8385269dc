"""lava-bitsnn: error-free QCFS ANN-to-SNN conversion onto Lava (bit-serial neuron)."""

__version__ = "0.1.0"
