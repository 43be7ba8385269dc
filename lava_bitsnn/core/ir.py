"""Graph IR shared by the netx writer/reader, the reference engine and the Lava builder.

A network is a list of layers in topological order. Layer 0 is the input (8-bit pixels);
every other layer is a population of bit-serial neurons (``kind == "neuron"``) or the final
accumulate-only read-out (``kind == "output"``). Each non-input layer has one or more synapses;
a synapse reads one earlier layer, optionally sum-pools it (``pool`` × ``pool`` windows with
stride ``pool_stride`` (0: ``pool``) over the map zero-padded by ``pool_padding``, each window
sum then multiplied by the integer ``pool_scale`` of its position where the average's divisor
varies), optionally flattens it (CHW order), and applies a conv or dense map. The average's
divisor (``pool²``, or the common multiple that ``pool_scale`` completes) is in the weights.
A max-pooling synapse (``pool_kind == "max"``) takes the window maxima instead, bit-serially
(``dynamics.max_pool_bits``), with no divisor and no scale.

Units. A synapse's ``weight`` multiplies the source's integer *code* (pixel value 0..255 for
the input, ``k`` for a hidden layer), so the float pre-activation is
``z = Σ_syn weight · code_src + bias_ann``. ``bias`` is the total a neuron adds over one sample:
``B + Δ/2`` for hidden layers (the QCFS half-step folded in), ``B`` for the output. In fixed
point the same network is an integer QANN: ``u = Σ weight_int · code_src + bias_int`` and
``code = clip(floor(u / D), 0, K)`` with ``D = threshold_unit``; output logits are ``u / D``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lava_bitsnn.core.dynamics import ACC_MAX, ACCUMULATOR_BITS, pool_windows  # noqa: F401

MANTISSA_MIN, MANTISSA_MAX = -128, 127
INPUT_BITS = 8
PIXEL_MAX = (1 << INPUT_BITS) - 1  # the largest input code: images are 8-bit pixels
MAX_BITS = 8  # the most activation bits of a hidden layer
ENCODINGS = ("bit-serial", "graded")
POOL_KINDS = ("sum", "max")


def conv_output_size(n: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a convolution along one axis (torch's rule, dilation 1)."""
    return (n + 2 * padding - kernel) // stride + 1


@dataclass
class Synapse:
    source: int
    kind: str  # "conv" | "dense"
    weight: np.ndarray | None  # float64, OIHW (conv) or OI (dense), per unit of source code;
    # None in a file written without float weights (fixed point only)
    stride: int = 1
    padding: int = 0
    groups: int = 1
    pool: int = 1
    flatten: bool = False
    weight_int: np.ndarray | None = None  # int64, = mantissa · 2**weight_exp
    weight_exp: int = 0
    pool_stride: int = 0  # 0: the window size ``pool`` (non-overlapping windows)
    pool_padding: int = 0
    pool_scale: np.ndarray | None = None  # int64 (H', W') window-sum multipliers, or None
    pool_kind: str = "sum"  # "sum" (average pools) or "max"

    @property
    def mantissa(self) -> np.ndarray:
        assert self.weight_int is not None
        return self.weight_int >> self.weight_exp

    @property
    def pool_step(self) -> int:
        return self.pool_stride or self.pool

    @property
    def pooled(self) -> bool:
        """Whether the synapse sum-pools its input at all."""
        return (self.pool > 1 or self.pool_step > 1 or self.pool_padding > 0
                or self.pool_scale is not None)

    def pool_gain(self, source_shape: tuple[int, ...]) -> int:
        """The most a pooled value can be per unit of input: the largest window count (in the
        map of ``source_shape``) times its scale; a maximum: 1."""
        if self.pool_kind == "max" or not self.pooled:
            return 1
        if self.pool_scale is None:
            return self.pool ** 2
        ones = np.ones((1, 1, *source_shape[1:]), dtype=np.int64)
        counts = pool_windows(ones, self.pool, self.pool_step, self.pool_padding).sum(
            axis=(-2, -1))[0, 0]
        return int((counts * self.pool_scale).max())

    def pooled_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The source shape (C, H, W) after the sum-pool (unchanged when not pooled)."""
        if not self.pooled:
            return tuple(shape)
        c, h, w = shape
        return (c, *(conv_output_size(n, self.pool, self.pool_step, self.pool_padding)
                     for n in (h, w)))


@dataclass
class Layer:
    name: str
    kind: str  # "input" | "neuron" | "output"
    shape: tuple[int, ...]  # (C, H, W) or (N,)
    bits: int  # code bits: 8 for the input, b for hidden layers, 0 for the output
    step: float = 1.0  # Δ (hidden); 1.0 for input/output
    synapses: list[Synapse] = field(default_factory=list)
    bias: np.ndarray | None = None  # float64, broadcastable to shape (per channel or full)
    threshold_unit: int = 1  # D
    bias_int: np.ndarray | None = None  # int64, same shape as bias
    acc_bound: int = 0  # worst-case |accumulator| over the data's code ranges
    note: str = ""  # why a scale was reduced, if it was
    max_code: int = 0  # K, the largest code (hidden: ≤ 2^bits − 1); 0 → 2^bits − 1

    def __post_init__(self) -> None:
        if not self.max_code:
            self.max_code = self.full_code

    @property
    def full_code(self) -> int:
        """2^bits − 1, the largest code the bits hold (the default ``max_code``)."""
        return (1 << self.bits) - 1

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def bias_full(self, integer: bool) -> np.ndarray:
        b = self.bias_int if integer else self.bias
        if b is None:
            raise ValueError(f"layer {self.name} has no {'integer' if integer else 'float'} "
                             "bias")
        return b.reshape(b.shape + (1,) * (len(self.shape) - b.ndim))


@dataclass
class Network:
    layers: list[Layer]
    bits: int
    time_steps: int
    encoding: str
    class_names: list[str]
    normalisation: dict[str, list[float]]
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def input(self) -> Layer:
        return self.layers[0]

    @property
    def output(self) -> Layer:
        return self.layers[-1]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.layers[0].shape

    @property
    def has_float_weights(self) -> bool:
        return all(s.weight is not None for layer in self.layers for s in layer.synapses)

    def require_float_weights(self) -> None:
        """ValueError for a network written without float weights (``--no-float-weights``)."""
        if not self.has_float_weights:
            raise ValueError("this network was exported with --no-float-weights: it runs in "
                             "fixed point only (--precision fixed)")
