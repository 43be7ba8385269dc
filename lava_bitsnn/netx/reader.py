"""Read and validate a netx HDF5 file written by ``write_network``; rebuild the IR.

Validation checks what the schema promises, not only which keys exist: shapes along the graph,
8-bit mantissas on each synapse's ``weight_exp`` grid, power-of-two threshold units, codes
that fit their bits, and the worst-case accumulator, recomputed from the weights and biases,
equal to the stored ``acc_bound`` and within 24 bits. A file that breaks any of them (a
tampered or foreign one) is refused in one line, before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from lava_bitsnn.core.ir import (
    ACC_MAX,
    ENCODINGS,
    INPUT_BITS,
    MANTISSA_MAX,
    MANTISSA_MIN,
    MAX_BITS,
    POOL_KINDS,
    Layer,
    Network,
    Synapse,
    conv_output_size,
)
from lava_bitsnn.errors import BitsnnError
from lava_bitsnn.netx.schema import (
    CONV_KEYS,
    DEFAULTS_SINCE,
    FILE_ATTRS,
    FORMAT,
    FORMAT_VERSION,
    FORMAT_VERSIONS,
    HIDDEN_NEURON,
    INPUT_NEURON,
    NEURON_KEYS,
    OUTPUT_NEURON,
    POOL_KEYS,
    POOL_KEYS_SINCE,
    SYNAPSE_DEFAULTS,
    SYNAPSE_KEYS,
)


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.float_weights = True  # the file carries weight_float / bias_float
        self.version = FORMAT_VERSION

    def fail(self, where: str, what: str) -> BitsnnError:
        return BitsnnError(f"{self.path}: {where}: {what}")

    def get(self, group: h5py.Group, key: str, where: str):
        if key not in group:
            raise self.fail(where, f"missing required key '{key}'")
        value = group[key][()]
        return value.decode() if isinstance(value, bytes) else value

    def integer(self, group: h5py.Group, key: str, where: str, low: int = 0) -> int:
        value = self.get(group, key, where)
        if not np.issubdtype(np.asarray(value).dtype, np.integer) or np.ndim(value) or value < low:
            raise self.fail(where, f"'{key}' must be an integer >= {low}, got {value!r}")
        return int(value)

    def defaulted(self, group: h5py.Group, key: str, where: str, low: int) -> int:
        """A synapse key that files since version 3 leave out at its default."""
        if key not in group and self.version >= DEFAULTS_SINCE:
            return SYNAPSE_DEFAULTS[key]
        return self.integer(group, key, where, low)

    def array(self, group: h5py.Group, key: str, where: str, integer: bool) -> np.ndarray:
        value = np.asarray(self.get(group, key, where))
        kind = np.integer if integer else np.floating
        if not np.issubdtype(value.dtype, kind):
            raise self.fail(where, f"'{key}' must be {'integer' if integer else 'float'}")
        if not integer and not np.isfinite(value).all():
            raise self.fail(where, f"'{key}' contains NaN or Inf")
        return value.astype(np.int64 if integer else np.float64)

    def synapse(self, group: h5py.Group, where: str, n_layers: int) -> Synapse:
        kind = self.get(group, "type", where)
        if kind not in ("conv", "dense"):
            raise self.fail(where, f"unknown synapse type {kind!r}")
        source = self.integer(group, "source", where)
        if source >= n_layers:
            raise self.fail(where, f"source {source} is not an earlier layer")
        weight_int = self.array(group, "weight", where, integer=True)
        weight = self.array(group, "weight_float", where, integer=False) \
            if self.float_weights else None
        if weight_int.ndim != (4 if kind == "conv" else 2) or (
                weight is not None and weight.shape != weight_int.shape):
            raise self.fail(where, f"weight shapes {weight_int.shape}/"
                                   f"{None if weight is None else weight.shape} do not fit "
                                   f"a {kind} synapse")
        conv = {}
        if kind == "conv":
            conv = {k: self.integer(group, k, where, low=0 if k == "padding" else 1)
                    for k in CONV_KEYS}
            if conv.pop("dilation") != 1:
                raise self.fail(where, "dilation must be 1")
        pool = self.defaulted(group, "pool", where, 1)
        if self.version < POOL_KEYS_SINCE and any(k in group for k in POOL_KEYS):
            raise self.fail(where, f"pool keys of format version {POOL_KEYS_SINCE} in a "
                                   f"version {self.version} file")
        geometry = {k: self.integer(group, k, where, low) if k in group else 0
                    for k, low in (("pool_stride", 1), ("pool_padding", 0))}
        if geometry["pool_padding"] > pool // 2:
            raise self.fail(where, f"pool_padding {geometry['pool_padding']} exceeds half the "
                                   f"window {pool}")
        scale = self.array(group, "pool_scale", where, integer=True) \
            if "pool_scale" in group else None
        if scale is not None and (scale.ndim != 2 or not scale.size or scale.min() < 1):
            raise self.fail(where, "'pool_scale' must be a 2-D array of integers >= 1")
        pool_kind = self.get(group, "pool_kind", where) if "pool_kind" in group else "sum"
        if pool_kind not in POOL_KINDS or (pool_kind == "max" and scale is not None):
            raise self.fail(where, f"'pool_kind' must be one of {', '.join(POOL_KINDS)} (max "
                                   f"without pool_scale), got {pool_kind!r}")
        return Synapse(source, kind, weight, pool=pool,
                       flatten=bool(self.defaulted(group, "flatten", where, 0)),
                       weight_int=weight_int, weight_exp=self.integer(group, "weight_exp", where),
                       pool_scale=scale, pool_kind=pool_kind, **geometry, **conv)

    def layer(self, group: h5py.Group, index: int, encoding: str) -> Layer:
        where = f"layer {index}"
        shape = tuple(int(s) for s in self.array(group, "shape", where, integer=True))
        if not shape or min(shape) < 1:
            raise self.fail(where, f"invalid shape {shape}")
        if "neuron" not in group:
            raise self.fail(where, "missing required key 'neuron'")
        neuron = group["neuron"]
        ntype = self.get(neuron, "type", where + "/neuron")
        name = str(group.attrs.get("name", str(index)))
        if index == 0:
            if self.get(group, "type", where) != "input" or ntype != INPUT_NEURON[encoding]:
                raise self.fail(where, f"layer 0 must be an input with neuron type "
                                       f"{INPUT_NEURON[encoding]}")
            return Layer(name, "input", shape, INPUT_BITS)
        if ntype not in (HIDDEN_NEURON, OUTPUT_NEURON):
            raise self.fail(where, f"unknown neuron type {ntype!r} (not a lava-bitsnn file?)")
        for key in NEURON_KEYS:
            if key not in neuron:
                raise self.fail(where + "/neuron", f"missing required key '{key}'")
        synapses = [self.synapse(group, where, index)]
        if "skip" in group:
            synapses += [self.synapse(group["skip"][k], f"{where}/skip/{k}", index)
                         for k in sorted(group["skip"], key=int)]
        for key in SYNAPSE_KEYS:
            if key not in group:
                raise self.fail(where, f"missing required key '{key}'")
        layer = Layer(name, "neuron" if ntype == HIDDEN_NEURON else "output", shape,
                      self.integer(neuron, "bits", where),
                      float(self.get(neuron, "step", where)), synapses,
                      self.array(neuron, "bias_float", where, integer=False)
                      if self.float_weights else None,
                      self.integer(neuron, "threshold_unit", where, 1),
                      self.array(group, "bias", where, integer=True),
                      self.integer(neuron, "acc_bound", where))
        if ntype == HIDDEN_NEURON and not 1 <= layer.bits <= MAX_BITS:
            raise self.fail(where, f"bits must be 1..{MAX_BITS}, got {layer.bits}")
        if ntype == OUTPUT_NEURON and layer.bits != 0:
            raise self.fail(where, f"the output accumulator has 0 bits, got {layer.bits}")
        if ntype == HIDDEN_NEURON:
            if "max_code" in neuron:  # absent: the full range (the IR's default)
                layer.max_code = self.integer(neuron, "max_code", where, 1)
            if layer.max_code > layer.full_code:
                raise self.fail(where, f"max_code {layer.max_code} does not fit {layer.bits} bits")
        if not layer.step > 0:
            raise self.fail(where, "neuron step must be positive")
        d = layer.threshold_unit
        if d & (d - 1):
            raise self.fail(where, f"threshold_unit {d} is not a power of two")
        if layer.bias is not None and layer.bias_int.shape != layer.bias.shape:
            raise self.fail(where, "bias and bias_float shapes differ")
        return layer


def synapse_output_shape(syn: Synapse, source_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Target shape of a synapse applied to ``source_shape``; ValueError if it does not fit."""
    shape = tuple(source_shape)
    if syn.pooled:
        if len(shape) != 3:
            raise ValueError(f"a pool needs a (C, H, W) source, not {shape}")
        shape = syn.pooled_shape(shape)  # floor mode: windows that do not fit are dropped
        if min(shape[1:]) < 1:
            raise ValueError(f"pool window {syn.pool} is larger than the padded source")
        if syn.pool_scale is not None and syn.pool_scale.shape != shape[1:]:
            raise ValueError(f"pool_scale {syn.pool_scale.shape} does not fit the pooled "
                             f"map {shape[1:]}")
    if syn.flatten:
        shape = (int(np.prod(shape)),)
    w = syn.weight_int
    if syn.kind == "dense":
        if len(shape) != 1 or w.shape[1] != shape[0]:
            raise ValueError(f"dense weight {w.shape} does not take input {shape}")
        return (w.shape[0],)
    if len(shape) != 3 or w.shape[1] * syn.groups != shape[0] or w.shape[0] % syn.groups:
        raise ValueError(f"conv weight {w.shape} with groups {syn.groups} does not take {shape}")
    h, wd = (conv_output_size(n, k, syn.stride, syn.padding)
             for n, k in zip(shape[1:], w.shape[2:], strict=True))
    if h < 1 or wd < 1:
        raise ValueError(f"conv kernel {w.shape[2:]} is larger than the padded input {shape}")
    return (w.shape[0], h, wd)


