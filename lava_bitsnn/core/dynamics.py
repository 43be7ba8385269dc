"""The neuron dynamics, written once: pure numpy functions of (state, input, step, parameters).

The Lava ProcessModels (``lava_bitsnn.lava.procs.models``) and the reference engine's
step-wise loops (``lava_bitsnn.reference.engine``) both call these, so the two simulators
cannot drift apart; the reference engine's fused path and the integer QANN are closed forms
tested against them. docs/method.md derives each rule.

``integer`` selects fixed point: integer state in a 24-bit saturating accumulator (arrays of
any numeric dtype holding integers), integer bias splitting and threshold halving. Float
state is float64 and never saturates. Every step function returns the number of saturation
events it caused, so callers count clipping without a second rule.
"""

from __future__ import annotations

import numpy as np

ACCUMULATOR_BITS = 24
ACC_MAX = (1 << (ACCUMULATOR_BITS - 1)) - 1
ACC_MIN = -(1 << (ACCUMULATOR_BITS - 1))
FLOAT32_EXACT = 1 << 24  # every integer of smaller magnitude is exactly a float32


def saturate(u: np.ndarray, integer: bool) -> tuple[np.ndarray, int]:
    """Clip a fixed-point state to the 24-bit accumulator; (state, clip events)."""
    if not integer:
        return u, 0
    over = (u > ACC_MAX) | (u < ACC_MIN)
    clipped = int(np.count_nonzero(over))
    return (np.clip(u, ACC_MIN, ACC_MAX) if clipped else u), clipped


def split_bias(bias: np.ndarray, steps: int, integer: bool) -> tuple[np.ndarray, np.ndarray]:
    """(bias added at every one of ``steps`` accumulate steps, extra added at step 1) so that
    the steps add exactly ``bias``: fixed point adds the integer quotient and the remainder."""
    per_step = np.floor_divide(bias, steps) if integer else bias / steps
    return per_step, bias - per_step * steps


def source_frame(code: np.ndarray, bits: int, t: int, graded: bool) -> np.ndarray:
    """What a layer sends at its ``t``-th send step (1-based): bit ``t`` of its ``bits``-bit
    codes, MSB first (the spike), or for a graded source the code itself."""
    return code if graded else (code >> (bits - t)) & 1


def shifts(shift_bits: int, t: int) -> bool:
    """Whether accumulate step ``t`` shifts its current (by ``shift_bits − t`` > 0 places)."""
    return shift_bits - t > 0


def spike_weight(bits: int, t: int) -> int:
    """What a spike of fire step ``t`` is worth in the code of a ``bits``-bit layer (MSB
    first): ``2^(bits − t)``; the code is the sum over its spikes."""
    return 1 << (bits - t)


def accumulate(u: np.ndarray, current: np.ndarray, t: int, shift_bits: int,
               per_step: np.ndarray, first_extra: np.ndarray, integer: bool
               ) -> tuple[np.ndarray, int]:
    """Accumulate step ``t``: ``u + I(t)·2^(shift_bits − t) + bias_step(t)``, saturated."""
    u = u + current * spike_weight(shift_bits, t) + per_step
    if t == 1:
        u = u + first_extra
    return saturate(u, integer)


def clip_to_max_code(u: np.ndarray, unit: float, max_code: int, bits: int, integer: bool
                     ) -> np.ndarray:
    """The upper clip at the hand-over to firing, for codes whose largest value ``K`` is below
    ``2^bits − 1``: then ``⌊min(u, K·D)/D⌋ = min(⌊u/D⌋, K)`` (float: ``min(u, (K + ½)·Δ)``,
    mid-bin, so rounding cannot cross an edge)."""
    if max_code >= (1 << bits) - 1:
        return u
    return np.minimum(u, max_code * unit if integer else (max_code + 0.5) * unit)


