"""Turn a ReLU-trained model into a QCFS model for fine-tuning (paper A.9).

Every ``nn.ReLU``/``nn.ReLU6`` module becomes ``QCFS(bits)`` (or ``QCFS(max_code=L)``); every
``nn.MaxPool2d`` becomes an ``nn.AvgPool2d`` of the same geometry (``maxpool="avg"``), stays
(``"keep"``: the SNN takes the maximum exactly, bit by bit) or is refused (``"refuse"``).
Functional ReLUs (``F.relu``, ``torch.relu``, ``x.relu()``) are turned into modules first with
``torch.fx`` (the model then comes back as a ``GraphModule``). Thresholds are initialised from
the data: λ is the 99.9th percentile of the positive pre-activations of a
calibration batch, a common conversion heuristic; fine-tuning then learns them.
"""

from __future__ import annotations

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from lava_bitsnn.ann.qcfs import QCFS
from lava_bitsnn.errors import BitsnnError

_RELU_FUNCTIONS = (F.relu, torch.relu, F.relu_, torch.relu_, F.relu6)
_RELU_METHODS = ("relu", "relu_")
MAXPOOL_POLICIES = ("refuse", "avg", "keep")


def maxpool_refusal(path: str, fine_tune_hint: str = "then fine-tune with bitsnn-train --from"
                    ) -> BitsnnError:
    """The error for a MaxPool2d when no ``--maxpool`` policy was chosen."""
    return BitsnnError(f"{path} (MaxPool2d): pass --maxpool keep (the SNN takes the maximum "
                       f"exactly, bit-serially) or --maxpool avg (swap it for AvgPool2d, "
                       f"{fine_tune_hint})")


def maxpool_paths(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, nn.MaxPool2d)]


def _avg_of(m: nn.MaxPool2d) -> nn.AvgPool2d:
    if m.dilation not in (1, (1, 1)) or m.return_indices:
        raise BitsnnError("a MaxPool2d with dilation or return_indices has no AvgPool2d twin")
    return nn.AvgPool2d(m.kernel_size, m.stride, m.padding, ceil_mode=m.ceil_mode)


def swap_maxpool(model: nn.Module) -> list[str]:
    """Every ``nn.MaxPool2d`` becomes ``nn.AvgPool2d`` of the same geometry; returns paths."""
    paths = maxpool_paths(model)
    for parent in list(model.modules()):
        for name, child in list(parent._modules.items()):
            if isinstance(child, nn.MaxPool2d):
                setattr(parent, name, _avg_of(child))
    return paths


def _new_act(bits: int | None, levels: int | None, relu6: bool) -> QCFS:
    act = QCFS(bits, max_code=levels)
    if relu6:
        with torch.no_grad():
            act.threshold.fill_(6.0)
    return act


def functional_relus_to_modules(model: nn.Module) -> nn.Module:
    """If ``forward`` calls ReLU as a function, return a ``GraphModule`` in which each such
    call is an ``nn.ReLU`` submodule (``relu_fn``, ``relu_fn_1``, ...); else ``model``."""

    class Tracer(torch.fx.Tracer):
        def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
            return isinstance(m, QCFS) or super().is_leaf_module(m, qualname)

    try:
        graph = Tracer().trace(model)
    except Exception:  # noqa: BLE001 - untraceable: only module ReLUs can be swapped
        return model
    calls = [n for n in graph.nodes if (n.op == "call_function" and n.target in _RELU_FUNCTIONS)
             or (n.op == "call_method" and n.target in _RELU_METHODS)]
    if not calls:
        return model
    for node in graph.nodes:  # string annotations (PEP 563) would not pickle
        if isinstance(node.type, str):
            node.type = None
    gm = torch.fx.GraphModule(model, graph, class_name=type(model).__name__)
    for i, node in enumerate(calls):
        name = "relu_fn" if i == 0 else f"relu_fn_{i}"
        six = node.op == "call_function" and node.target is F.relu6
        gm.add_submodule(name, nn.ReLU6() if six else nn.ReLU())
        with gm.graph.inserting_after(node):
            new = gm.graph.call_module(name, (node.args[0],))
        node.replace_all_uses_with(new)
        gm.graph.erase_node(node)
    gm.recompile()
    return gm


def _replace_children(module: nn.Module, bits: int | None, levels: int | None,
                      maxpool: bool) -> None:
    done: dict[int, tuple[nn.Module, nn.Module]] = {}  # a shared module stays shared
    for parent in list(module.modules()):
        for name, child in list(parent._modules.items()):  # a shared child at each place
            if child is None:
                continue
            if id(child) in done:
                setattr(parent, name, done[id(child)][1])
            elif isinstance(child, (nn.ReLU, nn.ReLU6)):
                # the original stays referenced, so its id is not reused by a new module
                done[id(child)] = (child, _new_act(bits, levels, isinstance(child, nn.ReLU6)))
                setattr(parent, name, done[id(child)][1])
            elif maxpool and isinstance(child, nn.MaxPool2d):
                setattr(parent, name, _avg_of(child))


@torch.no_grad()
def calibrate_thresholds(model: nn.Module, batch: torch.Tensor, quantile: float = 0.999) -> None:
    """Set each QCFS threshold to a quantile of its positive inputs on ``batch`` (all calls of
    a module used at several places together). During this pass every QCFS acts as the ReLU it
    replaced, so the statistics are the ReLU model's, not those of uncalibrated layers."""
    layers = [m for m in model.modules() if isinstance(m, QCFS)]
    seen: dict[QCFS, list[torch.Tensor]] = {}

    def as_relu(m: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> torch.Tensor:
        seen.setdefault(m, []).append(inp[0].detach().flatten().clone())
        return torch.relu(inp[0])

    hooks = [m.register_forward_hook(as_relu) for m in layers]
    model.eval()
    try:
        out = model(batch)
        del out
    finally:
        for h in hooks:
            h.remove()
    for m in layers:
        if m not in seen:
            continue
        z = torch.cat(seen[m])
        z = z[z > 0]
        if z.numel():
            m.threshold.fill_(max(float(torch.quantile(z.float()[:1_000_000], quantile)), 1e-3))


def relu_to_qcfs(model: nn.Module, bits: int | None = None,
                 calibration: torch.Tensor | None = None, levels: int | None = None,
                 maxpool: str = "avg") -> nn.Module:
    """Swap activations (and, with ``maxpool="avg"``, max-pools) and calibrate thresholds if a
    batch is given. Modules are swapped in place; the model is returned (a ``GraphModule``
    when ``forward`` calls ReLU as a function). ``maxpool="refuse"`` raises on a MaxPool2d;
    ``"keep"`` keeps it."""
    if maxpool not in MAXPOOL_POLICIES:
        raise BitsnnError(f"--maxpool must be one of {', '.join(MAXPOOL_POLICIES)}")
    if maxpool == "refuse" and (paths := maxpool_paths(model)):
        raise maxpool_refusal(paths[0], "before fine-tuning")
    if bits is None and levels is None:
        raise BitsnnError("give the QCFS bits (--bits B) or levels (--levels L)")
    model = functional_relus_to_modules(model)
    _replace_children(model, bits, levels, maxpool == "avg")
    if calibration is not None:
        calibrate_thresholds(model, calibration)
    return model
