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
import torch.nn.functional as F
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from lava_bitsnn.ann.qcfs import QCFS
from lava_bitsnn.ann.zoo import ResidualBlock
from lava_bitsnn.convert.synapse_ops import apply_synapse
from lava_bitsnn.core.ir import INPUT_BITS, PIXEL_MAX, Layer, Synapse
from lava_bitsnn.errors import BitsnnError

SUPPORTED = ("supported are Conv2d, Linear, BatchNorm, AvgPool2d, AdaptiveAvgPool2d, MaxPool2d, "
             "Flatten, Dropout, Identity, QCFS (and the adapted MyFloor / IF) and residual adds")
_RELU_HINT = ("replace ReLU with QCFS and fine-tune (bitsnn-train --from MODEL --bits B; in "
              "Python lava_bitsnn.ann.relu_to_qcfs)")
_HINTS = {
    nn.ReLU: _RELU_HINT,
    nn.ReLU6: _RELU_HINT.replace("ReLU", "ReLU6", 1),
}
_RELU_FUNCTIONS = (F.relu, torch.relu, F.relu_, torch.relu_, F.relu6)
_DROPOUT_FUNCTIONS = (F.dropout, F.dropout1d, F.dropout2d, F.alpha_dropout, torch.dropout)
_IDENTITY_METHODS = ("contiguous", "clone", "detach")


_SUPPORTED_TYPES = (nn.Identity, nn.Dropout, nn.Conv2d, nn.Linear, nn.BatchNorm1d,
                    nn.BatchNorm2d, QCFS, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.MaxPool2d,
                    nn.Flatten)


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
    # pools that are not k×k / stride k (or follow one): average-pool modules applied in turn
    # to the unpooled map; they fold into a following Flatten + Linear as a dense matrix, or
    # (one AvgPool2d) become the sum-pool stage of the next synapse (``_pool_stage``)
    general: tuple[nn.Module, ...] = ()
    pool_stride: int = 0  # the sum-pool stage of a general pool (see Synapse)
    pool_padding: int = 0
    pool_scale: tuple[tuple[int, ...], ...] | None = None
    pool_divisor: int = 0  # the average's divisor in the weights (0: pool²)
    pool_kind: str = "sum"  # "max": a MaxPool2d, taken bit-serially by the next synapse

    @property
    def divisor(self) -> int:
        return self.pool_divisor or self.pool ** 2


class _Batch:
    """The batch size (``x.size(0)``, ``x.shape[0]``) as used in ``x.view(x.size(0), -1)``."""


class _Shape:
    """``x.shape``: only its first entry (the batch size) may be used."""


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


