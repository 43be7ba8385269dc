"""The Lava synapses' numpy map (im2col GEMM) equals the torch map the converter and the
reference engine use, for every layer form; float32 is chosen only where it is exact."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lava_bitsnn.convert.synapse_ops import apply_synapse as torch_synapse
from lava_bitsnn.core.ir import Synapse
from lava_bitsnn.lava.procs.synapse_math import apply_synapse, exact_float_dtype


@st.composite
def synapses(draw):
    kind = draw(st.sampled_from(["conv", "dense"]))
    channels = draw(st.integers(1, 4))
    pool = draw(st.sampled_from([1, 2, 3]))
    general = draw(st.booleans())  # overlapping / strided / padded windows, scaled sums
    pool_stride = draw(st.integers(1, 3)) if general else 0
    pool_padding = draw(st.integers(0, pool // 2)) if general else 0
    size = draw(st.integers(2, 5)) * pool
    batch = draw(st.integers(1, 3))
    graded = draw(st.booleans())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(0, 256 if graded else 2, (batch, channels, size, size))
    pool_args = dict(pool=pool, pool_stride=pool_stride, pool_padding=pool_padding)
    pooled = Synapse(0, "dense", None, **pool_args).pooled_shape((channels, size, size))
    if general and draw(st.booleans()):
        pool_args["pool_scale"] = rng.integers(1, 7, pooled[1:])
    if kind == "dense":
        n_in = int(np.prod(pooled))
        weight = rng.integers(-128, 128, (draw(st.integers(1, 6)), n_in)) << draw(
            st.integers(0, 6))
        return x, weight, Synapse(0, "dense", weight.astype(float), flatten=True, **pool_args)
    groups = draw(st.sampled_from([1, channels]))
    out = groups * draw(st.integers(1, 3))
    k = draw(st.integers(1, 3))
    stride, padding = draw(st.integers(1, 2)), draw(st.integers(0, 1))
    if pooled[1] + 2 * padding < k:
        padding = k
    weight = rng.integers(-128, 128, (out, channels // groups, k, k)) << draw(st.integers(0, 6))
    return x, weight, Synapse(0, "conv", weight.astype(float), stride, padding, groups,
                              **pool_args)


def _numpy(x: np.ndarray, weight: np.ndarray, syn: Synapse, dtype: type) -> np.ndarray:
    return apply_synapse(x.astype(dtype), weight.astype(dtype), syn.kind, syn.stride,
                         syn.padding, syn.groups, syn.pool, syn.flatten, syn.pool_stride,
                         syn.pool_padding, syn.pool_scale)


def _loop_sum_pool(x: np.ndarray, syn: Synapse) -> np.ndarray:
    """Window sums by plain loops over output positions (an oracle for both maps)."""
    b, c, h, w = x.shape
    _, ho, wo = syn.pooled_shape((c, h, w))
    out = np.zeros((b, c, ho, wo), dtype=np.int64)
    for i in range(ho):
        for j in range(wo):
            top, left = i * syn.pool_step - syn.pool_padding, j * syn.pool_step - syn.pool_padding
            window = x[:, :, max(top, 0):top + syn.pool, max(left, 0):left + syn.pool]
            scale = 1 if syn.pool_scale is None else syn.pool_scale[i, j]
            out[:, :, i, j] = window.sum(axis=(2, 3)) * scale
    return out


@settings(max_examples=60, deadline=None)
@given(synapses())
def test_numpy_synapse_equals_torch(case):
    x, weight, syn = case
    expected = torch_synapse(syn, torch.from_numpy(x.astype(np.float64)),
                             torch.from_numpy(weight.astype(np.float64))).numpy()
    np.testing.assert_array_equal(_numpy(x, weight, syn, np.float64), expected)
    if syn.pooled:
        identity = Synapse(0, "conv", None, groups=x.shape[1], pool=syn.pool,
                           pool_stride=syn.pool_stride, pool_padding=syn.pool_padding,
                           pool_scale=syn.pool_scale)
        ones = np.ones((x.shape[1], 1, 1, 1))
        np.testing.assert_array_equal(apply_synapse(
            x.astype(np.float64), ones, "conv", 1, 0, x.shape[1], syn.pool, False,
            syn.pool_stride, syn.pool_padding, syn.pool_scale), _loop_sum_pool(x, identity))
    largest = 255 if x.max() > 1 else 1
    if exact_float_dtype(weight, syn.pool_gain(x.shape[1:]), largest) is np.float32:
        np.testing.assert_array_equal(_numpy(x, weight, syn, np.float32), expected)


@pytest.mark.parametrize("gain,largest,dtype", [(1, 1, np.float32), (4, 1, np.float64),
                                                 (1, 255, np.float64)])
def test_float32_only_below_two_to_the_24(gain, largest, dtype):
    weight = np.full((2, 64), (1 << 24) // (64 * 4))  # Σ|w| of an output = 2^22
    assert exact_float_dtype(weight, gain, largest) is dtype


def test_float32_would_be_wrong_above_the_bound():
    """Why the bound matters: one output summing past 2^24 rounds in float32."""
    weight = np.array([[1 << 24, 1]])
    x = np.array([[1, 1]])
    syn = Synapse(0, "dense", weight.astype(float))
    assert exact_float_dtype(weight, 1, 1) is np.float64
    assert _numpy(x, weight, syn, np.float32)[0, 0] != (1 << 24) + 1
    assert _numpy(x, weight, syn, np.float64)[0, 0] == (1 << 24) + 1
