"""Fixed-point-aware fine-tuning (``bitsnn-train --from CKPT --fixed-point``): the PyTorch
model it trains computes, in PyTorch, exactly the codes and logits of the fixed-point SNN it
exports, checked against the integer QANN computed from the exported netx file alone
(``tests/oracles.py``) and against Lava."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lava_bitsnn.ann.data import normalise
from lava_bitsnn.convert.fixed_model import FixedCode, FixedPointNet
from lava_bitsnn.convert.model import convert_model
from lava_bitsnn.core.ir import ACC_MAX
from lava_bitsnn.errors import BitsnnError
from lava_bitsnn.netx import write_network
from tests.cli_helpers import cli, one_line_error
from tests.oracles import file_qann
from tests.random_nets import random_qcfs_net


def _pytorch_codes(model: FixedPointNet, net, pixels: np.ndarray, dtype=torch.float64):
    """(codes of every FixedCode in order, logits) of the model's own forward in PyTorch."""
    seen: list[np.ndarray] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: seen.append(out.numpy().copy()))
             for m in model.modules() if isinstance(m, FixedCode)]
    try:
        with torch.no_grad():
            x = normalise(pixels, net.normalisation["mean"], net.normalisation["std"], dtype)
            logits = model.to(dtype)(x).numpy()
    finally:
        for h in hooks:
            h.remove()
    return seen, logits


def _assert_matches_file(model, net, path, pixels, dtype=torch.float64) -> None:
    codes, logits = _pytorch_codes(model, net, pixels, dtype)
    expected, expected_logits = file_qann(path, pixels)
    assert len(codes) == len(expected)
    for got, want in zip(codes, expected, strict=True):
        np.testing.assert_array_equal(got.astype(np.int64), want)
    np.testing.assert_array_equal(logits.astype(np.float64), expected_logits)


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(seed=st.integers(0, 10_000), bits=st.integers(1, 8),
       blocks=st.lists(st.sampled_from(["conv", "stride2", "depthwise", "pool", "gpool",
                                        "mpool", "residual"]), min_size=1, max_size=3),
       time_steps=st.integers(1, 8), dtype=st.sampled_from([torch.float32, torch.float64]))
# float64 biases (numpy promoted int / 65536 to float64) rounded to float32 differently once
@example(seed=513, bits=1, blocks=["conv"], time_steps=1, dtype=torch.float32)
def test_the_model_is_the_exported_qann_on_random_networks(tmp_path_factory, seed, bits, blocks,
                                                            time_steps, dtype):
    """Residual, depthwise, strided, average- and max-pooled nets of 1..8 bits, T ≤ b, float32
    and float64:
    the model's codes and logits equal the file's integer QANN, after its parameters moved."""
    model = random_qcfs_net(seed, bits, 2, 8, tuple(blocks))
    net = convert_model(model, (2, 8, 8), [0.3, 0.4], [0.25, 0.35], list("abcde"),
                        time_steps=min(time_steps, bits))
    fixed = FixedPointNet(net)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # move every parameter off the export's grid, as training does
        for p in fixed.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=gen) * p.abs().mean() * 0.2)
    fixed.constrain_()
    exported = fixed.to_network()
    path = tmp_path_factory.mktemp("fp") / "r.net"
    write_network(exported, path)
    x = np.random.default_rng(seed).integers(0, 256, (5, 2, 8, 8), dtype=np.uint8)
    _assert_matches_file(fixed, exported, path, x, dtype)


def test_constrain_keeps_every_layer_within_24_bits(digits_net):
    fixed = FixedPointNet(digits_net)
    with torch.no_grad():
        for p in fixed.theta:
            p.mul_(4.0)  # mantissas saturate at ±128: most layers' bounds leave 24 bits
    with pytest.raises(BitsnnError, match="exceeds 24 bits"):
        fixed.to_network()
    fixed.constrain_()
    net = fixed.to_network()
    assert all(0 < layer.acc_bound <= ACC_MAX for layer in net.layers[1:])


