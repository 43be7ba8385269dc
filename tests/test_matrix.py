"""The equivalence matrix: every engine {step-wise reference, fused reference, Lava} in every
precision it has {fixed, float}, on the trained digits model and on hypothesis-generated
networks (residual, depthwise, strided, average- and max-pooled with any window, stride and
padding; 1..8 bits; both input encodings; any largest code K, mixed per layer), against two
oracles that share no code with the engines:

* fixed point: the integer QANN computed from the netx file alone (``tests/oracles.py``):
  every hidden code, every recorded spike (the code's bits, MSB first) and the logits exact;
* float: the float64 ANN run with plain forward hooks, whose codes may differ only at a bin
  edge of the first layer where a sample differs, and whose logits are the SNN's wherever
  every code agrees (``tests/oracles.py``, not ``lava_bitsnn.verify``).

The IF baseline is checked against its closed form on the first hidden layer and, in every
layer, Lava against the step-wise reference.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lava_bitsnn.ann.checkpoint import load_checkpoint, model_from_checkpoint
from lava_bitsnn.convert.model import convert_model
from lava_bitsnn.lava.runner import LavaRunner
from lava_bitsnn.netx import read_network, write_network
from lava_bitsnn.reference import ReferenceEngine
from tests.oracles import file_qann, float_codes_off_edge, if_first_layer_counts
from tests.random_nets import random_qcfs_net

COMBOS = [("stepwise", "fixed"), ("fused", "fixed"), ("lava", "fixed"), ("stepwise", "float"),
          ("lava", "float")]
SLOW = [HealthCheck.too_slow, HealthCheck.filter_too_much]
BLOCKS = st.lists(st.sampled_from(["conv", "stride2", "depthwise", "pool", "gpool", "mpool",
                                   "residual"]), min_size=1, max_size=3)


def _run(engine: str, net, precision: str, x: np.ndarray, neuron: str = "bit-serial",
         time_steps: int | None = None):
    """(codes per layer, logits, recorded spikes per layer or None)."""
    if engine == "lava":
        r = LavaRunner(net, precision, neuron, time_steps, batch_size=3).run_dataset(
            x, record=True)
        return r.codes, r.logits, None
    r = ReferenceEngine(net, precision, neuron, time_steps, fused=engine == "fused"
                        ).run_batch(x, record=True)
    # the fused path derives its spikes from its codes: checking them would be an identity
    return r.codes, r.logits, None if engine == "fused" else r.spikes


def _check_fixed(path: Path, net, codes, logits, spikes, x, time_steps=None) -> None:
    expected, expected_logits = file_qann(path, x, time_steps)
    for i, layer in enumerate(net.layers[1:-1], start=1):
        np.testing.assert_array_equal(codes[i], expected[i - 1].astype(np.int64),
                                      err_msg=layer.name)
        if spikes is not None:
            steps = spikes[i].shape[1]
            for t in range(1, steps + 1):
                bit = (expected[i - 1].astype(np.int64) >> (layer.bits - t)) & 1
                np.testing.assert_array_equal(spikes[i][:, t - 1], bit, err_msg=layer.name)
    np.testing.assert_array_equal(logits, expected_logits)


def _float_ann(model, net, x):
    """The float64 ANN's (codes, z/Δ + ½) per QCFS layer, in order, and its logits: run with
    plain forward hooks on the QCFS modules (the ANN's own forward, nothing of verify's)."""
    from lava_bitsnn.ann.data import normalise
    from lava_bitsnn.ann.qcfs import QCFS

    model = model.double().eval()
    seen: list[tuple[np.ndarray, np.ndarray]] = []

    def hook(module, inputs, output):
        step = module.step().double()
        seen.append(((output / step).round().numpy(), (inputs[0] / step + 0.5).numpy()))

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, QCFS)]
    try:
        with torch.no_grad():
            out = model(normalise(x, net.normalisation["mean"], net.normalisation["std"],
                                  torch.float64))
    finally:
        for h in hooks:
            h.remove()
    return seen, (out[0] if isinstance(out, tuple) else out).numpy()


def _check_float(model, net, codes, logits, x) -> None:
    seen, ann_logits = _float_ann(model, net, x)
    hidden = [i for i, layer in enumerate(net.layers) if layer.kind == "neuron"]
    assert len(seen) == len(hidden)
    assert float_codes_off_edge([(codes[i], a, z) for i, (a, z) in zip(hidden, seen,
                                                                         strict=True)]) == 0
    same = np.all([np.all(codes[i].reshape(len(x), -1) == a.reshape(len(x), -1), axis=1)
                   for i, (a, _) in zip(hidden, seen, strict=True)], axis=0)
    # the converter folds BN into the float32 parameters: logits agree to float32 rounding
    np.testing.assert_allclose(logits[same], ann_logits[same], rtol=1e-5, atol=1e-6)


def _check(engine, precision, model, net, path, x) -> None:
    codes, logits, spikes = _run(engine, net, precision, x)
    if precision == "fixed":
        _check_fixed(path, net, codes, logits, spikes, x)
    else:
        _check_float(model, net, codes, logits, x)


@pytest.fixture(scope="module")
def digits_model(digits_checkpoint):
    return model_from_checkpoint(load_checkpoint(digits_checkpoint))


@pytest.fixture(scope="module")
def digits_file(digits_net, tmp_path_factory):
    path = tmp_path_factory.mktemp("matrix") / "digits.net"
    write_network(digits_net, path)
    return path


@pytest.mark.parametrize("engine,precision", COMBOS)
def test_digits_model(engine, precision, digits_model, digits_net, digits_file, digits_data):
    x = digits_data.test.images[:7 if engine == "lava" else 120]
    _check(engine, precision, digits_model, digits_net, digits_file, x)


@pytest.mark.parametrize("engine", ["stepwise", "fused", "lava"])
def test_digits_fewer_steps_give_the_top_bits(engine, digits_net, digits_file, digits_data):
    x = digits_data.test.images[:6 if engine == "lava" else 60]
    codes, logits, spikes = _run(engine, digits_net, "fixed", x, time_steps=2)
    _check_fixed(digits_file, digits_net, codes, logits, spikes, x, time_steps=2)


def test_a_file_exported_for_fewer_steps_runs_them(digits_checkpoint, digits_data, tmp_path):
    """``bitsnn-export --time-steps 2``: every engine, and bitsnn-verify, run the file's T."""
    from tests.cli_helpers import cli

    path = tmp_path / "t2.net"
    assert cli("export", str(digits_checkpoint), "-o", str(path), "--time-steps", "2"
               ).returncode == 0
    net = read_network(path)
    assert net.time_steps == 2
    x = digits_data.test.images[:6]
    for engine in ("stepwise", "fused", "lava"):
        codes, logits, spikes = _run(engine, net, "fixed", x)
        _check_fixed(path, net, codes, logits, spikes, x)
        assert all(c.max() <= 12 and not (c & 3).any() for c in codes[1:-1])  # top 2 bits
    verify = cli("verify", str(digits_checkpoint), str(path), "--dataset", "digits",
                 "--samples", "64", "--lava-samples", "0")
    assert verify.returncode == 0, verify.stdout[-2000:] + verify.stderr[-2000:]
    assert "T=2" in verify.stdout