def _as_affine(value, path: str, source_shape: tuple[int, ...]) -> _Affine:
    if isinstance(value, _Affine):
        return value
    if isinstance(value, _Spikes) and value.general and not value.flatten:
        value = _pool_stage(value, source_shape, path)
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
        self.calls: dict[str, int] = {}  # QCFS module path → calls so far (shared modules)

    def spikes_arg(self, value, path: str) -> _Spikes:
        if not isinstance(value, _Spikes):
            raise BitsnnError(f"{path}: expects the output of a QCFS activation (or the input); "
                              "two synaptic layers in a row without an activation are not "
                              "supported")
        return value

    def module(self, path: str, m: nn.Module, x, out_shape: tuple[int, ...]):
        if isinstance(m, (nn.Identity, nn.Dropout)):
            return x
        if isinstance(m, (nn.Conv2d, nn.Linear)) and isinstance(x, _Affine):
            return self.compose(path, m, x, out_shape)
        if isinstance(m, nn.Conv2d):
            src = self.spikes_arg(x, path)
            if src.general:
                src = _pool_stage(src, self.layers[src.layer]["shape"], path)
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
            weight = m.weight.detach().double()
            if src.general:
                src, weight = _fold_general_pools(src, weight, self.layers[src.layer]["shape"])
            return _Affine([_Term(src, "dense", weight)], bias, out_shape)
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            return self.batchnorm(path, m, x)
        if isinstance(m, QCFS):
            return self.neuron(path, m, self.affine(x, path), out_shape)
        if isinstance(m, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
            return self.pool(path, m, self.spikes_arg(x, path), out_shape)
        if isinstance(m, nn.MaxPool2d):
            return self.max_pool(path, m, self.spikes_arg(x, path), out_shape)
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
        if src.flatten or len(src.shape) != 3:
            raise BitsnnError(f"{path}: pooling after flatten is not supported")
        c, h, w = src.shape
        if tuple(out_shape[-2:]) == (h, w) and isinstance(m, nn.AdaptiveAvgPool2d):
            return src  # the identity
        if src.pool_kind == "max":
            raise BitsnnError(f"{path}: an average pool right after a max-pool is not "
                              "supported")
        k = _simple_pool(m, h, w)
        if k and not src.general:
            return _Spikes(src.layer, (c, h // k, w // k), src.pool * k)
        general = src.general
        if src.pool > 1:  # the earlier k×k pool joins the general ones
            general = (nn.AvgPool2d(src.pool),) + general
        return _Spikes(src.layer, tuple(int(d) for d in out_shape), 1, False, general + (m,))

    def max_pool(self, path: str, m: nn.MaxPool2d, src: _Spikes, out_shape: tuple[int, ...]
                 ) -> _Spikes:
        """A MaxPool2d: the next synapse takes its window maxima bit by bit (exact: codes
        arrive MSB first; ``dynamics.max_pool_bits``)."""
        if src.flatten or len(src.shape) != 3:
            raise BitsnnError(f"{path}: pooling after flatten is not supported")
        if src.pool > 1 or src.general or src.pool_kind == "max":
            raise BitsnnError(f"{path}: a max-pool right after another pool is not supported")
        if m.ceil_mode or m.return_indices or _single(m.dilation, "dilation", path) != 1:
            raise BitsnnError(f"{path}: a MaxPool2d with ceil_mode, return_indices or "
                              "dilation is not supported")
        k, stride, padding = _window(m, path)
        return _Spikes(src.layer, tuple(int(d) for d in out_shape), k, False, (), stride,
                       padding, None, 1, "max")

    def flatten(self, path: str, x, out_shape: tuple[int, ...]) -> _Spikes:
        src = self.spikes_arg(x, path)
        if src.flatten:
            return src
        return replace(src, shape=(int(np.prod(src.shape)),), flatten=True)

    def compose(self, path: str, m: nn.Module, x: _Affine, out_shape: tuple[int, ...]
                ) -> _Affine:
        """A 1×1 convolution (or a Linear) applied to a pending affine map, as in
        MobileNetV2's projection → next block: both maps multiply into one."""
        weight = m.weight.detach().double()
        bias = m.bias.detach().double() if m.bias is not None else torch.zeros(
            weight.shape[0], dtype=torch.float64)
        if isinstance(m, nn.Conv2d):
            if (weight.shape[2:] != (1, 1) or _single(m.stride, "stride", path) != 1 or
                    _single(m.padding, "padding", path) != 0 or m.groups != 1 or
                    any(t.kind != "conv" for t in x.terms)):
                raise BitsnnError(f"{path}: two synaptic layers in a row without an activation "
                                  "are supported only when the second is a 1x1 convolution "
                                  "(stride 1, no padding, no groups) or a Linear")
            mix = weight[:, :, 0, 0]
            terms = [replace(t, weight=torch.einsum("om,mcij->ocij", mix, _full_weight(t)),
                             groups=1) for t in x.terms]
        else:
            if any(t.kind != "dense" for t in x.terms):
                raise BitsnnError(f"{path}: Linear after a convolution without an activation "
                                  "is not supported")
            mix = weight
            terms = [replace(t, weight=mix @ t.weight) for t in x.terms]
        return _Affine(terms, mix @ x.bias + bias, out_shape)

    def affine(self, value, path: str) -> _Affine:
        """``value`` as an affine map (spikes: through an identity synapse)."""
        shape = self.layers[value.layer]["shape"] if isinstance(value, _Spikes) else ()
        return _as_affine(value, path, shape)

    def add(self, path: str, a, b) -> _Affine:
        x, y = self.affine(a, path), self.affine(b, path)
        if x.shape != y.shape:
            raise BitsnnError(f"{path}: residual add of shapes {x.shape} and {y.shape}")
        return _Affine(x.terms + y.terms, x.bias + y.bias, x.shape)

    def neuron(self, path: str, m: QCFS, x: _Affine, out_shape: tuple[int, ...]) -> _Spikes:
        self.calls[path] = self.calls.get(path, 0) + 1
        name = call_name(path, self.calls[path] - 1)
        self.layers.append({"name": name, "affine": x, "qcfs": m, "shape": out_shape})
        return _Spikes(len(self.layers) - 1, out_shape)

    def output(self, value) -> None:
        if not isinstance(value, _Affine):
            raise BitsnnError("the model must end in a Linear or Conv2d without activation "
                              "(the accumulate-only output layer)")
        self.layers.append({"name": "output", "affine": value, "shape": value.shape})


def call_name(path: str, call: int) -> str:
    """Layer name of the ``call``-th (0-based) use of an activation module: ``path``, then
    ``path#2``, ``path#3``, ... for a module used at several places."""
    return path if call == 0 else f"{path}#{call + 1}"


def _simple_pool(m: nn.Module, h: int, w: int) -> int:
    """k when ``m`` is a k×k average pool with stride k that tiles the map, else 0."""
    if isinstance(m, nn.AdaptiveAvgPool2d):
        size = m.output_size if isinstance(m.output_size, tuple) else (m.output_size,) * 2
        return h if tuple(size) == (1, 1) and h == w else 0
    kernel = m.kernel_size if isinstance(m.kernel_size, tuple) else (m.kernel_size,) * 2
    stride = m.stride if m.stride is not None else kernel
    stride = stride if isinstance(stride, tuple) else (stride,) * 2
    padding = m.padding if isinstance(m.padding, tuple) else (m.padding,) * 2
    k = kernel[0]
    if (len(set(kernel + stride)) != 1 or padding != (0, 0) or m.ceil_mode or h % k or w % k
            or m.divisor_override is not None):
        return 0
    return k


def _full_weight(term: _Term) -> torch.Tensor:
    """A conv term's weight with its groups expanded to a dense (O, C, kh, kw) kernel."""
    w = term.weight
    if term.groups == 1:
        return w
    out_ch, per_group = w.shape[:2]
    full = torch.zeros(out_ch, per_group * term.groups, *w.shape[2:], dtype=w.dtype)
    per_out = out_ch // term.groups
    for g in range(term.groups):
        full[g * per_out:(g + 1) * per_out, g * per_group:(g + 1) * per_group] = \
            w[g * per_out:(g + 1) * per_out]
    return full


@torch.no_grad()
def _fold_general_pools(src: _Spikes, weight: torch.Tensor, source_shape: tuple[int, ...]
                        ) -> tuple[_Spikes, torch.Tensor]:
    """Flatten + Linear after general average pools: the pools are one linear map per channel
    (applied by the pool modules themselves to the unit maps), multiplied into the weight."""
    c, h, w = source_shape
    maps = torch.eye(h * w, dtype=torch.float64).reshape(h * w, 1, h, w)
    for m in src.general:
        maps = m(maps)
    pooled = maps.reshape(h * w, -1)  # [source pixel, pooled pixel]
    out = weight.shape[0]
    folded = (weight.reshape(out, c, pooled.shape[1]) @ pooled.T).reshape(out, c * h * w)
    return _Spikes(src.layer, (c * h * w,), 1, True), folded


def _window(m: nn.Module, path: str) -> tuple[int, int, int]:
    """(window, stride, padding) of a square pooling module."""
    k = _single(m.kernel_size, "pool window", path)
    stride = _single(m.stride if m.stride is not None else k, "pool stride", path)
    return k, stride, _single(m.padding, "pool padding", path)


@torch.no_grad()
def _pool_stage(src: _Spikes, source_shape: tuple[int, ...], path: str) -> _Spikes:
    """One AvgPool2d of any window, stride, padding and ``count_include_pad`` (or
    ``divisor_override``) before a convolution: the window sums become the synapse's sum-pool
    stage, the divisors torch uses (read off the module itself, on a map of ones) go into the
    weights, where they differ by position as 1/lcm with ``pool_scale`` = lcm/divisor."""
    m = src.general[0]
    if len(src.general) != 1 or not isinstance(m, nn.AvgPool2d):
        raise BitsnnError(f"{path}: a convolution after two average pools in a row, or after "
                          "a non-global adaptive pool, is not supported")
    if m.ceil_mode:
        raise BitsnnError(f"{path}: an average pool with ceil_mode=True before a convolution "
                          "is not supported")
    k, stride, padding = _window(m, path)
    ones = torch.ones(1, 1, *source_shape[1:], dtype=torch.float64)
    sums = F.avg_pool2d(ones, k, stride, padding, divisor_override=1)[0, 0]
    divisors = torch.round(sums / m(ones)[0, 0]).long()
    values = sorted(set(divisors.flatten().tolist()))
    common = math.lcm(*values)
    scale = None if len(values) == 1 else tuple(
        tuple(int(v) for v in row) for row in (common // divisors).tolist())
    return _Spikes(src.layer, src.shape, k, False, (), stride, padding, scale, common)


def _function_pool(node: torch.fx.Node, args: list) -> nn.Module:
    """The module twin of ``F.avg_pool2d`` / ``F.adaptive_avg_pool2d`` with the node's args."""
    kwargs = dict(node.kwargs)
    if node.target is F.adaptive_avg_pool2d:
        return nn.AdaptiveAvgPool2d(*args[1:], **kwargs)
    names = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
             "divisor_override")
    kwargs.update(zip(names, args[1:], strict=False))
    if not kwargs.get("stride"):
        kwargs["stride"] = None
    return nn.AvgPool2d(**kwargs)


def _needed(graph: torch.fx.Graph) -> set[torch.fx.Node]:
    """The nodes the model's (first) output depends on."""
    out = next(n for n in graph.nodes if n.op == "output")
    todo, seen = [_first_output(out)], {out}
    while todo:
        node = todo.pop()
        if isinstance(node, torch.fx.Node) and node not in seen:
            seen.add(node)
            todo.extend(node.all_input_nodes)
    return seen


def _first_output(out: torch.fx.Node):
    """``forward`` may return (output, auxiliary loss, ...): the first element is the output."""
    value = out.args[0]
    while isinstance(value, (tuple, list)):
        value = value[0]
    return value


def _is_flatten_view(args: list) -> bool:
    """``x.view(x.size(0), -1)`` / ``x.reshape(N, -1)`` / ``x.view(-1, n)``."""
    rest = args[1:]
    if len(rest) == 1 and isinstance(rest[0], (tuple, list)):
        rest = list(rest[0])
    if len(rest) != 2 or not isinstance(args[0], _Spikes):
        return False
    size = int(np.prod(args[0].shape))
    return (isinstance(rest[0], _Batch) and rest[1] in (-1, size)) or (
        rest[0] == -1 and rest[1] == size)


def _function(builder: _Builder, node: torch.fx.Node, args: list, shape: tuple[int, ...]):
    """A call_function / call_method node."""
    fn, name = node.target, node.name
    method = node.op == "call_method"
    if (not method and fn in (operator.add, operator.iadd, torch.add)) or (
            method and fn in ("add", "add_", "__add__", "__iadd__")):
        if node.kwargs.get("alpha", 1) != 1 or len(args) != 2:
            raise BitsnnError(f"unsupported operation {name}: add with alpha")
        return builder.add(name, args[0], args[1])
    if (not method and fn is torch.flatten) or (method and fn == "flatten"):
        start = args[1] if len(args) > 1 else node.kwargs.get("start_dim", 0 if not method
                                                               else 0)
        end = args[2] if len(args) > 2 else node.kwargs.get("end_dim", -1)
        if start == 1 and end == -1:
            return builder.flatten(name, args[0], shape)
        raise BitsnnError(f"unsupported operation {name}: only flatten(x, 1) is supported")
    if method and fn in ("view", "reshape") and _is_flatten_view(args):
        return builder.flatten(name, args[0], shape)
    if method and fn == "size" and args[1:] in ([0], [-4]):
        return _Batch()
    if not method and fn is getattr and args[1] == "shape":
        return _Shape()
    if not method and fn is operator.getitem and isinstance(args[0], _Shape) and args[1] == 0:
        return _Batch()
    if (not method and fn in _DROPOUT_FUNCTIONS) or (method and fn in _IDENTITY_METHODS):
        return args[0]
    if not method and fn in (F.avg_pool2d, F.adaptive_avg_pool2d):
        return builder.pool(name, _function_pool(node, args), builder.spikes_arg(args[0], name),
                            shape)
    if (not method and fn in _RELU_FUNCTIONS) or (method and fn in ("relu", "relu_")):
        raise BitsnnError(f"unsupported operation {name} (a functional ReLU): {_RELU_HINT}")
    if not method and fn in (F.max_pool2d, torch.max_pool2d):
        names = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
        kwargs = {**dict(zip(names, args[1:], strict=False)), **node.kwargs}
        if not kwargs.get("stride"):
            kwargs["stride"] = None
        return builder.max_pool(name, nn.MaxPool2d(**kwargs), builder.spikes_arg(args[0], name),
                                shape)
    raise BitsnnError(f"unsupported operation {name} ({node.op} {getattr(fn, '__name__', fn)})")


def _trace(model: nn.Module, input_shape: tuple[int, ...]) -> _Builder:
    try:
        graph = _Leaf().trace(model)
    except Exception as exc:  # noqa: BLE001 - fx raises many types on untraceable code
        raise BitsnnError(f"the model cannot be traced with torch.fx: "
                          f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                          ) from None
    gm = torch.fx.GraphModule(model, graph)
    try:
        ShapeProp(gm).propagate(torch.zeros(1, *input_shape))
    except Exception as exc:  # noqa: BLE001 - any failure means the model does not fit the input
        raise BitsnnError(f"the model does not run on inputs of shape {tuple(input_shape)}: "
                          f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                          ) from None
    builder = _Builder(model, input_shape)
    needed = _needed(graph)
    for node in graph.nodes:  # name an unsupported module before anything else
        if node.op == "call_module" and node in needed:
            _check_module_type(node.target, builder.modules[node.target])
    env: dict[torch.fx.Node, object] = {}
    for node in graph.nodes:
        if node not in needed:
            continue
        shape = tuple(node.meta["tensor_meta"].shape[1:]) if "tensor_meta" in node.meta else ()
        args = [env[a] if isinstance(a, torch.fx.Node) else a for a in node.args]
        if node.op == "placeholder":
            if node is not next(n for n in graph.nodes if n.op == "placeholder"):
                raise BitsnnError(f"forward argument {node.target!r} has no value: give it with "
                                  "--forward-kwargs JSON")
            env[node] = _Spikes(0, tuple(input_shape))
        elif node.op == "call_module":
            env[node] = builder.module(node.target, builder.modules[node.target], args[0], shape)
        elif node.op in ("call_function", "call_method"):
            env[node] = _function(builder, node, args, shape)
        elif node.op == "output":
            builder.output(env[_first_output(node)])
        else:
            raise BitsnnError(f"unsupported operation {node.name} ({node.op} {node.target})")
    return builder


def _term_synapse(term: _Term, unit: torch.Tensor) -> Synapse:
    """IR synapse of a term: weight per unit of source code (``unit`` = activation per code,
    one value or one per source channel), 1/pool² folded in."""
    w = term.weight
    if unit.numel() == 1:
        w = w * unit
    elif term.kind == "dense":  # dense over a (CHW-flattened) input
        w = w * unit.repeat_interleave(w.shape[1] // unit.numel()).view(1, -1)
    else:  # conv: input channel of weight[o, j] is (o // (O/g)) · (C/g) + j
        out_ch, per_group = w.shape[0], w.shape[1]
        idx = (torch.arange(out_ch) // (out_ch // term.groups))[:, None] * per_group + \
            torch.arange(per_group)[None, :]
        w = w * unit[idx].view(out_ch, per_group, 1, 1)
    src = term.src
    scale = None if src.pool_scale is None else np.array(src.pool_scale, dtype=np.int64)
    return Synapse(src.layer, term.kind, (w / float(src.divisor)).numpy(), term.stride,
                   term.padding, term.groups, src.pool, src.flatten, pool_stride=src.pool_stride,
                   pool_padding=src.pool_padding, pool_scale=scale, pool_kind=src.pool_kind)


def _input_bias(term: _Term, source_shape: tuple[int, ...], mean: torch.Tensor,
                std: torch.Tensor, out_shape: tuple[int, ...]) -> torch.Tensor:
    """Bias map from folding ``−mean/std`` through the term (exact at zero-padded borders)."""
    const = (mean / std).view(1, -1, 1, 1).expand(1, *source_shape)
    syn = _term_synapse(term, torch.ones(1, dtype=torch.float64))
    return -apply_synapse(syn, const, torch.from_numpy(syn.weight))[0].reshape(out_shape)


def _per_channel_step(qcfs: QCFS, name: str, channels: int) -> torch.Tensor | None:
    """Δ per channel of a channel-wise QCFS (None for one threshold per layer)."""
    step = qcfs.step().detach().double()
    if step.numel() == 1:
        return None
    if step.numel() != channels:
        raise BitsnnError(f"{name}: {step.numel()} channel-wise thresholds for {channels} "
                          "channels")
    return step.flatten()


def trace_model(model: nn.Module, input_shape: tuple[int, ...], mean: list[float],
                std: list[float]) -> list[Layer]:
    """Float IR layers of a QCFS model (fixed-point fields left empty).

    A channel-wise QCFS layer gets ``step`` 1: its per-channel Δ divides the weights and bias
    of its synapses (per output channel) and multiplies the weights that read it (per source
    channel), so the neuron's threshold unit ``D`` stays one power of two."""
    model = model.eval()
    builder = _trace(model, tuple(input_shape))
    layers = [Layer("input", "input", tuple(input_shape), INPUT_BITS)]
    units: list[torch.Tensor] = [torch.ones(1, dtype=torch.float64)]  # activation per code
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
                unit = 1.0 / (PIXEL_MAX * s)  # a pixel code p is the activation p/255/std
                bias = bias.view(-1, *([1] * (len(shape) - 1))) + _input_bias(
                    term, src_layer.shape, m, s, shape)
            else:
                unit = units[term.src.layer]
            synapses.append(_term_synapse(term, unit))
        if qcfs is None:
            layers.append(Layer(spec["name"], "output", shape, 0, 1.0, synapses, bias.numpy()))
            units.append(torch.ones(1, dtype=torch.float64))
            continue
        per_channel = _per_channel_step(qcfs, spec["name"], shape[0])
        if per_channel is None:
            step = float(qcfs.step().detach())
            if not math.isfinite(step) or step <= 0:
                raise BitsnnError(f"{spec['name']}: QCFS threshold must be positive and finite")
            units.append(torch.tensor([step], dtype=torch.float64))
        else:
            if not bool(torch.isfinite(per_channel).all() and (per_channel > 0).all()):
                raise BitsnnError(f"{spec['name']}: QCFS thresholds must be positive and finite")
            inv = (1.0 / per_channel).numpy()
            for syn in synapses:
                syn.weight = syn.weight * inv.reshape(-1, *([1] * (syn.weight.ndim - 1)))
            bias = bias * torch.from_numpy(inv).view(-1, *([1] * (bias.dim() - 1)))
            step = 1.0
            units.append(per_channel)
        layers.append(Layer(spec["name"], "neuron", shape, qcfs.bits, step, synapses,
                            (bias + step / 2).numpy(), max_code=qcfs.max_code))
    return layers
