"""Function-preserving widening (Net2WiderNet, Chen et al., ICLR 2016) of a trained network.

Wide channel ``j`` of a layer copies narrow channel ``j mod C``: every tensor is tiled along
each dimension that grew by the factor ``k`` (conv/linear outputs, BN statistics, per-channel
thresholds, and inputs). Where the *input* dimension of a synapse's weight (dim 1 of a
``*.weight`` of 2 or more dimensions) grew, the ``k`` copies of each weight are given random
shares that sum to 1 (to float32 rounding), so the sum a neuron receives is unchanged while
the copies' gradients differ (equal shares of 1/k would keep the copies identical forever).
Inputs are tiled the same way before and after flattening (``c·HW + hw`` mod ``C·HW`` is
``(c mod C)·HW + hw``), so beyond that naming rule no layer types are needed: a QCFS network
computes the same codes, up to float rounding at the bin edges, and goes on training.
"""

from __future__ import annotations

import torch

SHARE_SPREAD = 0.2  # standard deviation of a copy's share, relative to its mean 1/k


def widen_state_dict(narrow: dict[str, torch.Tensor], wide: dict[str, torch.Tensor],
                     gen: torch.Generator) -> dict[str, torch.Tensor]:
    """``narrow``'s tensors tiled to ``wide``'s shapes (the keys must match). Raises
    ValueError where a dimension neither stays nor grows by one integer factor."""
    if narrow.keys() != wide.keys():
        differ = sorted(set(narrow) ^ set(wide))
        more = ", …" if len(differ) > 4 else ""
        raise ValueError(f"the two networks differ in their layers: {', '.join(differ[:4])}{more}")
    if not _one_widening(narrow, wide):
        raise ValueError("the wide network must be the narrow one with every grown dimension "
                         "multiplied by one integer factor")
    return {key: _tile(narrow[key], wide[key].shape, key.endswith("weight"), gen)
            for key in narrow}


def _one_widening(narrow: dict[str, torch.Tensor], wide: dict[str, torch.Tensor]) -> bool:
    """Whether every dimension of ``wide`` is ``narrow``'s, or it times one integer factor."""
    if any(narrow[key].dim() != wide[key].dim() for key in narrow):
        return False
    factors = {n / o for key in narrow
               for o, n in zip(narrow[key].shape, wide[key].shape, strict=True) if n != o}
    return len(factors) <= 1 and all(f == int(f) and f >= 1 for f in factors)


def _tile(t: torch.Tensor, shape: torch.Size, synapse: bool, gen: torch.Generator
          ) -> torch.Tensor:
    out = t
    for dim, (old, new) in enumerate(zip(t.shape, shape, strict=True)):
        if new == old:
            continue
        k = new // old
        out = out.repeat(*[k if d == dim else 1 for d in range(t.dim())])
        if synapse and dim == 1 and t.dim() >= 2:  # a synapse's input: k shares per weight
            out = out * _shares(k, out.shape, dim, old, gen)
    return out.to(t.dtype)


def _shares(k: int, shape: torch.Size, dim: int, old: int, gen: torch.Generator) -> torch.Tensor:
    """Per-element factors whose ``k`` copies along ``dim`` (blocks of ``old``) sum to 1."""
    block = [*shape[:dim], k, old, *shape[dim + 1:]]
    z = torch.randn(block, generator=gen, dtype=torch.float64) * (SHARE_SPREAD / k)
    shares = 1.0 / k + z - z.mean(dim=dim, keepdim=True)
    return shares.reshape(shape).float()