@pytest.fixture(scope="module")
def fine_tuned(digits_checkpoint, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fixed_point")
    out, net_file = folder / "fp.pt", folder / "fp.net"
    run = cli("train", "--from", str(digits_checkpoint), "--fixed-point", "--dataset", "digits",
              "--epochs", "2", "--lr", "0.1", "--quiet", "-o", str(out))
    assert run.returncode == 0, run.stderr[-2000:]
    export = cli("export", str(out), "-o", str(net_file))
    assert export.returncode == 0, export.stderr[-2000:]
    return out, net_file, run.stdout


def test_fine_tuning_moves_the_grid_and_stays_plain_data(fine_tuned, digits_net):
    from lava_bitsnn.netx import read_network

    out, net_file, stdout = fine_tuned
    assert "fixed-point SNN as exported" in stdout and "after fixed-point fine-tuning" in stdout
    ckpt = torch.load(out, weights_only=True)  # no pickled classes: loadable as plain data
    assert ckpt["arch"] == "fixed-point"
    trained = read_network(net_file)
    moved = sum(int((a.weight_int != b.weight_int).sum())
                for la, lb in zip(digits_net.layers[1:], trained.layers[1:], strict=True)
                for a, b in zip(la.synapses, lb.synapses, strict=True))
    assert moved > 0


def test_checkpoint_records_the_exported_snn_accuracy(fine_tuned, digits_checkpoint, digits_net,
                                                      digits_data, tmp_path):
    """The accuracies the fine-tuning started from: the exported file's (the oracle's) and the
    float model's (as its own checkpoint recorded it)."""
    from lava_bitsnn.ann.checkpoint import load_checkpoint
    from lava_bitsnn.netx.writer import write_network

    write_network(digits_net, tmp_path / "exported.net")
    test = digits_data.test
    logits = file_qann(tmp_path / "exported.net", test.images)[1]
    source = load_checkpoint(fine_tuned[0])["source"]
    assert source["exported_fixed_snn_accuracy"] == float((logits.argmax(1) == test.labels).mean())
    assert source["float_accuracy"] == load_checkpoint(digits_checkpoint)["test_accuracy"]


def test_fine_tuned_model_equals_the_fixed_point_snn_and_lava(fine_tuned, digits_data):
    from lava_bitsnn.ann.checkpoint import load_checkpoint, model_from_checkpoint
    from lava_bitsnn.lava.runner import LavaRunner
    from lava_bitsnn.netx import read_network

    out, net_file, _ = fine_tuned
    model = model_from_checkpoint(load_checkpoint(out))
    net = read_network(net_file)
    x = digits_data.test.images
    for dtype in (torch.float32, torch.float64):
        _assert_matches_file(model, net, net_file, x, dtype)
    lava = LavaRunner(net, "fixed", batch_size=4).run_dataset(x[:8])
    np.testing.assert_array_equal(lava.logits, file_qann(net_file, x[:8])[1])


def test_verify_reports_no_mismatch_and_equal_accuracy(fine_tuned):
    out, net_file, _ = fine_tuned
    run = cli("verify", str(out), str(net_file), "--dataset", "digits", "--lava-samples", "4")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    line = next(ln for ln in run.stdout.splitlines() if ln.startswith("accuracy:"))
    values = [float(v.rstrip("%")) for v in line.split() if v.endswith("%")]
    assert len(values) == 4 and len(set(values)) == 1  # ANN, float SNN, fixed SNN, QANN
    assert "ANN/float SNN 100.00%" in run.stdout


@pytest.mark.parametrize("args,message", [
    (["--fixed-point", "--arch", "mnist-cnn"], "needs --from"),
    (["--fixed-point", "--bits", "3", "--from", "CKPT"], "keeps the model's architecture"),
    (["--fixed-point", "--weight-decay", "1e-4", "--from", "CKPT"], "do not apply"),
    (["--fixed-point", "--bf16", "--from", "CKPT"], "--bf16 does not apply"),
])
def test_bad_fixed_point_arguments(args, message, digits_checkpoint, tmp_path):
    args = [str(digits_checkpoint) if a == "CKPT" else a for a in args]
    run = cli("train", *args, "--dataset", "digits", "-o", str(tmp_path / "x.pt"))
    one_line_error(run, message, tmp_path / "x.pt")


def test_export_refuses_other_time_steps(fine_tuned, tmp_path):
    out, _, _ = fine_tuned
    run = cli("export", str(out), "-o", str(tmp_path / "t2.net"), "--time-steps", "2")
    one_line_error(run, "trained for T=4", tmp_path / "t2.net")