def fire(u: np.ndarray, t: int, unit: float, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Fire step ``t``, MSB first: ``s = [u ≥ θ_t]``, ``u ← u − s·θ_t``, ``θ_t = unit·2^(bits−t)``;
    (spikes as bool, membrane)."""
    theta = unit * spike_weight(bits, t)
    s = u >= theta
    return s, u - s * theta


def top_threshold(unit: float, max_code: int) -> float:
    """``θ = K·D`` (float: ``K·Δ``): the IF neuron's threshold, one spike's worth of the code
    range, and the largest value the bit-serial fire chain compares with."""
    return unit * max_code


def if_initial(shape: tuple[int, ...], theta: float, integer: bool) -> np.ndarray:
    """The IF membrane at the start of a window: ``θ/2`` (fixed point: ``⌊θ/2⌋``)."""
    return np.full(shape, theta // 2 if integer else theta / 2,
                   dtype=np.int64 if integer else np.float64)


def if_bias(bias: np.ndarray, unit: float, integer: bool) -> np.ndarray:
    """The IF neuron's per-step bias: the QCFS half step ``Δ/2`` is replaced by ``v0 = θ/2``."""
    return bias - (unit // 2 if integer else unit / 2)


def if_step(v: np.ndarray, current: np.ndarray, bias: np.ndarray, theta: float, integer: bool
            ) -> tuple[np.ndarray, np.ndarray, int]:
    """One IF step: ``v ← v + I + bias`` (saturated), ``s = [v ≥ θ]``, ``v ← v − s·θ``;
    (spikes, membrane, clip events)."""
    v, clipped = saturate(v + current + bias, integer)
    s = v >= theta
    return s, v - s * theta, clipped


def if_spike_value(max_code: int) -> int:
    """What an IF spike of a hidden layer carries in units of its code: ``λ = K·Δ``."""
    return max_code


def output_add(u: np.ndarray, current: np.ndarray, bias: np.ndarray, integer: bool
               ) -> tuple[np.ndarray, int]:
    """The IF read-out's step: ``u + I + bias`` (the full bias every step), saturated."""
    return saturate(u + current + bias, integer)


def logits(u: np.ndarray, unit: float, integer: bool, steps_averaged: int = 1) -> np.ndarray:
    """Logits from an output accumulator: ``u / D`` in fixed point (``u`` in float), divided by
    the steps an IF read-out summed over."""
    out = np.asarray(u, dtype=np.float64)
    if integer:
        out = out / unit
    return out / steps_averaged if steps_averaged != 1 else out


def qann_code(u, unit: float, max_code: int, drop: int, floor):
    """The integer QANN's code of accumulator ``u`` (numpy array or torch tensor):
    ``clip(⌊u / D⌋, 0, K)``, then its top ``T`` bits (the ``drop = b − T`` low bits zeroed).
    ``floor`` is the array library's floor, or a straight-through one for training."""
    k = floor(u / unit).clip(0, max_code)
    if drop:
        k = floor(k / (1 << drop)) * (1 << drop)
    return k


def bias_grid(bias, steps: int, rounding):
    """A total bias rounded to a multiple of the layer's ``steps`` accumulate steps (so the
    per-step bias is an integer); ``rounding``: the array library's round."""
    return steps * rounding(bias / steps)


def max_pools_bits(pool_kind: str, graded_source: bool) -> bool:
    """Whether a synapse takes its max-pool bit by bit (``max_pool_bits``): a graded source
    sends whole values, whose maximum is taken at once."""
    return pool_kind == "max" and not graded_source


def pool_windows(x: np.ndarray, k: int, stride: int, padding: int) -> np.ndarray:
    """(B, C, H, W) → (B, C, H', W', k, k): every pooling window of the zero-padded map."""
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    view = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))
    return view[:, :, ::stride, ::stride]


def max_pool_bits(bits: np.ndarray, candidates: np.ndarray | None, k: int, stride: int,
                  padding: int) -> tuple[np.ndarray, np.ndarray]:
    """One step of the exact bit-serial max-pool. Codes arrive MSB first, one bit per step;
    each window keeps the inputs still tied for its maximum (``candidates``, all of them at a
    sample's first bit: pass None). The window sends 1 if any candidate sends 1, and then the
    candidates that sent 0 drop out, since their codes are now known to be smaller. After the
    last bit the window has sent exactly the bits of its largest code (codes are ≥ 0, so the
    zero padding never wins). Returns (the pooled bits, the candidates for the next bit)."""
    window = pool_windows(bits, k, stride, padding).astype(bool)
    if candidates is None:
        candidates = np.ones(window.shape, dtype=bool)
    live = window & candidates
    out = live.any(axis=(-2, -1))
    return out.astype(bits.dtype), np.where(out[..., None, None], live, candidates)


def exact_in_float32(partial_sum_bound: int) -> bool:
    """Whether integer sums bounded in magnitude by ``partial_sum_bound`` are exact in
    float32 whatever the summation order (every partial sum is then an integer < 2^24)."""
    return partial_sum_bound < FLOAT32_EXACT
