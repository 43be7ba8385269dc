"""The exact bit-serial max-pool (``--maxpool keep``): the candidate rule of
``dynamics.max_pool_bits`` gives the window maxima bit by bit, and a MaxPool2d network converts
and runs on every engine equal to ``MaxPool2d`` of the QCFS codes (random networks with
max-pools are in ``tests/test_matrix.py``; here the rule alone, a trained digits model through
the CLIs, and the refusals)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from lava_bitsnn.core.dynamics import max_pool_bits
from tests.cli_helpers import cli, one_line_error


def _loop_max(codes: np.ndarray, k: int, stride: int, padding: int) -> np.ndarray:
    """Window maxima by plain loops (codes ≥ 0, so the zero padding never wins)."""
    b, c, h, w = codes.shape
    ho, wo = (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1
    out = np.zeros((b, c, ho, wo), dtype=np.int64)
    for i in range(ho):
        for j in range(wo):
            top, left = i * stride - padding, j * stride - padding
            out[:, :, i, j] = codes[:, :, max(top, 0):top + k, max(left, 0):left + k].max(
                axis=(2, 3))
    return out


@settings(max_examples=80, deadline=None)
@given(bits=st.integers(1, 8), k=st.integers(1, 4), stride=st.integers(1, 3),
       padding=st.integers(0, 2), sent=st.integers(1, 8), seed=st.integers(0, 2**32 - 1),
       ties=st.booleans())
def test_candidate_rule_sends_the_bits_of_the_window_maximum(bits, k, stride, padding, sent,
                                                             seed, ties):
    """Over ``T ≤ b`` steps, MSB first, the pooled bits are those of the largest code's top
    ``T`` bits (ties and all-zero windows included)."""
    padding, sent = min(padding, k // 2), min(sent, bits)
    rng = np.random.default_rng(seed)
    high = 3 if ties else 1 << bits  # few distinct values: many ties
    codes = rng.integers(0, min(high, 1 << bits), (2, 3, 5, 6))
    candidates, pooled = None, 0
    for t in range(1, sent + 1):
        frame = (codes >> (bits - t)) & 1
        out, candidates = max_pool_bits(frame, candidates, k, stride, padding)
        pooled = pooled + out.astype(np.int64) * (1 << (bits - t))
    drop = bits - sent
    np.testing.assert_array_equal(pooled, (_loop_max(codes, k, stride, padding) >> drop) << drop)


@pytest.fixture(scope="module")
def max_pool_digits(tmp_path_factory, digits_data):
    """A ReLU CNN with a 2×2 and a padded 3×3 stride-2 MaxPool, fine-tuned to QCFS on digits
    with ``--maxpool keep``, and its export."""
    folder = tmp_path_factory.mktemp("maxpool")
    torch.manual_seed(0)
    relu = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.MaxPool2d(3, 2, 1), nn.Conv2d(8, 16, 3, padding=1),
                         nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(64, 10))
    torch.save(relu, folder / "relu.pt")
    ckpt, net = folder / "q.pt", folder / "q.net"
    train = cli("train", "--from", str(folder / "relu.pt"), "--dataset", "digits", "--bits",
                "3", "--epochs", "3", "--lr", "0.05", "--maxpool", "keep", "--quiet", "-o",
                str(ckpt))
    assert train.returncode == 0, train.stderr[-2000:]
    export = cli("export", str(ckpt), "-o", str(net))
    assert export.returncode == 0, export.stderr[-2000:]
    return ckpt, net, folder / "relu.pt"


def test_trained_max_pool_model_verifies_exactly_on_every_engine(max_pool_digits):
    ckpt, net, _ = max_pool_digits
    run = cli("verify", str(ckpt), str(net), "--dataset", "digits", "--lava-samples", "4")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "OK: fixed SNN == integer QANN" in run.stdout


def test_max_pool_model_on_real_data_against_the_oracles(max_pool_digits, digits_data):
    """Step-wise fixed point against the file's integer QANN (plain loops, ``MaxPool`` of the
    codes), step-wise float against the float64 ANN with its own ``MaxPool2d``."""
    from lava_bitsnn.ann.checkpoint import load_checkpoint, model_from_checkpoint
    from lava_bitsnn.netx import read_network
    from tests.test_matrix import _check

    ckpt, path, _ = max_pool_digits
    net = read_network(path)
    assert [s.pool_kind for layer in net.layers for s in layer.synapses if s.pooled] == \
        ["max", "max"]
    model = model_from_checkpoint(load_checkpoint(ckpt))
    x = digits_data.test.images[:100]
    for precision in ("fixed", "float"):
        _check("stepwise", precision, model, net, path, x)


def test_max_pool_refusals(max_pool_digits, tmp_path):
    _, net, relu = max_pool_digits
    one_line_error(cli("run", str(net), "--dataset", "digits", "--neuron", "if", "--samples",
                       "4", "--json", str(tmp_path / "r.json")), "no exact max-pool",
                   tmp_path / "r.json")
    one_line_error(cli("train", "--from", str(relu), "--dataset", "digits", "--epochs", "1",
                       "-o", str(tmp_path / "x.pt")), "--maxpool keep", tmp_path / "x.pt")
    ckpt = max_pool_digits[0]
    one_line_error(cli("export", str(ckpt), "-o", str(tmp_path / "a.net"), "--maxpool", "avg"),
                   "--maxpool avg does not apply", tmp_path / "a.net")
