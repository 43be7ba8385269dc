"""Oracles that share no code with what they check.

``file_qann`` is the integer QANN computed from a netx file alone: it reads the HDF5 groups
with h5py (not the project's reader), and convolves with plain loops over kernel offsets (not
im2col, not torch), in int64, exact for 24-bit networks. ``if_first_layer_counts`` is the
closed form of the IF neuron's spike count under constant input. Both follow docs/method.md
and docs/netx-schema.md directly.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np


def _conv(x: np.ndarray, w: np.ndarray, stride: int, padding: int, groups: int) -> np.ndarray:
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho = (h + 2 * padding - kh) // stride + 1
    wo = (wd + 2 * padding - kw) // stride + 1
    out = np.zeros((n, o, ho, wo), dtype=np.int64)
    per_group = o // groups
    for oc in range(o):
        g = oc // per_group
        for ci in range(cg):
            for i in range(kh):
                for j in range(kw):
                    weight = int(w[oc, ci, i, j])
                    if weight:
                        rows = slice(i, i + stride * ho, stride)
                        cols = slice(j, j + stride * wo, stride)
                        out[:, oc] += weight * x[:, g * cg + ci, rows, cols]
    return out


def _synapse(group: h5py.Group, code: np.ndarray) -> np.ndarray:
    x = code
    pool = int(group["pool"][()]) if "pool" in group else 1  # absent: the default
    stride = int(group["pool_stride"][()]) if "pool_stride" in group else pool
    pad = int(group["pool_padding"][()]) if "pool_padding" in group else 0
    if pool > 1 or stride > 1 or pad:
        n, c, h, w = x.shape
        padded = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=np.int64)
        padded[:, :, pad:pad + h, pad:pad + w] = x
        ho, wo = (h + 2 * pad - pool) // stride + 1, (w + 2 * pad - pool) // stride + 1
        scale = group["pool_scale"][()].astype(np.int64) if "pool_scale" in group \
            else np.ones((ho, wo), dtype=np.int64)
        kind = group["pool_kind"][()] if "pool_kind" in group else b"sum"
        take_max = (kind.decode() if isinstance(kind, bytes) else kind) == "max"
        x = np.zeros((n, c, ho, wo), dtype=np.int64)
        for i in range(ho):
            for j in range(wo):
                window = padded[:, :, i * stride:i * stride + pool, j * stride:j * stride + pool]
                x[:, :, i, j] = window.max(axis=(2, 3)) if take_max else \
                    window.sum(axis=(2, 3)) * scale[i, j]
    if "flatten" in group and int(group["flatten"][()]):
        x = x.reshape(x.shape[0], -1)
    weight = group["weight"][()].astype(np.int64)
    kind = group["type"][()]
    kind = kind.decode() if isinstance(kind, bytes) else kind
    if kind == "dense":
        return x.dot(weight.T)
    return _conv(x, weight, int(group["stride"][()]), int(group["padding"][()]),
                 int(group["groups"][()]))


def file_qann(path: str | Path, pixels: np.ndarray, time_steps: int | None = None
              ) -> tuple[list[np.ndarray], np.ndarray]:
    """(integer codes per layer, input first; logits ``u / D``) of the QANN in a netx file:
    ``code = clip(⌊(Σ W·code_src + bias) / D⌋, 0, K)``, truncated to its top ``T`` bits (``T``:
    the file's ``time_steps`` unless given)."""
    codes = [np.asarray(pixels).astype(np.int64)]
    with h5py.File(path, "r") as f:
        time_steps = time_steps or int(f.attrs["time_steps"])
        for i in range(1, len(f["layer"])):
            g = f["layer"][str(i)]
            synapses = [g] + [g["skip"][k] for k in sorted(g.get("skip", {}), key=int)]
            u = sum(_synapse(s, codes[int(s["source"][()])]) for s in synapses)
            shape = tuple(int(v) for v in g["shape"][()])
            bias = g["bias"][()].astype(np.int64)
            u = u.reshape(-1, *shape) + bias.reshape(bias.shape + (1,) * (len(shape) - bias.ndim))
            unit = int(g["neuron"]["threshold_unit"][()])
            kind = g["neuron"]["type"][()]
            if (kind.decode() if isinstance(kind, bytes) else kind) == "ACCUMULATOR":
                return codes[1:], (u / unit).astype(np.float64)
            bits = int(g["neuron"]["bits"][()])
            top = int(g["neuron"]["max_code"][()]) if "max_code" in g["neuron"] \
                else (1 << bits) - 1
            code = np.clip(u // unit, 0, top)
            drop = bits - min(time_steps, bits)
            codes.append((code >> drop) << drop)
    raise AssertionError("no output layer")


def if_first_layer_counts(path: str | Path, pixels: np.ndarray, steps: int) -> np.ndarray:
    """IF spike counts of layer 1 of a netx file fed the graded pixels for ``steps`` steps:
    a constant integer current ``x = W·pixels + B`` per step (the bias ``B + D/2`` less the
    QCFS half step, which is the initial membrane ``⌊θ/2⌋``), ``θ = K·D``, reset by
    subtraction, at most one spike a step: ``n = clip(⌊(⌊θ/2⌋ + T·x) / θ⌋, 0, T)``."""
    with h5py.File(path, "r") as f:
        g = f["layer"]["1"]
        shape = tuple(int(v) for v in g["shape"][()])
        bias = g["bias"][()].astype(np.int64)
        unit = int(g["neuron"]["threshold_unit"][()])
        bits = int(g["neuron"]["bits"][()])
        top = int(g["neuron"]["max_code"][()]) if "max_code" in g["neuron"] else (1 << bits) - 1
        current = _synapse(g, np.asarray(pixels).astype(np.int64)).reshape(-1, *shape)
    theta = unit * top
    x = current + bias.reshape(bias.shape + (1,) * (len(shape) - bias.ndim)) - unit // 2
    return np.clip((theta // 2 + steps * x) // theta, 0, steps).astype(np.int64)


def float_codes_off_edge(hidden: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                         tol: float = 1e-6) -> int:
    """Code mismatches between a float SNN and the float64 ANN that a bin edge does not
    explain. ``hidden``: per hidden layer in order, (SNN codes, ANN codes, the ANN's
    ``z/Δ + ½``). A sample's first differing layer must differ only where ``z/Δ + ½`` is within
    ``tol`` of an integer (later layers inherit the difference)."""
    n = len(hidden[0][0])
    decided = np.zeros(n, dtype=bool)  # samples whose first differing layer was seen
    off_edge = 0
    for snn, ann, scaled in hidden:
        differ = (np.asarray(snn).reshape(n, -1) != np.asarray(ann).reshape(n, -1))
        first = differ.any(axis=1) & ~decided
        near = np.abs(scaled - np.round(scaled)).reshape(n, -1) < tol
        off_edge += int((differ[first] & ~near[first]).sum())
        decided |= first
    return off_edge
