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
    pool = draw(st.sampled_from([1, 2]))
    size = draw(st.integers(2, 5)) * pool
    batch = draw(st.integers(1, 3))
    graded = draw(st.booleans())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(0, 256 if graded else 2, (batch, channels, size, size))
    if kind == "dense":
        n_in = channels * (size // pool) ** 2
        weight = rng.integers(-128, 128, (draw(st.integers(1, 6)), n_in)) << draw(
            st.integers(0, 6))
        return x, weight, Synapse(0, "dense", weight.astype(float), pool=pool, flatten=True)
    groups = draw(st.sampled_from([1, channels]))
    out = groups * draw(st.integers(1, 3))
    k = draw(st.integers(1, 3))
    stride, padding = draw(st.integers(1, 2)), draw(st.integers(0, 1))
    if (size // pool) + 2 * padding < k:
        padding = k
    weight = rng.integers(-128, 128, (out, channels // groups, k, k)) << draw(st.integers(0, 6))
    return x, weight, Synapse(0, "conv", weight.astype(float), stride, padding, groups, pool)


def _numpy(x: np.ndarray, weight: np.ndarray, syn: Synapse, dtype: type) -> np.ndarray:
    return apply_synapse(x.astype(dtype), weight.astype(dtype), syn.kind, syn.stride,
                         syn.padding, syn.groups, syn.pool, syn.flatten)


@settings(max_examples=60, deadline=None)
@given(synapses())
def test_numpy_synapse_equals_torch(case):
    x, weight, syn = case
    expected = torch_synapse(syn, torch.from_numpy(x.astype(np.float64)),
                             torch.from_numpy(weight.astype(np.float64))).numpy()
    np.testing.assert_array_equal(_numpy(x, weight, syn, np.float64), expected)
    largest = 255 if x.max() > 1 else 1
    if exact_float_dtype(weight, syn.pool, largest) is np.float32:
        np.testing.assert_array_equal(_numpy(x, weight, syn, np.float32), expected)


@pytest.mark.parametrize("pool,largest,dtype", [(1, 1, np.float32), (2, 1, np.float64),
                                                 (1, 255, np.float64)])
def test_float32_only_below_two_to_the_24(pool, largest, dtype):
    weight = np.full((2, 64), (1 << 24) // (64 * 4))  # Σ|w| of an output = 2^22
    assert exact_float_dtype(weight, pool, largest) is dtype


def test_float32_would_be_wrong_above_the_bound():
    """Why the bound matters: one output summing past 2^24 rounds in float32."""
    weight = np.array([[1 << 24, 1]])
    x = np.array([[1, 1]])
    syn = Synapse(0, "dense", weight.astype(float))
    assert exact_float_dtype(weight, 1, 1) is np.float64
    assert _numpy(x, weight, syn, np.float32)[0, 0] != (1 << 24) + 1
    assert _numpy(x, weight, syn, np.float64)[0, 0] == (1 << 24) + 1
