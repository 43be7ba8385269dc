"""Write the IR as a netx HDF5 file (atomically)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from lava_bitsnn.core.ir import Layer, Network, Synapse
from lava_bitsnn.core.schedule import build_schedule
from lava_bitsnn.errors import BitsnnError
from lava_bitsnn.files import atomic_write
from lava_bitsnn.netx.schema import (
    FORMAT,
    FORMAT_VERSION,
    HIDDEN_NEURON,
    INPUT_NEURON,
    OUTPUT_NEURON,
    SYNAPSE_DEFAULTS,
)

# HDF5 1.10's file format: its compact object headers take a third less space than the
# default (1.8) ones, and every HDF5 since 1.10 (2017) reads it; "latest" would tie the bytes
# to the installed library
LIBVER = ("v110", "v110")


def _array(group: h5py.Group, key: str, value: np.ndarray, dtype) -> None:
    """Arrays are stored compressed (gzip level 9, byte shuffle) as one chunk: gzip then sees
    the whole array (h5py's default chunks of a few KB cost resnet20's file a sixth more)."""
    value = np.asarray(value, dtype=dtype)
    group.create_dataset(key, data=value, compression="gzip", compression_opts=9, shuffle=True,
                         chunks=value.shape if value.size else True)


def _smallest_int(value: np.ndarray):
    """int16 where the integers fit (8-bit mantissas times 2^exp ≤ 2^7 do), else int32."""
    big = int(np.abs(value).max(initial=0))
    return np.int16 if big < 1 << 15 else np.int32


def _pool_keys(syn: Synapse) -> dict:
    """The optional pool keys (format version 2) that a synapse needs (none for a sum-pool of
    k×k windows with stride k)."""
    keys: dict = {}
    if syn.pool_stride not in (0, syn.pool):
        keys["pool_stride"] = syn.pool_stride
    if syn.pool_padding:
        keys["pool_padding"] = syn.pool_padding
    if syn.pool_scale is not None:
        keys["pool_scale"] = syn.pool_scale
    if syn.pool_kind != "sum":
        keys["pool_kind"] = syn.pool_kind
    return keys


def _write_synapse(group: h5py.Group, syn: Synapse, float_weights: bool) -> None:
    group["type"] = syn.kind
    _array(group, "weight", syn.weight_int, _smallest_int(syn.weight_int))
    if float_weights:
        _array(group, "weight_float", syn.weight, np.float64)
    group["weight_exp"] = syn.weight_exp
    group["source"] = syn.source
    for key, value in {"pool": syn.pool, "flatten": int(syn.flatten)}.items():
        if value != SYNAPSE_DEFAULTS[key]:  # each object costs ~0.3 KB of HDF5 headers
            group[key] = value
    for key, value in _pool_keys(syn).items():
        if key == "pool_scale":
            _array(group, key, value, _smallest_int(value))
        else:
            group[key] = value
    if syn.kind == "conv":
        group["stride"] = syn.stride
        group["padding"] = syn.padding
        group["dilation"] = 1
        group["groups"] = syn.groups


def _write_layer(group: h5py.Group, layer: Layer, net: Network, float_weights: bool) -> None:
    group.attrs["name"] = layer.name
    group["shape"] = np.asarray(layer.shape, dtype=np.int64)
    neuron = group.create_group("neuron")
    if layer.kind == "input":
        group["type"] = "input"
        neuron["type"] = INPUT_NEURON[net.encoding]
        neuron["bits"] = layer.bits
        return
    _write_synapse(group, layer.synapses[0], float_weights)
    for k, syn in enumerate(layer.synapses[1:]):
        _write_synapse(group.create_group(f"skip/{k}"), syn, float_weights)
    _array(group, "bias", layer.bias_int, np.int32)  # 24-bit values
    neuron["type"] = HIDDEN_NEURON if layer.kind == "neuron" else OUTPUT_NEURON
    neuron["bits"] = layer.bits
    neuron["step"] = layer.step
    neuron["threshold_unit"] = layer.threshold_unit
    if float_weights:
        _array(neuron, "bias_float", layer.bias, np.float64)
    neuron["acc_bound"] = layer.acc_bound
    if layer.kind == "neuron" and layer.max_code != layer.full_code:
        neuron["max_code"] = layer.max_code  # absent: the full range


def write_network(net: Network, path: str | Path, float_weights: bool = True) -> None:
    """``float_weights=False`` leaves out the float64 copies of the weights and biases (most of
    a file's bytes): such a file runs in fixed point only."""
    float_weights = float_weights and net.has_float_weights

    def write(tmp: str) -> None:
        with h5py.File(tmp, "w", libver=LIBVER) as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["bits"] = net.bits
            f.attrs["time_steps"] = net.time_steps
            f.attrs["encoding"] = net.encoding
            f.attrs["class_names"] = json.dumps(net.class_names)
            f.attrs["normalisation"] = json.dumps(net.normalisation)
            f.attrs["meta"] = json.dumps(net.meta)
            f.attrs["float_weights"] = int(float_weights)
            for i, layer in enumerate(net.layers):
                _write_layer(f.create_group(f"layer/{i}"), layer, net, float_weights)

    atomic_write(path, write)


def write_lava_dl_cuba(net: Network, path: str | Path) -> None:
    """The network's integer weights as a plain lava-dl netx file with CUBA neurons (a
    rate-coded, non-leaky IF approximation, θ = D·K), loadable by ``netx.hdf5.Network``.
    Only chains of conv/dense layers without pools or skip edges can be expressed."""
    for layer in net.layers[1:]:
        if len(layer.synapses) != 1 or layer.synapses[0].pooled or \
                layer.synapses[0].source != net.layers.index(layer) - 1:
            raise BitsnnError(f"layer {layer.name} has pools or skip edges, which lava-dl's "
                              "netx cannot load")

    def cuba(group: h5py.Group, threshold: int) -> None:
        n = group.create_group("neuron")
        n["type"] = "CUBA"
        n["iDecay"] = 4096  # current is not carried over between steps
        n["vDecay"] = 0  # no leak: integrate-and-fire
        n["vThMant"] = threshold
        n["refDelay"] = 1
        n["gradedSpike"] = False

    def write(tmp: str) -> None:
        with h5py.File(tmp, "w", libver=LIBVER) as f:
            idx = 0
            inp = f.create_group(f"layer/{idx}")
            inp["type"] = "input"
            inp["shape"] = np.asarray(net.input_shape, dtype=np.int64)
            schedule = build_schedule(net)
            for layer, timing in zip(net.layers[1:], schedule.layers[1:], strict=True):
                syn = layer.synapses[0]
                if syn.flatten:
                    idx += 1
                    f.create_group(f"layer/{idx}")["type"] = "flatten"
                idx += 1
                g = f.create_group(f"layer/{idx}")
                g["type"] = syn.kind
                g["shape"] = np.asarray(layer.shape, dtype=np.int64)
                g["weight"] = syn.weight_int
                bias = layer.bias_int.reshape(layer.shape[0], -1)[:, 0] // timing.acc_steps
                g["bias"] = bias
                if syn.kind == "conv":
                    for key, value in (("stride", syn.stride), ("padding", syn.padding),
                                       ("dilation", 1)):
                        g[key] = np.asarray([value, value])
                    g["groups"] = syn.groups
                cuba(g, max(1, layer.threshold_unit * max(layer.max_code, 1)))

    atomic_write(path, write)
