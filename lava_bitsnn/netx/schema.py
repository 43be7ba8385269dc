"""Names shared by the netx writer and reader (see docs/netx-schema.md)."""

FORMAT = "lava-bitsnn-netx"
FORMAT_VERSION = 3  # the version the writer writes
FORMAT_VERSIONS = (1, 2, 3)  # the versions the reader reads
POOL_KEYS_SINCE = 2  # the first version with the optional keys below
POOL_KEYS = ("pool_stride", "pool_padding", "pool_scale", "pool_kind")
DEFAULTS_SINCE = 3  # the first version that leaves out synapse keys at their defaults
SYNAPSE_DEFAULTS = {"pool": 1, "flatten": 0}  # (required before version 3)

INPUT_NEURON = {"bit-serial": "BITSERIAL_INPUT", "graded": "GRADED_INPUT"}
HIDDEN_NEURON = "BITSERIAL"
OUTPUT_NEURON = "ACCUMULATOR"

FILE_ATTRS = ("format", "format_version", "bits", "time_steps", "encoding", "class_names",
              "normalisation", "meta")
SYNAPSE_KEYS = ("type", "weight", "weight_exp", "source")
CONV_KEYS = ("stride", "padding", "dilation", "groups")
NEURON_KEYS = ("type", "bits", "step", "threshold_unit", "acc_bound")
