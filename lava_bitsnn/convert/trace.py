"""Trace a QCFS PyTorch model into the IR (float part): BN folding, pool folding, residual
adds, input normalisation folded into layer 1, QCFS half-step folded into the bias.

The model is traced with ``torch.fx``; every value in the graph is either the spikes of a
neuron layer (``_Spikes``, possibly sum-pooled / flattened) or a pending affine map of such
spikes (``_Affine``: the synaptic terms plus a per-channel bias). A QCFS module turns an
``_Affine`` into a new neuron layer; the model's return value becomes the output layer.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.fx
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from lava_bitsnn.ann.qcfs import QCFS
from lava_bitsnn.ann.zoo import ResidualBlock
from lava_bitsnn.convert.synapse_ops import apply_synapse
from lava_bitsnn.core.ir import INPUT_BITS, Layer, Synapse
from lava_bitsnn.errors import BitsnnError

SUPPORTED = ("supported are Conv2d, Linear, BatchNorm, AvgPool2d, Flatten, QCFS and residual "
             "adds")
_HINTS = {
    nn.MaxPool2d: "max-pooling has no exact spiking form: replace it with AvgPool2d "
                  "(lava_bitsnn.ann.relu_to_qcfs) and fine-tune",
    nn.ReLU: "replace ReLU with QCFS (lava_bitsnn.ann.relu_to_qcfs) and fine-tune",
    nn.ReLU6: "replace ReLU6 with QCFS (lava_bitsnn.ann.relu_to_qcfs) and fine-tune",
}


_SUPPORTED_TYPES = (nn.Identity, nn.Dropout, nn.Conv2d, nn.Linear, nn.BatchNorm1d,
                    nn.BatchNorm2d, QCFS, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Flatten)


def _check_module_type(path: str, m: nn.Module) -> None:
    if not isinstance(m, _SUPPORTED_TYPES):
        hint = next((h for t, h in _HINTS.items() if isinstance(m, t)), None)
        raise BitsnnError(f"unsupported module {path} ({type(m).__name__}): "
                          f"{hint or SUPPORTED}")


@dataclass(frozen=True)
class _Spikes:
    layer: int
    shape: tuple[int, ...]  # shape after pooling/flatten
    pool: int = 1
    flatten: bool = False


@dataclass
class _Term:
    src: _Spikes
    kind: str
    weight: torch.Tensor  # float64, per unit of source *activation*
    stride: int = 1
    padding: int = 0
    groups: int = 1


@dataclass
class _Affine:
    terms: list[_Term]
    bias: torch.Tensor  # float64 (channels,)
    shape: tuple[int, ...]


class _Leaf(torch.fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, ResidualBlock):
            return False
        return super().is_leaf_module(m, qualname) or isinstance(m, QCFS)


def _single(value, what: str, path: str) -> int:
    values = value if isinstance(value, tuple) else (value,)
    if len(set(values)) != 1:
        raise BitsnnError(f"{path}: asymmetric {what} {value} is not supported")
    return int(values[0])


def _identity(src: _Spikes) -> _Term:
    c = src.shape[0]
    return _Term(src, "conv", torch.ones(c, 1, 1, 1, dtype=torch.float64), groups=c)


def _as_affine(value, path: str) -> _Affine:
    if isinstance(value, _Affine):
        return value
    if isinstance(value, _Spikes):
        if value.flatten:
            n = value.shape[0]
            term = _Term(value, "dense", torch.eye(n, dtype=torch.float64))
            return _Affine([term], torch.zeros(n, dtype=torch.float64), value.shape)
        return _Affine([_identity(value)], torch.zeros(value.shape[0], dtype=torch.float64),
                       value.shape)
    raise BitsnnError(f"{path}: unsupported value in the graph")


class _Builder:
    def __init__(self, model: nn.Module, input_shape: tuple[int, ...]) -> None:
        self.model = model
        self.modules = dict(model.named_modules())
        self.layers: list[dict] = [{"name": "input", "shape": tuple(input_shape)}]

    def spikes_arg(self, value, path: str) -> _Spikes:
        if not isinstance(value, _Spikes):
            raise BitsnnError(f"{path}: expects the output of a QCFS activation (or the input); "
                              "two synaptic layers in a row without an activation are not "
                              "supported")
        return value

    def module(self, path: str, m: nn.Module, x, out_shape: tuple[int, ...]):
        if isinstance(m, (nn.Identity, nn.Dropout)):
            return x
        if isinstance(m, nn.Conv2d):
            src = self.spikes_arg(x, path)
            if m.padding_mode != "zeros" or _single(m.dilation, "dilation", path) != 1:
                raise BitsnnError(f"{path}: only zero padding and dilation 1 are supported")
            if isinstance(m.padding, str):
                raise BitsnnError(f"{path}: string padding {m.padding!r} is not supported")
            bias = m.bias.detach().double() if m.bias is not None else torch.zeros(
                m.out_channels, dtype=torch.float64)
            term = _Term(src, "conv", m.weight.detach().double(), _single(m.stride, "stride", path),
                         _single(m.padding, "padding", path), m.groups)
            return _Affine([term], bias, out_shape)
        if isinstance(m, nn.Linear):
            src = self.spikes_arg(x, path)
            if len(src.shape) != 1:
                raise BitsnnError(f"{path}: Linear needs a flattened input")
            bias = m.bias.detach().double() if m.bias is not None else torch.zeros(
                m.out_features, dtype=torch.float64)
            return _Affine([_Term(src, "dense", m.weight.detach().double())], bias, out_shape)
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            return self.batchnorm(path, m, x)
        if isinstance(m, QCFS):
            return self.neuron(path, m, _as_affine(x, path), out_shape)
        if isinstance(m, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
            return self.pool(path, m, self.spikes_arg(x, path), out_shape)
        if isinstance(m, nn.Flatten):
            return self.flatten(path, x, out_shape)
        _check_module_type(path, m)
        raise AssertionError(f"{path}: module type checked but not handled")

    def batchnorm(self, path: str, m: nn.Module, x) -> _Affine:
        if not isinstance(x, _Affine):
            raise BitsnnError(f"{path}: BatchNorm must follow a Conv2d or Linear")
        if m.running_mean is None or m.running_var is None:
            raise BitsnnError(f"{path}: BatchNorm has no running statistics (missing BN "
                              "statistics); train with track_running_stats=True")
        mean, var = m.running_mean.double(), m.running_var.double()
        gamma = m.weight.detach().double() if m.affine else torch.ones_like(mean)
        beta = m.bias.detach().double() if m.affine else torch.zeros_like(mean)
        scale = gamma / torch.sqrt(var + m.eps)
        terms = [replace(t, weight=t.weight * scale.view(-1, *([1] * (t.weight.dim() - 1))))
                 for t in x.terms]
        return _Affine(terms, beta + scale * (x.bias - mean), x.shape)

    def pool(self, path: str, m: nn.Module, src: _Spikes, out_shape: tuple[int, ...]) -> _Spikes:
        c, h, w = src.shape
        if isinstance(m, nn.AdaptiveAvgPool2d):
            if out_shape[-2:] != (1, 1) or h != w:
                raise BitsnnError(f"{path}: only global AdaptiveAvgPool2d(1) on square maps")
            k = h
        else:
            k = _single(m.kernel_size, "kernel", path)
            stride = _single(m.stride if m.stride is not None else k, "stride", path)
            if stride != k or _single(m.padding, "padding", path) != 0 or m.ceil_mode:
                raise BitsnnError(f"{path}: AvgPool2d must have stride == kernel_size, no padding"
                                  " and ceil_mode=False to fold into the next synapse")
        if h % k or w % k:
            raise BitsnnError(f"{path}: {h}x{w} map is not divisible by pool {k}")
        if src.flatten:
            raise BitsnnError(f"{path}: pooling after flatten is not supported")
        return _Spikes(src.layer, (c, h // k, w // k), src.pool * k)

    def flatten(self, path: str, x, out_shape: tuple[int, ...]) -> _Spikes:
        src = self.spikes_arg(x, path)
        return _Spikes(src.layer, (int(np.prod(src.shape)),), src.pool, True)

    def add(self, path: str, a, b) -> _Affine:
        x, y = _as_affine(a, path), _as_affine(b, path)
        if x.shape != y.shape:
            raise BitsnnError(f"{path}: residual add of shapes {x.shape} and {y.shape}")
        return _Affine(x.terms + y.terms, x.bias + y.bias, x.shape)

    def neuron(self, path: str, m: QCFS, x: _Affine, out_shape: tuple[int, ...]) -> _Spikes:
        self.layers.append({"name": path, "affine": x, "qcfs": m, "shape": out_shape})
        return _Spikes(len(self.layers) - 1, out_shape)

    def output(self, value) -> None:
        if not isinstance(value, _Affine):
            raise BitsnnError("the model must end in a Linear or Conv2d without activation "
                              "(the accumulate-only output layer)")
        self.layers.append({"name": "output", "affine": value, "shape": value.shape})


def _trace(model: nn.Module, input_shape: tuple[int, ...]) -> _Builder:
    try:
        graph = _Leaf().trace(model)
    except Exception as exc:  # noqa: BLE001 - fx raises many types on untraceable code
        raise BitsnnError(f"the model cannot be traced with torch.fx: {exc}") from None
    gm = torch.fx.GraphModule(model, graph)
    try:
        ShapeProp(gm).propagate(torch.zeros(1, *input_shape))
    except Exception as exc:  # noqa: BLE001 - any failure means the model does not fit the input
        raise BitsnnError(f"the model does not run on inputs of shape {tuple(input_shape)}: "
                          f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                          ) from None
    builder = _Builder(model, input_shape)
    for node in graph.nodes:  # name an unsupported module before anything else
        if node.op == "call_module":
            _check_module_type(node.target, builder.modules[node.target])
    env: dict[torch.fx.Node, object] = {}
    for node in graph.nodes:
        shape = tuple(node.meta["tensor_meta"].shape[1:]) if "tensor_meta" in node.meta else ()
        args = [env[a] if isinstance(a, torch.fx.Node) else a for a in node.args]
        if node.op == "placeholder":
            env[node] = _Spikes(0, tuple(input_shape))
        elif node.op == "call_module":
            env[node] = builder.module(node.target, builder.modules[node.target], args[0], shape)
        elif node.op == "call_function" and node.target in (operator.add, torch.add):
            env[node] = builder.add(node.name, args[0], args[1])
        elif node.op == "call_function" and node.target is torch.flatten and args[1:] == [1]:
            env[node] = builder.flatten(node.name, args[0], shape)
        elif node.op == "call_method" and node.target == "flatten" and args[1:] == [1]:
            env[node] = builder.flatten(node.name, args[0], shape)
        elif node.op == "output":
            builder.output(args[0])
        else:
            raise BitsnnError(f"unsupported operation {node.name} ({node.op} {node.target})")
    return builder


def _term_synapse(term: _Term, unit: torch.Tensor) -> Synapse:
    """IR synapse of a term: weight per unit of source code (``unit`` = activation per code,
    one value or one per source channel), 1/pool² folded in."""
    w = term.weight
    if unit.numel() == 1:
        w = w * unit
    elif term.src.flatten:  # dense over a CHW-flattened input
        w = w * unit.repeat_interleave(w.shape[1] // unit.numel()).view(1, -1)
    else:  # conv: input channel of weight[o, j] is (o // (O/g)) · (C/g) + j
        out_ch, per_group = w.shape[0], w.shape[1]
        idx = (torch.arange(out_ch) // (out_ch // term.groups))[:, None] * per_group + \
            torch.arange(per_group)[None, :]
        w = w * unit[idx].view(out_ch, per_group, 1, 1)
    return Synapse(term.src.layer, term.kind, (w / float(term.src.pool ** 2)).numpy(),
                   term.stride, term.padding, term.groups, term.src.pool, term.src.flatten)


def _input_bias(term: _Term, source_shape: tuple[int, ...], mean: torch.Tensor,
                std: torch.Tensor, out_shape: tuple[int, ...]) -> torch.Tensor:
    """Bias map from folding ``−mean/std`` through the term (exact at zero-padded borders)."""
    const = (mean / std).view(1, -1, 1, 1).expand(1, *source_shape)
    syn = _term_synapse(term, torch.ones(1, dtype=torch.float64))
    return -apply_synapse(syn, const, torch.from_numpy(syn.weight))[0].reshape(out_shape)


def trace_model(model: nn.Module, input_shape: tuple[int, ...], mean: list[float],
                std: list[float]) -> list[Layer]:
    """Float IR layers of a QCFS model (fixed-point fields left empty)."""
    model = model.eval()
    builder = _trace(model, tuple(input_shape))
    layers = [Layer("input", "input", tuple(input_shape), INPUT_BITS)]
    m = torch.tensor(mean, dtype=torch.float64)
    s = torch.tensor(std, dtype=torch.float64)
    for spec in builder.layers[1:]:
        qcfs: QCFS | None = spec.get("qcfs")
        affine: _Affine = spec["affine"]
        shape = tuple(int(d) for d in spec["shape"])
        bias = affine.bias.clone()
        synapses = []
        for term in affine.terms:
            src_layer = layers[term.src.layer]
            if src_layer.kind == "input":
                unit = 1.0 / (255.0 * s)  # a pixel code p is the activation p/255/std
                bias = bias.view(-1, *([1] * (len(shape) - 1))) + _input_bias(
                    term, src_layer.shape, m, s, shape)
            else:
                unit = torch.tensor([src_layer.step], dtype=torch.float64)
            synapses.append(_term_synapse(term, unit))
        if qcfs is not None:
            step = float(qcfs.step().detach())
            if not math.isfinite(step) or step <= 0:
                raise BitsnnError(f"{spec['name']}: QCFS threshold must be positive and finite")
            layers.append(Layer(spec["name"], "neuron", shape, qcfs.bits, step, synapses,
                                (bias + step / 2).numpy()))
        else:
            layers.append(Layer(spec["name"], "output", shape, 0, 1.0, synapses, bias.numpy()))
    return layers
