"""Fan-out of every source neuron through a synapse (numpy): how many target neurons it
reaches, with borders, strides, groups, sum-pools and flatten taken into account. Synaptic
ops are Σ spikes × fan-out; the sum of the fan-outs is the layer's connection (MAC) count.
A sum-pool is counted unrolled, as the pool folded into the weights: a source reaches each
target once per window that holds it (overlapping windows count once each). A max-pooling
synapse is counted the same way, as if every source spike passed its windows: an upper bound,
since a spike of an input that has lost its window's maximum goes no further."""

from __future__ import annotations

import numpy as np

from lava_bitsnn.core.ir import Synapse, conv_output_size


def _valid(n_in: int, n_out: int, kernel: int, stride: int, padding: int) -> np.ndarray:
    """V[y, i] = 1 when input row y meets kernel row i at some output row."""
    y = np.arange(n_in)[:, None] + padding - np.arange(kernel)[None, :]
    return ((y % stride == 0) & (y >= 0) & (y // stride < n_out)).astype(np.int64)


def fan_out(syn: Synapse, source_shape: tuple[int, ...]) -> np.ndarray:
    weight = syn.weight if syn.weight is not None else syn.weight_int  # fixed-point-only files
    mask = (np.asarray(weight) != 0).astype(np.int64)
    shape = syn.pooled_shape(tuple(source_shape)) if syn.pooled else tuple(source_shape)
    if syn.kind == "dense":
        pooled = mask.sum(axis=0).reshape(shape)
    else:
        c, h, w = shape
        out_ch, per_group, kh, kw = mask.shape
        ho = conv_output_size(h, kh, syn.stride, syn.padding)
        wo = conv_output_size(w, kw, syn.stride, syn.padding)
        vy = _valid(h, ho, kh, syn.stride, syn.padding)
        vx = _valid(w, wo, kw, syn.stride, syn.padding)
        per_out_group = out_ch // syn.groups
        pooled = np.empty((c, h, w), dtype=np.int64)
        for ch in range(c):
            g, j = divmod(ch, per_group)
            count = mask[g * per_out_group:(g + 1) * per_out_group, j].sum(axis=0)  # (kh, kw)
            pooled[ch] = vy @ count @ vx.T
    if syn.pooled:
        pooled = _through_pool(pooled.reshape(shape), syn, tuple(source_shape))
    return pooled.reshape(source_shape)


def _through_pool(pooled: np.ndarray, syn: Synapse, source_shape: tuple[int, ...]
                  ) -> np.ndarray:
    """A source neuron's fan-out: the sum of the fan-outs of the windows that contain it
    (a window's scale multiplies its sum, not the number of targets it reaches)."""
    c, h, w = source_shape
    _, ho, wo = pooled.shape
    k, step, pad = syn.pool, syn.pool_step, syn.pool_padding
    out = np.zeros((c, h + 2 * pad + k, w + 2 * pad + k), dtype=np.int64)
    for i in range(k):
        for j in range(k):
            out[:, i:i + step * ho:step, j:j + step * wo:step] += pooled
    return out[:, pad:pad + h, pad:pad + w]
