"""Your own model (issue 11), end to end through the console scripts: the three input forms,
``bitsnn-train --from`` fine-tuning, and the one-line errors."""

from __future__ import annotations

import json
import re

import pytest
import torch
import torch.nn.functional as F

from lava_bitsnn.ann.checkpoint import load_checkpoint
from lava_bitsnn.ann.data import normalise
from tests import foreign_models as fm
from tests.cli_helpers import cli, one_line_error
from tests.test_holdout import poisoned_held_out


@pytest.fixture(scope="module")
def relu_digits(tmp_path_factory, digits_data):
    """A ReLU + MaxPool CNN trained by plain PyTorch code on digits for 4 epochs (≈ 2 s), saved
    whole (torch.save(model)) and as a state_dict inside a training-state dict."""
    torch.manual_seed(0)
    model = fm.relu_cnn()
    mean, std = digits_data.normalisation()
    x = normalise(digits_data.train.images, mean, std)
    y = torch.from_numpy(digits_data.train.labels)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(4):
        model.train()
        for idx in torch.randperm(len(y)).split(64):
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()
    folder = tmp_path_factory.mktemp("own")
    torch.save(model, folder / "relu.pt")
    torch.save({"epoch": 4, "model_state_dict": model.state_dict()}, folder / "relu_sd.pt")
    return folder


def _accuracies(stdout: str) -> list[float]:
    m = re.search(r"ReLU model ([\d.]+)%  after the swap ([\d.]+)%  after fine-tuning ([\d.]+)%",
                  stdout)
    assert m, stdout
    return [float(v) for v in m.groups()]