def _check_shapes(net: Network, reader: _Reader) -> None:
    """Every synapse must map its source's shape onto its layer's shape."""
    for i, layer in enumerate(net.layers[1:], start=1):
        for syn in layer.synapses:
            try:
                out = synapse_output_shape(syn, net.layers[syn.source].shape)
            except ValueError as exc:
                raise reader.fail(f"layer {i}", f"synapse from layer {syn.source}: {exc}") from None
            if out != layer.shape:
                raise reader.fail(f"layer {i}", f"synapse from layer {syn.source} gives shape "
                                  f"{out}, layer declares {layer.shape}")
            if layer.bias_int.shape not in (layer.shape[:1], layer.shape):
                raise reader.fail(f"layer {i}", f"bias shape {layer.bias_int.shape} fits "
                                  f"neither channels nor {layer.shape}")
    if net.layers[-1].kind != "output" or any(x.kind == "output" for x in net.layers[:-1]):
        raise reader.fail("layers", "exactly the last layer must be the output accumulator")


def _check_fixed_point(net: Network, reader: _Reader) -> None:
    """Mantissas on each synapse's grid and the stored accumulator bound, recomputed."""
    from lava_bitsnn.convert.fixed import layer_bound

    for i, layer in enumerate(net.layers[1:], start=1):
        where = f"layer {i}"
        for syn in layer.synapses:
            w, e = syn.weight_int, syn.weight_exp
            if (w & ((1 << e) - 1)).any() or (w >> e).min(initial=0) < MANTISSA_MIN or \
                    (w >> e).max(initial=0) > MANTISSA_MAX:
                raise reader.fail(where, f"weights from layer {syn.source} are not 8-bit "
                                         f"mantissas times 2^{e} (a tampered file?)")
        bound = layer_bound(net, layer)
        if bound != layer.acc_bound:
            raise reader.fail(where, f"acc_bound {layer.acc_bound} differs from {bound}, the "
                                     "bound of its weights and biases (a tampered file?)")
        if bound > ACC_MAX:
            raise reader.fail(where, f"the worst-case accumulator {bound} exceeds 24 bits")


