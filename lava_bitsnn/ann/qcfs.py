"""QCFS activation (Bu et al., ICLR 2022) as specified in docs/method.md §1.

``a = Δ · k`` with integer code ``k = clip(floor(z/Δ + 1/2), 0, K)`` and ``Δ = λ / K``. ``K`` is
``2^b − 1`` by default; any ``K = L ≥ 1`` (``max_code``) is allowed, the layer then needs
``b = ⌈log₂(L+1)⌉`` bits. ``λ`` is trainable: one scalar per layer, or one per channel (a
tensor of shape ``(1, C, 1, 1)`` or ``(1, C)`` that broadcasts over the input). The floor has a
straight-through gradient, so ``λ`` receives gradient both through the scale and through the
clip.

``form`` selects the floating-point order of operations, so that a module adapted from other
QCFS code (``lava_bitsnn.ann.adapters``) computes bit for bit what the original did:

* ``"qcfs"`` (ours): ``clip(floor(z / (λ/K) + ½), 0, K) · (λ/K)``;
* ``"myfloor"`` (QCFS reference code v1, "SNN meets ANN"):
  ``clamp(floor((z/λ)·K + ½) / K, 0, 1) · λ``;
* ``"if"`` (QCFS reference code v2): ``floor(clamp(z/λ, 0, 1)·K + ½) / K · λ``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

MAX_BITS = 8
FORMS = ("qcfs", "myfloor", "if")


class _StraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, fn) -> torch.Tensor:  # noqa: D401 - autograd signature
        return fn(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


def straight_through(x: torch.Tensor, fn=torch.floor) -> torch.Tensor:
    """``fn(x)`` exactly in the forward pass, the identity's gradient in the backward pass."""
    return _StraightThrough.apply(x, fn)


def check_bits(bits: int) -> int:
    if not isinstance(bits, int) or isinstance(bits, bool) or not 1 <= bits <= MAX_BITS:
        raise ValueError(f"bits must be an integer from 1 to {MAX_BITS}, got {bits!r}")
    return bits


def bits_for_levels(levels: int) -> int:
    """``b = ⌈log₂(L+1)⌉``: the bits that hold codes ``0..L``."""
    max_levels = (1 << MAX_BITS) - 1
    if not isinstance(levels, int) or isinstance(levels, bool) or not 1 <= levels <= max_levels:
        raise ValueError(f"levels L must be an integer from 1 to {max_levels}, got {levels!r}")
    return math.ceil(math.log2(levels + 1))


class QCFS(nn.Module):
    """Quantisation-clip-floor-shift activation with ``b`` bits and a trainable threshold.

    ``QCFS(bits)`` has ``K = 2^b − 1`` levels; ``QCFS(max_code=L)`` has ``L`` (and
    ``b = ⌈log₂(L+1)⌉``). ``threshold`` is a number (one λ) or a tensor (its shape is kept:
    ``[1]``, ``(1, C, 1, 1)`` or ``(1, C)``).

    After a forward pass with ``record_codes = True`` the integer codes of the last input are
    in ``last_code`` (a float tensor holding exact integers, no gradient) and its input in
    ``last_input``; ``records`` holds (code, input) of every call since recording began (a
    module used at two places of a network records both).
    """

    def __init__(self, bits: int | None = None, threshold: float | torch.Tensor = 4.0,
                 max_code: int | None = None, form: str = "qcfs") -> None:
        super().__init__()
        if max_code is None:
            self.bits = check_bits(4 if bits is None else bits)
            self.max_code = (1 << self.bits) - 1
        else:
            need = bits_for_levels(max_code)
            if bits is not None and check_bits(bits) != need:
                raise ValueError(f"{max_code} levels need {need} bits, not {bits}")
            self.bits, self.max_code = need, int(max_code)
        if form not in FORMS:
            raise ValueError(f"form must be one of {', '.join(FORMS)}, got {form!r}")
        self.form = form
        value = torch.as_tensor(threshold, dtype=torch.get_default_dtype()).detach().clone()
        if not bool(torch.all(value > 0)):
            raise ValueError(f"threshold must be positive, got {threshold}")
        self.threshold = nn.Parameter(value)
        self.record_codes = False
        self.last_code: torch.Tensor | None = None
        self.last_input: torch.Tensor | None = None
        self.records: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __setstate__(self, state: dict) -> None:  # modules pickled by older versions
        super().__setstate__(state)
        # before max_code: no attribute (K = 2^b − 1), then one named ``levels``
        self.__dict__.setdefault("max_code", self.__dict__.pop("levels", (1 << self.bits) - 1))
        self.__dict__.setdefault("form", "qcfs")
        self.__dict__.setdefault("records", [])

    def __getattr__(self, name: str):
        # an adapted module keeps its original threshold name (MyFloor.up, IF.thresh), so
        # code that reads it (an auxiliary loss, say) still runs
        if name in ("up", "thresh") and self.__dict__.get("form", "qcfs") != "qcfs":
            name = "threshold"
        return super().__getattr__(name)

    def step(self) -> torch.Tensor:
        """Quantisation step ``Δ = λ / K``."""
        return self.threshold / self.max_code

    def level(self, z: torch.Tensor) -> torch.Tensor:
        """``z/Δ`` as this form computes it (the value whose ``floor(· + ½)`` is the code)."""
        if self.form == "qcfs":
            return z / self.step()
        return z / self.threshold * self.max_code

    def code(self, z: torch.Tensor) -> torch.Tensor:
        """Integer code ``k`` (as float, with the straight-through gradient)."""
        k = self.max_code
        if self.form == "if":
            return straight_through(torch.clamp(z / self.threshold, 0, 1) * k + 0.5)
        return torch.clamp(straight_through(self.level(z) + 0.5), 0, k)

    def _output(self, z: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        k = self.max_code
        if self.form == "qcfs":
            return code * self.step()
        if self.form == "myfloor":
            return torch.clamp(straight_through(z / self.threshold * k + 0.5) / k, 0, 1) * \
                self.threshold
        return code / k * self.threshold

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # the quantiser runs in at least its threshold's precision: under bfloat16 autocast
        # (``--bf16``) a bf16 ``z/Δ + ½`` puts 2.9% of 4-bit codes (24% of 8-bit ones) a level off
        z = z.to(torch.promote_types(z.dtype, self.threshold.dtype))
        code = self.code(z)
        if self.record_codes:
            self.last_code = code.detach()
            self.last_input = z.detach()
            self.records.append((self.last_code, self.last_input))
        return self._output(z, code)

    def extra_repr(self) -> str:
        t = self.threshold.detach().flatten()
        lam = f"{float(t[0]):.4g}" if t.numel() == 1 else f"per-channel ({t.numel()})"
        levels = "" if self.max_code == (1 << self.bits) - 1 else f", max_code={self.max_code}"
        form = "" if self.form == "qcfs" else f", form={self.form}"
        return f"bits={self.bits}{levels}, threshold={lam}{form}"


def qcfs_layers(model: nn.Module) -> list[tuple[str, QCFS]]:
    """All QCFS modules of a model in registration order, with their qualified names."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, QCFS)]
