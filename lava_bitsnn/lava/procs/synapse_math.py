"""numpy form of a synapse's linear map (sum-pool → flatten → conv/dense) on batched arrays;
the same map as ``lava_bitsnn.convert.synapse_ops`` (torch), tested equal."""

from __future__ import annotations

import numpy as np

from lava_bitsnn.core.dynamics import exact_in_float32, pool_windows
from lava_bitsnn.core.ir import conv_output_size


def sum_pool(x: np.ndarray, k: int, stride: int = 0, padding: int = 0,
             scale: np.ndarray | None = None) -> np.ndarray:
    """Window sums of ``k``×``k`` windows, ``stride`` apart (0: ``k``), over the map
    zero-padded by ``padding``, each times its ``scale`` if given."""
    stride = stride or k
    if k == stride == 1 and not padding and scale is None:
        return x
    b, c, h, w = x.shape
    if k == stride and not padding and h % k == 0 and w % k == 0:
        out = x if k == 1 else x.reshape(b, c, h // k, k, w // k, k).sum(axis=(3, 5))
    else:
        out = pool_windows(x, k, stride, padding).sum(axis=(-2, -1), dtype=x.dtype)
    return out if scale is None else out * scale.astype(out.dtype)


def conv2d(x: np.ndarray, weight: np.ndarray, stride: int, padding: int, groups: int
           ) -> np.ndarray:
    """(B, C, H, W) * (O, C/g, kh, kw) → (B, O, Ho, Wo), cross-correlation like torch.

    im2col with the batch inside the columns, so each group is one large GEMM (BLAS):
    about 2× faster at batch 64 than contracting a strided window view."""
    b, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    ho = conv_output_size(h, kh, stride, padding)
    wo = conv_output_size(w, kw, stride, padding)
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    by_channel = x.transpose(1, 0, 2, 3)
    cols = np.empty((c, kh, kw, b, ho, wo), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, i, j] = by_channel[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride]
    out = np.matmul(weight.reshape(groups, o // groups, cg * kh * kw),
                    cols.reshape(groups, cg * kh * kw, b * ho * wo))
    return np.ascontiguousarray(out.reshape(o, b, ho, wo).transpose(1, 0, 2, 3))


def apply_synapse(x: np.ndarray, weight: np.ndarray, kind: str, stride: int, padding: int,
                  groups: int, pool: int, flatten: bool, pool_stride: int = 0,
                  pool_padding: int = 0, pool_scale: np.ndarray | None = None,
                  pool_kind: str = "sum") -> np.ndarray:
    """``pool_kind="max"`` takes the window maxima of the values ``x`` (the graded input; the
    Lava synapse pools spikes itself with ``dynamics.max_pool_bits`` and passes no pool)."""
    if pool_kind == "max":
        x = pool_windows(x, pool, pool_stride or pool, pool_padding).max(axis=(-2, -1))
    else:
        x = sum_pool(x, pool, pool_stride, pool_padding, pool_scale)
    if flatten:
        x = x.reshape(x.shape[0], -1)
    if kind == "dense":
        return x @ weight.T
    return conv2d(x, weight, stride, padding, groups)


def exact_float_dtype(weight: np.ndarray, pool_gain: int, largest_input: int) -> type:
    """float32 if it computes this integer synapse exactly, else float64. Every partial sum of
    an output is at most Σ|w| over its inputs × the pool's gain (``Synapse.pool_gain``) × the
    largest input, and float32 holds every integer below 2^24 (float64: 2^53, far above any
    24-bit-state network)."""
    per_output = np.abs(weight).reshape(weight.shape[0], -1).sum(axis=1).max()
    return np.float32 if exact_in_float32(int(per_output) * pool_gain * largest_input) \
        else np.float64