def _verify_ok(model, net, *extra, lava: str = "0"):
    proc = cli("verify", str(model), str(net), "--dataset", "digits", "--samples", "60",
               "--lava-samples", lava, *extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK:" in proc.stdout
    return proc


def test_train_from_pickled_relu_model_then_export_and_verify(relu_digits, tmp_path):
    out = tmp_path / "q.pt"
    proc = cli("train", "--from", str(relu_digits / "relu.pt"), "--dataset", "digits",
               "--bits", "3", "--epochs", "1", "--lr", "0.02", "--maxpool", "avg", "--quiet",
               "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    relu, swapped, tuned = _accuracies(proc.stdout)
    assert relu > 85 and tuned > 80, proc.stdout
    assert "pickled module (tests.foreign_models.ReluCnn)" in proc.stdout
    net = tmp_path / "q.net"
    proc = cli("export", str(out), "-o", str(net))
    assert proc.returncode == 0, proc.stderr
    assert "model: lava-bitsnn checkpoint (user, digits)" in proc.stdout
    assert "folded:" in proc.stdout
    _verify_ok(out, net)


def test_train_from_with_holdout_never_reads_the_held_out_images(relu_digits, digits_data,
                                                                 tmp_path, monkeypatch):
    """``--from M --holdout N``: the normalisation taken from the data, the threshold
    calibration and the fine-tuning all skip the held-out images, so poisoning them leaves the
    checkpoint's weights bit for bit the same."""
    from lava_bitsnn.cli import train as train_cli

    states = []
    for data in (digits_data, poisoned_held_out(digits_data, 300)):
        monkeypatch.setattr(train_cli, "load_dataset", lambda *_, data=data: data)
        out = tmp_path / f"{len(states)}.pt"
        assert train_cli.main(["--from", str(relu_digits / "relu.pt"), "--dataset", "digits",
                               "--holdout", "300", "--epochs", "1", "--lr", "0.02",
                               "--maxpool", "avg", "--quiet", "-o", str(out)]) == 0
        states.append(load_checkpoint(out)["state_dict"])
    assert states[0].keys() == states[1].keys()
    for key, value in states[0].items():
        assert torch.equal(value, states[1][key]), key


def test_train_from_state_dict_with_levels(relu_digits, tmp_path):
    out = tmp_path / "q.pt"
    proc = cli("train", "--from", str(relu_digits / "relu_sd.pt"), "--model",
               "tests.foreign_models:relu_cnn", "--dataset", "digits", "--levels", "4",
               "--epochs", "1", "--lr", "0.02", "--maxpool", "avg", "--quiet", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "state_dict + factory" in proc.stdout
    net = tmp_path / "q.net"
    proc = cli("export", str(out), "-o", str(net))
    assert proc.returncode == 0, proc.stderr
    rows = [ln.split() for ln in proc.stdout.splitlines() if " neuron " in ln]
    assert rows and all(r[4:6] == ["3", "4"] for r in rows), proc.stdout  # b = 3, L = 4
    _verify_ok(out, net)


def _bn_stats(model):
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            if hasattr(m, "up") or hasattr(m, "thresh"):
                p = m.up if hasattr(m, "up") else m.thresh
                p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
    return model.eval()


def test_pickled_snn_meets_ann_model_with_forward_kwargs(tmp_path):
    path = tmp_path / "sma.pt"
    torch.save(_bn_stats(fm.snn_meets_ann(levels=4, channelwise=True)), path)
    net = tmp_path / "sma.net"
    flags = ["--dataset", "digits", "--forward-kwargs", json.dumps({"t": 0, "mode": "ann"})]
    proc = cli("export", str(path), "-o", str(net), *flags)
    assert proc.returncode == 0, proc.stderr
    assert "model: pickled module (tests.foreign_models.SnnMeetsAnnNet)" in proc.stdout
    assert "activations: myfloor, L=4 in all 3 layers, 3 channel-wise" in proc.stdout
    assert "channel-wise threshold(s) into the synapse weights" in proc.stdout
    _verify_ok(path, net, "--forward-kwargs", json.dumps({"t": 0, "mode": "ann"}), lava="2")


def test_state_dict_with_factory_and_metadata_flags(tmp_path):
    path = tmp_path / "if.pt"
    torch.save({"state_dict": _bn_stats(fm.if_cnn(levels=8)).state_dict()}, path)
    net = tmp_path / "if.net"
    flags = ["--model", "tests.foreign_models:if_cnn", "--model-kwargs", '{"levels": 8}',
             "--input-shape", "1,8,8", "--mean", "0.3", "--std", "0.35"]
    proc = cli("export", str(path), "-o", str(net), *flags)
    assert proc.returncode == 0, proc.stderr
    assert "state_dict + factory" in proc.stdout and "activations: if, L=8" in proc.stdout
    _verify_ok(path, net, *flags)


def test_bad_inputs_give_one_line_errors(relu_digits, tmp_path):
    out = tmp_path / "x.net"
    sd = str(relu_digits / "relu_sd.pt")
    meta = ["--dataset", "digits"]
    one_line_error(cli("export", sd, "-o", str(out), "--model", "no_such_pkg.mod:build", *meta),
                   "--import no_such_pkg.mod: cannot import it", out)
    one_line_error(cli("export", sd, "-o", str(out), "--model", "tests.foreign_models:if_cnn",
                       *meta), "the state_dict does not fit --model tests.foreign_models:if_cnn",
                   out)
    one_line_error(cli("export", sd, "-o", str(out), *meta), "holds a state_dict: name the "
                   "architecture with --model", out)
    clip = tmp_path / "clip.pt"
    torch.save(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), fm.LearnedClip(),
                                   torch.nn.Flatten(), torch.nn.Linear(72, 10)), clip)
    one_line_error(cli("export", str(clip), "-o", str(out), *meta),
                   "unknown activation module 1 (LearnedClip)", out)
    sma = tmp_path / "sma.pt"
    torch.save(fm.snn_meets_ann(levels=4), sma)
    one_line_error(cli("export", str(sma), "-o", str(out)), "add --input-shape C,H,W", out)
    one_line_error(cli("export", str(sma), "-o", str(out), *meta, "--levels", "0"),
                   "--levels: levels L must be an integer from 1", out)
    one_line_error(cli("export", str(sma), "-o", str(out), *meta, "--levels", "3"),
                   "--levels 3 disagrees with net.act1 (MyFloor), whose t is 4", out)
    # a pickled model whose class lives in a module that is gone
    (tmp_path / "gone_mod.py").write_text(
        "import torch\nclass Gone(torch.nn.Sequential):\n    pass\n")
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", "import torch, gone_mod; torch.save(gone_mod.Gone("
                    "torch.nn.Linear(64, 10)), 'gone.pt')"], cwd=tmp_path, check=True)
    (tmp_path / "gone_mod.py").unlink()
    one_line_error(cli("export", str(tmp_path / "gone.pt"), "-o", str(out), *meta),
                   "a class of the pickled model cannot be imported", out)
    one_line_error(cli("export", str(relu_digits / "relu.pt"), "-o", str(out), *meta),
                   "pass --maxpool keep", out)
    one_line_error(cli("export", str(relu_digits / "relu.pt"), "-o", str(out), *meta,
                       "--maxpool", "avg"), "replace ReLU with QCFS and fine-tune", out)


class _Evil:
    """Unpickling it creates a file: the stand-in for code run from a malicious model file."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_state_dict_file_is_never_unpickled_in_full(tmp_path, monkeypatch):
    from lava_bitsnn.ann import model_io

    sd = tmp_path / "sd.pt"
    torch.save({"state_dict": fm.if_cnn(levels=8).state_dict()}, sd)
    calls = []
    load = torch.load
    monkeypatch.setattr(model_io.torch, "load", lambda *a, **kw: calls.append(
        kw["weights_only"]) or load(*a, **kw))
    assert "state_dict" in model_io._load_file(sd, [])
    assert calls == [True]
    # a pickled module: weights_only first, then the full unpickling
    whole = tmp_path / "whole.pt"
    torch.save(fm.if_cnn(levels=8), whole)
    calls.clear()
    assert isinstance(model_io._load_file(whole, []), torch.nn.Module) and calls == [True, False]
    # a state_dict with a smuggled object that runs code when unpickled: refused, nothing ran
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": fm.if_cnn(levels=8).state_dict(), "x": _Evil(marker)}, evil)
    monkeypatch.undo()
    out = tmp_path / "evil.net"
    one_line_error(cli("export", str(evil), "-o", str(out), "--model",
                       "tests.foreign_models:if_cnn", "--model-kwargs", '{"levels": 8}',
                       "--dataset", "digits"),
                   "holds pickled objects that are neither tensors nor an nn.Module "
                   "(io.open): not unpickled", out)
    assert not marker.exists()


def test_maxpool_avg_outside_train_warns_that_it_is_not_your_model(tmp_path):
    from lava_bitsnn.ann.qcfs import QCFS

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), QCFS(3, threshold=2.0),
                                torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 4 * 4, 10)).eval()
    path, net = tmp_path / "mp.pt", tmp_path / "mp.net"
    torch.save(model, path)
    flags = ["--dataset", "digits", "--maxpool", "avg"]
    proc = cli("export", str(path), "-o", str(net), *flags)
    assert proc.returncode == 0, proc.stderr
    warning = ("warning: MaxPool2d swapped for AvgPool2d without fine-tuning at 2: this is no "
               "longer your model")
    assert warning in proc.stderr and f"bitsnn-train --from {path} --maxpool avg" in proc.stderr
    assert warning not in proc.stdout
    proc = _verify_ok(path, net, *flags)
    assert warning in proc.stderr
