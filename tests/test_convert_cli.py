"""Conversion errors and the export / run / verify commands, run as a user would."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from lava_bitsnn.ann.checkpoint import load_checkpoint, save_checkpoint
from lava_bitsnn.ann.qcfs import QCFS
from lava_bitsnn.convert.model import convert_model
from lava_bitsnn.core.fanout import fan_out
from lava_bitsnn.errors import BitsnnError
from tests.cli_helpers import cli, one_line_error


def _convert(model, shape=(1, 8, 8)):
    return convert_model(model, shape, [0.5] * shape[0], [0.3] * shape[0], list("ab"))


@pytest.mark.parametrize("bad,message", [
    (nn.Tanh(), r"unsupported module 1 \(Tanh\)"),
    (nn.ReLU(), r"unsupported module 1 \(ReLU\).*QCFS"),
    (nn.GELU(), r"unsupported module 1 \(GELU\)"),
])
def test_unsupported_modules_are_named(bad, message):
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), bad, nn.Flatten(), nn.Linear(128, 2))
    with pytest.raises(BitsnnError, match=message):
        _convert(model)


def test_lstm_is_refused():
    class Seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(8, 4)
            self.act = QCFS(4)

        def forward(self, x):
            return self.act(self.rnn(x[:, 0])[0])

    with pytest.raises(BitsnnError, match="rnn"):
        _convert(Seq())


def test_missing_bn_statistics_and_nan_weights():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2, track_running_stats=False),
                          QCFS(4), nn.Flatten(), nn.Linear(72, 2)).eval()
    with pytest.raises(BitsnnError, match="missing BN statistics"):
        _convert(model)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), QCFS(4), nn.Flatten(), nn.Linear(72, 2)).eval()
    with torch.no_grad():
        model[0].weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(BitsnnError, match="NaN or Inf"):
        _convert(model)


def test_mixed_bits_convert_and_ending_in_activation_is_refused():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), QCFS(4), nn.Conv2d(2, 2, 3), QCFS(3),
                          nn.Flatten(), nn.Linear(32, 2)).eval()
    net = _convert(model)  # each layer keeps its own bits (issue 11)
    assert [layer.bits for layer in net.layers if layer.kind == "neuron"] == [4, 3]
    assert net.bits == 4
    model = nn.Sequential(nn.Conv2d(1, 2, 3), QCFS(4), nn.Flatten(), nn.Linear(72, 2), QCFS(4))
    with pytest.raises(BitsnnError, match="must end in a Linear"):
        _convert(model.eval())


def test_fan_out_counts_borders_strides_groups_and_pools():
    from lava_bitsnn.core.ir import Synapse

    w = np.ones((2, 1, 3, 3))
    conv = Synapse(0, "conv", w, stride=1, padding=1)
    fo = fan_out(conv, (1, 3, 3))
    # corner pixel feeds 4 output positions, edge 6, centre 9 — times 2 output channels
    np.testing.assert_array_equal(fo[0], 2 * np.array([[4, 6, 4], [6, 9, 6], [4, 6, 4]]))
    strided = Synapse(0, "conv", np.ones((1, 1, 3, 3)), stride=2, padding=1)
    np.testing.assert_array_equal(fan_out(strided, (1, 4, 4))[0],
                                  [[1, 2, 1, 1], [2, 4, 2, 2], [1, 2, 1, 1], [1, 2, 1, 1]])
    depthwise = Synapse(0, "conv", np.ones((2, 1, 1, 1)), groups=2)
    np.testing.assert_array_equal(fan_out(depthwise, (2, 2, 2)), np.ones((2, 2, 2)))
    pooled = Synapse(0, "dense", np.ones((5, 4)), pool=2, flatten=True)
    np.testing.assert_array_equal(fan_out(pooled, (1, 4, 4)), np.full((1, 4, 4), 5))


@pytest.mark.parametrize("pool,stride,padding,kind", [
    (3, 2, 1, "conv"), (3, 1, 1, "conv"), (2, 1, 0, "conv"), (3, 2, 0, "dense"),
    (1, 2, 0, "conv"), (3, 3, 1, "dense")])
def test_fan_out_through_general_pools_counts_each_window(pool, stride, padding, kind):
    """Against brute force: each source neuron alone, pooled with window counts and mapped
    through |mask|, reaches Σ (window, target) paths."""
    from lava_bitsnn.convert.synapse_ops import apply_synapse
    from lava_bitsnn.core.ir import Synapse

    rng = np.random.default_rng(pool * 10 + stride)
    source = (2, 6, 7)
    probe = Synapse(0, kind, None, pool=pool, pool_stride=stride, pool_padding=padding)
    pooled = probe.pooled_shape(source)
    if kind == "conv":
        weight = rng.integers(-1, 2, (3, 2, 3, 3)).astype(float)
        syn = Synapse(0, "conv", weight, 2, 1, pool=pool, pool_stride=stride,
                      pool_padding=padding, pool_scale=rng.integers(1, 4, pooled[1:]))
    else:
        weight = rng.integers(-1, 2, (4, int(np.prod(pooled)))).astype(float)
        syn = Synapse(0, "dense", weight, pool=pool, pool_stride=stride, pool_padding=padding,
                      flatten=True)
    counting = Synapse(**{**syn.__dict__, "pool_scale": None})  # scales do not add targets
    basis = torch.eye(int(np.prod(source)), dtype=torch.float64).reshape(-1, *source)
    paths = apply_synapse(counting, basis, torch.from_numpy(np.abs(weight)))
    np.testing.assert_array_equal(fan_out(syn, source).reshape(-1),
                                  paths.reshape(len(basis), -1).sum(axis=1).numpy())


def test_export_run_verify_end_to_end(digits_checkpoint, tmp_path):
    net = tmp_path / "d.net"
    proc = cli("export", str(digits_checkpoint), "-o", str(net))
    assert proc.returncode == 0, proc.stderr
    assert "of 2^23" in proc.stdout and net.is_file()
    out = tmp_path / "run.json"
    proc = cli("run", str(net), "--dataset", "digits", "--samples", "100", "--quiet",
                "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["samples"] == 100 and result["accuracy"] > 0.85
    assert f"{100 * result['accuracy']:.2f}%" in proc.stdout
    proc = cli("run", str(net), "--dataset", "digits", "--samples", "100", "--quiet",
                "--neuron", "if", "--time-steps", "16", "--precision", "float")
    assert proc.returncode == 0 and "T=16" in proc.stdout, proc.stderr
    proc = cli("verify", str(digits_checkpoint), str(net), "--dataset", "digits",
                "--samples", "120", "--lava-samples", "8")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK:" in proc.stdout and "QANN!=fixedSNN" in proc.stdout
    assert "Lava fixed!=ref" in proc.stdout
    lava_json = tmp_path / "lava.json"
    proc = cli("run", str(net), "--engine", "lava", "--dataset", "digits", "--samples", "12",
                "--batch-size", "4", "--quiet", "--json", str(lava_json))
    assert proc.returncode == 0, proc.stderr
    lava = json.loads(lava_json.read_text())
    reference = cli("run", str(net), "--dataset", "digits", "--samples", "12", "--quiet")
    assert f"{100 * lava['accuracy']:.2f}%" in reference.stdout  # same accuracy as reference
    assert lava["period_steps"] == 8 and lava["steps_per_sample"] == 2.0


def test_export_bad_input(digits_checkpoint, tmp_path):
    out = tmp_path / "x.net"
    ckpt = load_checkpoint(digits_checkpoint)
    nan = {**ckpt, "state_dict": {k: v.clone() for k, v in ckpt["state_dict"].items()}}
    nan["state_dict"]["0.weight"][0, 0, 0, 0] = float("inf")
    save_checkpoint({k: v for k, v in nan.items() if k not in ("format", "format_version")},
                    tmp_path / "nan.pt")
    one_line_error(cli("export", str(tmp_path / "nan.pt"), "-o", str(out)), "NaN or Inf", out)
    wrong_bits = {k: v for k, v in ckpt.items() if k not in ("format", "format_version")}
    wrong_bits["bits"] = 3
    save_checkpoint(wrong_bits, tmp_path / "bits.pt")
    one_line_error(cli("export", str(tmp_path / "bits.pt"), "-o", str(out)), "bits mismatch",
                    out)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    one_line_error(cli("export", str(tmp_path / "junk.pt"), "-o", str(out)),
                    "not a readable checkpoint", out)
    (tmp_path / "cut.pt").write_bytes(digits_checkpoint.read_bytes()[:5000])
    one_line_error(cli("export", str(tmp_path / "cut.pt"), "-o", str(out)),
                    "not a readable checkpoint", out)
    one_line_error(cli("export", str(digits_checkpoint), "-o", str(out), "--time-steps", "5"),
                    "time steps must be from 1", out)
    one_line_error(cli("export", str(digits_checkpoint), "-o", "/nonexistent/x.net"),
                    "does not exist")


def test_run_and_verify_bad_input(digits_checkpoint, digits_net, tmp_path):
    from lava_bitsnn.netx import write_network

    net = tmp_path / "d.net"
    write_network(digits_net, net)
    one_line_error(cli("run", str(net), "--dataset", "cifar10", "--data-dir", str(tmp_path)),
                    "missing data file")
    one_line_error(cli("run", str(tmp_path / "none.net"), "--dataset", "digits"),
                    "does not exist")
    one_line_error(cli("run", str(net), "--dataset", "digits", "--neuron", "bit-serial",
                         "--time-steps", "7"), "bit-serial time steps must be")
    one_line_error(cli("run", str(net), "--engine", "lava", "--dataset", "digits",
                         "--time-steps", "7"), "bit-serial time steps must be")
    other = tmp_path / "other.pt"
    ckpt = load_checkpoint(digits_checkpoint)
    first = next(iter(ckpt["state_dict"]))
    ckpt["state_dict"][first] = ckpt["state_dict"][first] * 1.5  # other weights
    save_checkpoint(ckpt, other)
    one_line_error(cli("verify", str(other), str(net), "--dataset", "digits"),
                    "was not exported from")
    for size in ("0", "-5"):
        one_line_error(cli("verify", str(digits_checkpoint), str(net), "--dataset", "digits",
                           "--batch-size", size), "--batch-size must be at least 1")
