"""numpy form of a synapse's linear map (sum-pool → flatten → conv/dense) on batched arrays;
the same map as ``lava_bitsnn.convert.synapse_ops`` (torch), tested equal."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def sum_pool(x: np.ndarray, k: int) -> np.ndarray:
    if k == 1:
        return x
    b, c, h, w = x.shape
    return x.reshape(b, c, h // k, k, w // k, k).sum(axis=(3, 5))


def conv2d(x: np.ndarray, weight: np.ndarray, stride: int, padding: int, groups: int
           ) -> np.ndarray:
    """(B, C, H, W) * (O, C/g, kh, kw) → (B, O, Ho, Wo), cross-correlation like torch."""
    b, c, _, _ = x.shape
    o, cg, kh, kw = weight.shape
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    ho, wo = win.shape[2], win.shape[3]
    if groups == 1:
        out = np.tensordot(win, weight, axes=([1, 4, 5], [1, 2, 3]))  # (B, Ho, Wo, O)
        return np.ascontiguousarray(out.transpose(0, 3, 1, 2))
    og = o // groups
    win = win.reshape(b, groups, cg, ho, wo, kh, kw)
    w = weight.reshape(groups, og, cg, kh, kw)
    out = np.einsum("bgchwij,gocij->bgohw", win, w, optimize=True)
    return out.reshape(b, o, ho, wo)


def apply_synapse(x: np.ndarray, weight: np.ndarray, kind: str, stride: int, padding: int,
                  groups: int, pool: int, flatten: bool) -> np.ndarray:
    x = sum_pool(x, pool)
    if flatten:
        x = x.reshape(x.shape[0], -1)
    if kind == "dense":
        return x @ weight.T
    return conv2d(x, weight, stride, padding, groups)
