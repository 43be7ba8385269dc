"""Activation adapters: other codes' QCFS modules become ``lava_bitsnn.ann.QCFS`` with an
identical forward (bit for bit), so tracing, verification and fine-tuning see only QCFS.

Recognised families (docs/adapters.md):

* ``qcfs`` — ours, ``lava_bitsnn.ann.QCFS``;
* ``myfloor`` — class ``MyFloor`` with a Parameter ``up`` (shape [1], or channel-wise
  (1, C, 1, 1) / (1, C)) and, in the QCFS reference code v1, an int attribute ``t`` = L:
  ``clamp(floor((x/up)·t + ½)/t, 0, 1)·up`` (also the "SNN meets ANN" code);
* ``if`` — class ``IF`` with a Parameter ``thresh`` and attributes ``L`` and ``T`` (QCFS
  reference code v2; ``T == 0`` is its ANN mode, the one converted; ``T > 0``, its SNN
  mode, is refused):
  ``floor(clamp(x/thresh, 0, 1)·L + ½)/L·thresh``.

L comes from the module's own ``t``/``L``, else from ``levels`` (``--levels``); the two must
agree. Any other leaf module holding a learnable threshold is refused with its path.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lava_bitsnn.ann.qcfs import QCFS, bits_for_levels
from lava_bitsnn.errors import BitsnnError

_THRESHOLD_NAMES = {"up", "thresh", "threshold", "alpha", "clip", "clip_val", "act_alpha",
                    "lam", "lamb", "lambda_", "v_th", "vth", "theta", "scale"}
_PLAIN = (nn.Conv1d, nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm,
          nn.GroupNorm, nn.Embedding, nn.RNNBase, nn.PReLU)


@dataclass
class Activation:
    path: str
    family: str  # qcfs | myfloor | if
    levels: int
    channels: int  # 1: layer-wise threshold, C: channel-wise


def check_levels(levels: int | None) -> int | None:
    if levels is None:
        return None
    try:
        bits_for_levels(levels)
    except ValueError as exc:
        raise BitsnnError(f"--levels: {exc}") from None
    return levels


def _own_levels(path: str, m: nn.Module, attr: str, levels: int | None, family: str) -> int:
    own = getattr(m, attr, None)
    if isinstance(own, torch.Tensor) and own.numel() == 1:
        own = own.item()
    if own is not None and (isinstance(own, bool) or not float(own).is_integer()):
        raise BitsnnError(f"{path} ({type(m).__name__}): its {attr}={own!r} is not an integer "
                          "number of levels")
    own = None if own is None else int(own)
    if own is not None and levels is not None and own != levels:
        raise BitsnnError(f"--levels {levels} disagrees with {path} ({type(m).__name__}), whose "
                          f"{attr} is {own}: drop --levels or fix the model")
    chosen = own if own is not None else levels
    if chosen is None:
        raise BitsnnError(f"{path} ({type(m).__name__}, {family}) does not store its number of "
                          "levels L: add --levels L")
    try:
        bits_for_levels(chosen)
    except ValueError as exc:
        raise BitsnnError(f"{path}: {exc}") from None
    return chosen


def _threshold(path: str, m: nn.Module, name: str) -> torch.Tensor:
    value = getattr(m, name, None)
    if not isinstance(value, torch.Tensor):
        raise BitsnnError(f"{path} ({type(m).__name__}) has no threshold tensor {name!r}")
    shape = tuple(value.shape)
    if not (value.numel() == 1 or (len(shape) == 4 and shape[0] == 1 and shape[2:] == (1, 1))
            or (len(shape) == 2 and shape[0] == 1)):
        raise BitsnnError(f"{path}: threshold {name} of shape {list(shape)} is neither one value "
                          "nor channel-wise (1, C, 1, 1) / (1, C)")
    if not bool(torch.all(value > 0)) or not bool(torch.isfinite(value).all()):
        raise BitsnnError(f"{path}: threshold {name} must be positive and finite")
    return value.detach().clone()


def _adapt(path: str, m: nn.Module, levels: int | None) -> tuple[QCFS, Activation] | None:
    name = type(m).__name__
    if isinstance(m, QCFS):
        if levels is not None and levels != m.max_code:
            raise BitsnnError(f"--levels {levels} disagrees with {path} (QCFS), which has "
                              f"{m.max_code} levels: drop --levels")
        return m, Activation(path, "qcfs", m.max_code, m.threshold.numel())
    if name == "MyFloor" and isinstance(getattr(m, "up", None), nn.Parameter):
        lv = _own_levels(path, m, "t", levels, "myfloor")
        new = QCFS(max_code=lv, threshold=_threshold(path, m, "up"), form="myfloor")
        new.t = lv
        return new, Activation(path, "myfloor", lv, new.threshold.numel())
    if name == "IF" and isinstance(getattr(m, "thresh", None), nn.Parameter):
        t = getattr(m, "T", 0)
        if isinstance(t, torch.Tensor) and t.numel() == 1:
            t = t.item()
        if t is None or isinstance(t, bool) or not isinstance(t, (int, float)) or t != 0:
            raise BitsnnError(f"{path} (IF) has T={t!r}, its SNN mode: only the ANN mode is "
                              "converted; set T = 0 on every IF module before saving the model")
        lv = _own_levels(path, m, "L", levels, "if")
        new = QCFS(max_code=lv, threshold=_threshold(path, m, "thresh"), form="if")
        new.L, new.T = lv, 0  # converted as the ANN (T == 0)
        return new, Activation(path, "if", lv, new.threshold.numel())
    if name in ("MyFloor", "IF"):
        raise BitsnnError(f"{path} ({name}) does not have the layout of a known QCFS code "
                          f"(MyFloor: Parameter up, int t; IF: Parameter thresh, L, T); see "
                          "docs/adapters.md")
    own = dict(m.named_parameters(recurse=False))
    if (own and not list(m.children()) and not isinstance(m, _PLAIN)
            and (set(own) & _THRESHOLD_NAMES or any(p.numel() == 1 for p in own.values()))):
        raise BitsnnError(
            f"unknown activation module {path} ({name}) with a learnable threshold "
            f"({', '.join(own)}): replace it by lava_bitsnn.ann.QCFS(max_code=L, threshold=λ, "
            "form=...) with the same forward, or see docs/adapters.md")
    return None


def adapt_activations(model: nn.Module, levels: int | None = None) -> tuple[nn.Module,
                                                                            list[Activation]]:
    """Replace every recognised activation by an equivalent QCFS (in place; a module used at
    several places stays one shared module). Returns the model and what was found."""
    check_levels(levels)
    seen: dict[int, tuple[QCFS, Activation]] = {}
    originals: list[nn.Module] = []  # kept alive: a freed module's id could be reused
    for parent_path, parent in list(model.named_modules()):
        for child_name, child in list(parent._modules.items()):  # shared ones too
            if child is None:
                continue
            path = f"{parent_path}.{child_name}" if parent_path else child_name
            if id(child) not in seen:
                found = _adapt(path, child, levels)
                if found is None:
                    continue
                seen[id(child)] = found
                originals.append(child)
            setattr(parent, child_name, seen[id(child)][0])
    return model, [info for _, info in seen.values()]


def describe(found: list[Activation]) -> str:
    """One line: family, levels per layer, channel-wise thresholds."""
    if not found:
        return "no QCFS-like activation found"
    families = sorted({a.family for a in found})
    levels = [a.levels for a in found]
    per = (f"L={levels[0]} in all {len(levels)} layers" if len(set(levels)) == 1
           else "L per layer " + ",".join(map(str, levels)))
    chw = sum(a.channels > 1 for a in found)
    thr = f", {chw} channel-wise threshold(s)" if chw else ", layer-wise thresholds"
    return f"activations: {'+'.join(families)}, {per}{thr}"