def _file_int(f: h5py.File, key: str, reader: _Reader) -> int:
    value = f.attrs[key]
    if not np.issubdtype(np.asarray(value).dtype, np.integer) or np.ndim(value):
        raise reader.fail("file", f"attribute '{key}' must be an integer, got {value!r}")
    return int(value)


def _file_json(f: h5py.File, key: str, reader: _Reader):
    try:
        return json.loads(f.attrs[key])
    except (TypeError, ValueError):
        raise reader.fail("file", f"attribute '{key}' is not valid JSON") from None


def read_network(path: str | Path) -> Network:
    path = Path(path)
    reader = _Reader(path)
    if not path.is_file():
        raise BitsnnError(f"{path} does not exist")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise BitsnnError(f"{path} is not an HDF5 file (or it is truncated)") from None
    with f:
        missing = [a for a in FILE_ATTRS if a not in f.attrs]
        if f.attrs.get("format") != FORMAT:
            if "layer" in f:
                raise BitsnnError(f"{path} is a netx file not written by lava-bitsnn (plain "
                                  "lava-dl networks run with lava-dl's own netx)")
            raise BitsnnError(f"{path} is not a lava-bitsnn netx file")
        if missing:
            raise reader.fail("file", f"missing attribute(s) {', '.join(missing)}")
        version = _file_int(f, "format_version", reader)
        if version not in FORMAT_VERSIONS:
            raise reader.fail("file", f"format version {version} is newer than this reader's "
                                      f"({FORMAT_VERSION}); update lava-bitsnn"
                              if version > FORMAT_VERSION else
                              f"unknown format version {version}")
        reader.version = version
        encoding = str(f.attrs["encoding"])
        if encoding not in ENCODINGS:
            raise reader.fail("file", f"unknown input encoding {encoding!r}")
        if "layer" not in f or not len(f["layer"]):
            raise reader.fail("file", "missing required group 'layer'")
        try:
            keys = sorted(f["layer"], key=int)
        except ValueError:
            raise reader.fail("file", "layer names must be 0..N-1") from None
        if keys != [str(i) for i in range(len(keys))]:
            raise reader.fail("file", "layer names must be 0..N-1")
        reader.float_weights = bool(f.attrs.get("float_weights", 1))
        layers = [reader.layer(f["layer"][k], int(k), encoding) for k in keys]
        most = max((layer.bits for layer in layers if layer.kind == "neuron"), default=0)
        bits, time_steps = (_file_int(f, key, reader) for key in ("bits", "time_steps"))
        if bits != most or not 1 <= time_steps <= most:
            raise reader.fail("file", f"bits {bits} and time_steps {time_steps} must be the most "
                                      f"bits of any layer ({most}) and 1..{most}")
        net = Network(layers, bits, time_steps, encoding,
                      *(_file_json(f, key, reader) for key in ("class_names", "normalisation",
                                                                "meta")))
    _check_shapes(net, reader)
    _check_fixed_point(net, reader)
    return net