def _random_case(seed: int, bits: int, blocks: list[str], encoding: str, max_codes=()):
    model = random_qcfs_net(seed, bits, 2, 8, tuple(blocks), max_codes=tuple(max_codes))
    gen = np.random.default_rng(seed)
    net = convert_model(model, (2, 8, 8), list(gen.uniform(0.1, 0.6, 2)),
                        list(gen.uniform(0.2, 0.5, 2)), list("abcde"), encoding=encoding)
    x = gen.integers(0, 256, (6, 2, 8, 8), dtype=np.uint8)
    return model, net, x


def _with_file(net, fn) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.net"
        write_network(net, path)
        fn(path)


def _check_random(engine, precision, model, net, x) -> None:
    """``_check`` on a random network whose every hidden layer has some non-zero code (a
    network that is silent somewhere would check little)."""
    def check(path: Path) -> None:
        expected, _ = file_qann(path, x)
        assume(all(c.any() for c in expected))
        _check(engine, precision, model, net, path, x)

    _with_file(net, check)


@pytest.mark.parametrize("engine,precision", [c for c in COMBOS if c[0] != "lava"])
@settings(max_examples=12, deadline=None, suppress_health_check=SLOW)
@given(seed=st.integers(0, 10_000), bits=st.integers(1, 8), blocks=BLOCKS,
       encoding=st.sampled_from(["bit-serial", "graded"]))
