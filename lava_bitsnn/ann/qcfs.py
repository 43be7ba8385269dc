"""QCFS activation (Bu et al., ICLR 2022) as specified in DESIGN.md §2.

``a = Δ · k`` with integer code ``k = clip(floor(z/Δ + 1/2), 0, K)``, ``K = 2^b − 1`` and
``Δ = λ / K``; ``λ`` is one trainable scalar per layer. The floor has a straight-through
gradient, so ``λ`` receives gradient both through the scale and through the clip.
"""

from __future__ import annotations

import torch
from torch import nn

MAX_BITS = 8


class _FloorSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: D401 - autograd signature
        return torch.floor(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad


def check_bits(bits: int) -> int:
    if not isinstance(bits, int) or isinstance(bits, bool) or not 1 <= bits <= MAX_BITS:
        raise ValueError(f"bits must be an integer from 1 to {MAX_BITS}, got {bits!r}")
    return bits


class QCFS(nn.Module):
    """Quantisation-clip-floor-shift activation with ``b`` bits and a trainable threshold.

    After a forward pass with ``record_codes = True`` the integer codes of the last input are
    in ``last_code`` (a float tensor holding exact integers, no gradient).
    """

    def __init__(self, bits: int = 4, threshold: float = 4.0) -> None:
        super().__init__()
        self.bits = check_bits(bits)
        if not threshold > 0:
            raise ValueError(f"threshold must be positive, got {threshold}")
        self.threshold = nn.Parameter(torch.tensor(float(threshold)))
        self.record_codes = False
        self.last_code: torch.Tensor | None = None
        self.last_input: torch.Tensor | None = None

    @property
    def max_code(self) -> int:
        """The largest code ``K = 2^b − 1``."""
        return (1 << self.bits) - 1

    def step(self) -> torch.Tensor:
        """Quantisation step ``Δ = λ / K``."""
        return self.threshold / self.max_code

    def code(self, z: torch.Tensor) -> torch.Tensor:
        """Integer code ``k`` (as float, with the straight-through gradient)."""
        return torch.clamp(_FloorSTE.apply(z / self.step() + 0.5), 0, self.max_code)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        code = self.code(z)
        if self.record_codes:
            self.last_code = code.detach()
            self.last_input = z.detach()
        return code * self.step()

    def extra_repr(self) -> str:
        return f"bits={self.bits}, threshold={float(self.threshold):.4g}"


def qcfs_layers(model: nn.Module) -> list[tuple[str, QCFS]]:
    """All QCFS modules of a model in registration order, with their qualified names."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, QCFS)]
