"""Training regularisers that act on QCFS activations.

* ``bit_l1`` — the fine-grained bit-sparsity ℓ1 of Datta et al. (Eq. 10–11): the number of
  1-bits in the integer code of every hidden activation, summed over the batch. The code is
  recovered by rounding ``a/Δ`` (never by truncating a float). Its gradient is the surrogate of
  Eq. 11: ``∂L/∂a = Σ_t ∂a_t/∂a = b`` where ``0 < a < λ`` and 0 elsewhere.
* ``qcfs_reg`` — the QCFS regulariser of the QCFS talk: ``mean((z − QCFS(z))²)``; the target
  ``QCFS(z)`` is held constant so the term pulls pre-activations towards bin centres.
"""

from __future__ import annotations

import torch

from lava_bitsnn.ann.qcfs import QCFS

_ONES = torch.tensor([bin(code).count("1") for code in range(256)])


def count_ones(code: torch.Tensor, bits: int) -> int:
    """Total 1-bits of integer-valued codes in ``[0, 2^bits)`` (``bits`` ≤ 8): a histogram of
    the codes weighted by each code's 1-bits, one pass over the tensor instead of a shift, a
    mask and an add per bit (the test-set evaluation counts every hidden activation)."""
    hist = torch.bincount(code.to(torch.uint8).flatten(), minlength=1 << bits)
    return int((hist * _ONES[: len(hist)].to(hist.device)).sum())


class _BitCount(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: torch.Tensor, threshold: torch.Tensor, bits: int) -> torch.Tensor:
        step = threshold / ((1 << bits) - 1)
        code = torch.round(a / step)
        ctx.save_for_backward(a, threshold)
        ctx.bits = bits
        return a.new_tensor(count_ones(code, bits))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        a, threshold = ctx.saved_tensors
        inside = (a > 0) & (a < threshold)
        return grad * ctx.bits * inside.to(a.dtype), None, None


def bit_count(a: torch.Tensor, layer: QCFS) -> torch.Tensor:
    """Total number of 1-bits in the codes of activation ``a`` produced by ``layer``."""
    return _BitCount.apply(a, layer.threshold.detach(), layer.bits)


def bit_l1(activations: list[tuple[QCFS, torch.Tensor]]) -> torch.Tensor:
    """Bit-sparsity ℓ1 over the given hidden (layer, output) pairs."""
    if not activations:
        return torch.zeros(())
    return torch.stack([bit_count(a, layer) for layer, a in activations]).sum()


def qcfs_reg(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """QCFS regulariser: mean over all elements of ``(z − QCFS(z))²`` for (z, a) pairs."""
    if not pairs:
        return torch.zeros(())
    sq = sum(((z - a.detach()) ** 2).sum() for z, a in pairs)
    count = sum(z.numel() for z, _ in pairs)
    return sq / count