def test_random_networks_on_the_reference(engine, precision, seed, bits, blocks, encoding):
    model, net, x = _random_case(seed, bits, blocks, encoding)
    _check_random(engine, precision, model, net, x)


@pytest.mark.parametrize("precision", ["fixed", "float"])
@settings(max_examples=3, deadline=None, suppress_health_check=SLOW)
@given(seed=st.integers(0, 10_000), bits=st.integers(1, 6),
       encoding=st.sampled_from(["bit-serial", "graded"]))
def test_random_networks_on_lava(precision, seed, bits, encoding):
    model, net, x = _random_case(seed, bits, ["mpool", "depthwise", "gpool", "residual",
                                              "stride2"], encoding)
    _check_random("lava", precision, model, net, x)


@pytest.mark.parametrize("engine,precision", [("stepwise", "fixed"), ("fused", "fixed"),
                                              ("stepwise", "float")])
@settings(max_examples=12, deadline=None, suppress_health_check=SLOW)
@given(seed=st.integers(0, 10_000), blocks=BLOCKS,
       max_codes=st.lists(st.sampled_from([1, 3, 4, 8, 15, 16]), min_size=1, max_size=3))
def test_any_largest_code_mixed_per_layer(engine, precision, seed, blocks, max_codes):
    """K = 4, 8, 16 … (not 2^b − 1), different in every layer: each layer fires its own
    b = ⌈log2(K+1)⌉ steps and clips at K."""
    model, net, x = _random_case(seed, 8, blocks, "bit-serial", max_codes)
    _check_random(engine, precision, model, net, x)


@pytest.mark.parametrize("precision", ["fixed", "float"])
def test_any_largest_code_on_lava(precision):
    model, net, x = _random_case(7, 8, ["residual", "stride2"], "bit-serial", (4, 8, 16))
    assert len({layer.max_code for layer in net.layers[1:-1]}) > 1
    _with_file(net, lambda path: _check("lava", precision, model, net, path, x))


@pytest.mark.parametrize("engine", ["stepwise", "lava"])
def test_if_neuron_digits(engine, digits_net, digits_file, digits_data):
    x = digits_data.test.images[:5 if engine == "lava" else 60]
    codes, _, _ = _run(engine, digits_net, "fixed", x, "if", 8)
    np.testing.assert_array_equal(codes[1], if_first_layer_counts(digits_file, x, 8))
    assert 0 < codes[1].max() <= 8 and codes[1].min() == 0


@pytest.mark.parametrize("precision", ["fixed", "float"])
@settings(max_examples=2, deadline=None, suppress_health_check=SLOW)
@given(seed=st.integers(0, 10_000), bits=st.integers(1, 6))
def test_if_neuron_lava_equals_reference_on_random_networks(precision, seed, bits):
    _, net, x = _random_case(seed, bits, ["depthwise", "residual"], "bit-serial")
    lava_codes, lava_logits, _ = _run("lava", net, precision, x, "if", 6)
    ref_codes, ref_logits, _ = _run("stepwise", net, precision, x, "if", 6)
    for a, b in zip(lava_codes[1:-1], ref_codes[1:-1], strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(lava_logits, ref_logits, rtol=0, atol=1e-9)
    if precision == "fixed":
        _with_file(net, lambda path: np.testing.assert_array_equal(
            ref_codes[1], if_first_layer_counts(path, x, 6)))
