"""Names shared by the netx writer and reader (see docs/netx-schema.md)."""

FORMAT = "lava-bitsnn-netx"
FORMAT_VERSION = 1  # files without the keys of version 2
FORMAT_VERSION_POOLS = 2  # a synapse with pool_stride, pool_padding, pool_scale or pool_kind
POOL_KEYS = ("pool_stride", "pool_padding", "pool_scale", "pool_kind")

INPUT_NEURON = {"bit-serial": "BITSERIAL_INPUT", "graded": "GRADED_INPUT"}
HIDDEN_NEURON = "BITSERIAL"
OUTPUT_NEURON = "ACCUMULATOR"

FILE_ATTRS = ("format", "format_version", "bits", "time_steps", "encoding", "class_names",
              "normalisation", "meta")
SYNAPSE_KEYS = ("type", "weight", "weight_exp", "source", "pool", "flatten")
CONV_KEYS = ("stride", "padding", "dilation", "groups")
NEURON_KEYS = ("type", "bits", "step", "threshold_unit", "acc_bound")
FLOAT_KEYS = ("weight_float", "bias_float")  # absent where the file attribute float_weights is 0
