"""Fan-out of every source neuron through a synapse (numpy): how many target neurons it
reaches, with borders, strides, groups, sum-pools and flatten taken into account. Synaptic
ops are Σ spikes × fan-out; the sum of the fan-outs is the layer's connection (MAC) count."""

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
    shape = tuple(source_shape)
    if syn.pool > 1:
        shape = (shape[0], shape[1] // syn.pool, shape[2] // syn.pool)
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
    if syn.pool > 1:
        pooled = pooled.repeat(syn.pool, axis=1).repeat(syn.pool, axis=2)
    return pooled.reshape(source_shape)
