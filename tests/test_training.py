"""Real (short) training on digits, checkpoint round trip, resume and the CLI's bad input."""

import subprocess
import sys

import pytest
import torch

import lava_bitsnn.ann.train as train_module
from lava_bitsnn.ann.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from lava_bitsnn.ann.train import TrainConfig, augment_batch, erase_batch, evaluate, train
from lava_bitsnn.errors import BitsnnError

FAST = dict(arch="mnist-cnn", dataset="digits", bits=4, batch_size=64, lr=0.05, seed=0)


@pytest.fixture(scope="module")
def digits(digits_data):
    return digits_data


@pytest.fixture(scope="module")
def trained(tmp_path_factory, digits):
    path = tmp_path_factory.mktemp("ckpt") / "digits.pt"
    ckpt = train(TrainConfig(epochs=6, **FAST), digits, str(path), progress=False)
    return path, ckpt


def test_short_training_on_digits_reaches_accuracy(trained):
    _, ckpt = trained
    # 6 epochs of mnist-cnn on 1437 digits images; measured 0.97-0.99 on this machine.
    assert ckpt["test_accuracy"] >= 0.95
    assert len(ckpt["log"]) == 6


def test_checkpoint_round_trip(trained, digits):
    path, ckpt = trained
    loaded = load_checkpoint(path)
    for key in ("arch", "arch_kwargs", "bits", "dataset", "input_shape", "normalisation",
                "class_names", "library_version", "log"):
        assert loaded[key] == ckpt[key]
    model = model_from_checkpoint(loaded)
    mean, std = loaded["normalisation"]["mean"], loaded["normalisation"]["std"]
    again = evaluate(model, digits.test.images, digits.test.labels, mean, std)
    assert again["accuracy"] == ckpt["test_accuracy"]


def test_deterministic_with_seed(tmp_path, digits):
    a = train(TrainConfig(epochs=1, **FAST), digits, str(tmp_path / "a.pt"), progress=False)
    b = train(TrainConfig(epochs=1, **FAST), digits, str(tmp_path / "b.pt"), progress=False)
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k


def test_resume_continues_from_saved_epoch(tmp_path, digits):
    half = tmp_path / "half.pt"
    ckpt = train(TrainConfig(epochs=1, **FAST), digits, str(half), progress=False)
    assert ckpt["epoch"] == 1
    resumed = train(TrainConfig(epochs=2, **FAST), digits, str(tmp_path / "resumed.pt"),
                    resume=str(half), progress=False)
    assert [e["epoch"] for e in resumed["log"]] == [1, 2]
    assert resumed["log"][0] == ckpt["log"][0]  # epoch 1 was not trained again
    with pytest.raises(BitsnnError, match="--resume checkpoint is"):
        train(TrainConfig(epochs=2, **{**FAST, "bits": 3}), digits, str(tmp_path / "x.pt"),
              resume=str(half), progress=False)


def test_resume_gives_the_uninterrupted_run_bit_for_bit(tmp_path, digits, monkeypatch):
    """Resuming from the checkpoint a 2-epoch run wrote after epoch 1 (weights, optimizer and
    schedule reloaded) must not change a single weight of its result."""
    after_epoch_1 = tmp_path / "after1.pt"

    def keep_first(ckpt, output):
        if not after_epoch_1.exists():
            save_checkpoint(ckpt, after_epoch_1)
        save_checkpoint(ckpt, output)
    monkeypatch.setattr(train_module, "save_checkpoint", keep_first)
    straight = train(TrainConfig(epochs=2, **FAST), digits, str(tmp_path / "s.pt"),
                     progress=False)
    assert load_checkpoint(after_epoch_1)["epoch"] == 1
    resumed = train(TrainConfig(epochs=2, **FAST), digits, str(tmp_path / "r.pt"),
                    resume=str(after_epoch_1), progress=False)
    for k, v in straight["state_dict"].items():
        assert torch.equal(v, resumed["state_dict"][k]), k


def test_bf16_trains_in_bfloat16_to_the_float32_accuracy_and_exports_exactly(
        trained, tmp_path, digits, monkeypatch):
    """``bf16``: the convolutions run in bfloat16 during training and the QCFS quantisers in
    float32 (seen by hooks), the checkpoint holds plain contiguous tensors, its accuracy is
    within 3 pp (10 of 359 images) of the same run in float32, it converts to an SNN that
    verifies with 0 mismatches, and it resumes in float32 with each epoch's precision logged."""
    from lava_bitsnn.ann.qcfs import QCFS
    from lava_bitsnn.convert.model import convert_checkpoint
    from lava_bitsnn.verify import verify_batch

    dtypes: dict[str, set] = {"conv": set(), "qcfs": set()}
    real = train_module.build_model

    def record(kind):
        return lambda mod, inp, out: dtypes[kind].add(out.dtype) if mod.training else None

    def hooked(*args, **kwargs):
        model = real(*args, **kwargs)
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv2d, QCFS)):
                m.register_forward_hook(record("qcfs" if isinstance(m, QCFS) else "conv"))
        return model
    path = tmp_path / "bf16.pt"
    monkeypatch.setattr(train_module, "build_model", hooked)
    ckpt = train(TrainConfig(epochs=6, bf16=True, **FAST), digits, str(path), progress=False)
    assert dtypes == {"conv": {torch.bfloat16}, "qcfs": {torch.float32}}
    assert all(v.is_contiguous() for v in ckpt["state_dict"].values())
    assert abs(ckpt["test_accuracy"] - trained[1]["test_accuracy"]) <= 10 / 359
    net = convert_checkpoint(path)
    report = verify_batch(model_from_checkpoint(load_checkpoint(path)), net,
                          digits.test.images, digits.test.labels)
    assert report.ok, report
    resumed = train(TrainConfig(epochs=7, **FAST), digits, str(tmp_path / "r.pt"),
                    resume=str(path), progress=False)
    assert [e["bf16"] for e in resumed["log"]] == [True] * 6 + [False]
    assert resumed["train_args"]["bf16"] is False
    # a checkpoint logged before the per-epoch key: its epochs keep the precision they ran in
    saved = load_checkpoint(path)
    saved["log"] = [{k: v for k, v in e.items() if k != "bf16"} for e in saved["log"]]
    torch.save(saved, tmp_path / "old.pt")
    resumed = train(TrainConfig(epochs=7, **FAST), digits, str(tmp_path / "r2.pt"),
                    resume=str(tmp_path / "old.pt"), progress=False)
    assert [e["bf16"] for e in resumed["log"]] == [True] * 6 + [False]


@pytest.mark.parametrize("amx,warned", [(False, True), (True, False), (None, False)])
def test_bf16_warns_on_a_cpu_without_amx(amx, warned, monkeypatch, capsys, tmp_path):
    """``bitsnn-train --bf16`` warns on stderr where the CPU has no AMX bfloat16 units (the
    run then emulates bfloat16), not where it has them or cannot tell; a run refused for its
    arguments is not warned (``test_bad_fixed_point_arguments``)."""
    from lava_bitsnn.cli.train import main

    monkeypatch.setattr(train_module, "cpu_model",
                        lambda: {"model": "Test CPU", "amx_bf16": amx})
    code = main(["--bf16", "--arch", "mnist-cnn", "--dataset", "digits", "-o",
                 str(tmp_path / "missing" / "x.pt")])
    err = capsys.readouterr().err
    assert code != 0 and "does not exist" in err  # stops at the output path, after the check
    assert ("warning: this CPU (Test CPU) has no AMX bfloat16 units" in err) is warned


def test_init_warm_starts_other_bits_from_a_checkpoint(trained, tmp_path, digits):
    """``--init``: a b=2 run starts from a b=4 model's weights and thresholds λ (so with a
    near-zero learning rate it ends where the b=4 model is, far from a fresh b=2 model)."""
    path, ckpt = trained
    tiny = {**FAST, "bits": 2, "lr": 1e-9}
    warm = train(TrainConfig(epochs=1, init=str(path), **tiny), digits, str(tmp_path / "w.pt"),
                 progress=False)
    fresh = train(TrainConfig(epochs=1, **tiny), digits, str(tmp_path / "f.pt"), progress=False)
    for key, value in ckpt["state_dict"].items():
        if value.is_floating_point() and "running" not in key:
            assert torch.allclose(warm["state_dict"][key], value, atol=1e-6), key
    assert warm["test_accuracy"] > fresh["test_accuracy"] + 0.3
    with pytest.raises(BitsnnError, match="--init checkpoint is"):
        train(TrainConfig(epochs=1, init=str(path), **{**tiny, "arch": "resnet20"}), digits,
              str(tmp_path / "x.pt"), progress=False)
    with pytest.raises(BitsnnError, match="exclude each other"):
        train(TrainConfig(epochs=2, init=str(path), **tiny), digits, str(tmp_path / "y.pt"),
              resume=str(tmp_path / "w.pt"), progress=False)


def test_bit_l1_reduces_bits_per_activation(tmp_path, digits):
    plain = train(TrainConfig(epochs=3, **FAST), digits, str(tmp_path / "p.pt"), progress=False)
    sparse = train(TrainConfig(epochs=3, bit_l1=3e-5, **FAST), digits, str(tmp_path / "s.pt"),
                   progress=False)
    assert sparse["log"][-1]["bits_per_activation"] < 0.8 * plain["log"][-1]["bits_per_activation"]


def test_augment_batch_shapes_and_content():
    gen = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 1 * 8 * 8, dtype=torch.float32).view(2, 1, 8, 8)
    out = augment_batch(x, flip=True, gen=gen)
    assert out.shape == x.shape
    # every output pixel is either padding (0) or one of the sample's own pixels
    for n in range(2):
        assert set(out[n].flatten().tolist()) <= set(x[n].flatten().tolist()) | {0.0}


def test_augment_batch_crops_every_offset_and_flips_about_half():
    """Each output is the padded image cut at some offset (dy, dx) in 0..2·pad, flipped or not;
    over many images every offset and both orientations occur."""
    n, size, pad = 400, 8, 1
    x = torch.arange(size * size, dtype=torch.float32).add(1).view(1, 1, size, size)
    out = augment_batch(x.repeat(n, 1, 1, 1), flip=True, gen=torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x[0, 0], (pad, pad, pad, pad))
    offsets = range(2 * pad + 1)
    crops = {(dy, dx, f): padded[dy:dy + size, dx:dx + size].flip(1) if f
             else padded[dy:dy + size, dx:dx + size]
             for dy in offsets for dx in offsets for f in (False, True)}
    found = []
    for image in out[:, 0]:
        match = [key for key, crop in crops.items() if torch.equal(image, crop)]
        assert len(match) == 1, "not a crop of the padded image"
        found.append(match[0])
    assert set(found) == set(crops)
    unflipped_share = sum(not f for _, _, f in found) / n
    assert 0.4 < unflipped_share < 0.6


def _zero_box(image: torch.Tensor) -> tuple[int, int] | None:
    """(height, width) of the zeros of a 2-D image of ones if they form one filled
    axis-aligned rectangle; None when nothing is zero. Fails on any other shape."""
    rows, cols = torch.nonzero(image == 0, as_tuple=True)
    if len(rows) == 0:
        return None
    h = int(rows.max() - rows.min() + 1)
    w = int(cols.max() - cols.min() + 1)
    assert len(rows) == h * w, "the erased pixels are not one rectangle"
    return h, w


def test_erase_batch_one_rectangle_per_hit_image():
    """On images of ones, every image is untouched or has exactly one zero rectangle of
    2-40 % of its area (up to rounding of the sides) and aspect 0.3-3.3, in every channel;
    about half of 2,000 images are hit at p = 0.5 (binomial sd 1.1 %)."""
    n, size = 2000, 32
    out = erase_batch(torch.ones(n, 2, size, size), 0.5, torch.Generator().manual_seed(3))
    assert torch.equal(out[:, 0], out[:, 1])
    boxes = [_zero_box(out[i, 0]) for i in range(n)]
    hit = [b for b in boxes if b is not None]
    assert 0.45 < len(hit) / n < 0.55
    for h, w in hit:
        assert 0.01 <= h * w / size**2 <= 0.45
        assert 0.25 <= h / w <= 4.0 or size in (h, w)  # a side clipped to the image
    areas = [h * w / size**2 for h, w in hit]
    assert min(areas) <= 0.05 and max(areas) >= 0.3  # the whole range is drawn from
    again = erase_batch(torch.ones(n, 2, size, size), 0.5, torch.Generator().manual_seed(3))
    assert torch.equal(out, again)
    assert not torch.equal(out, erase_batch(torch.ones(n, 2, size, size), 0.5,
                                            torch.Generator().manual_seed(4)))


def test_erase_batch_probability_bounds():
    x = torch.randn(64, 1, 16, 16)
    assert torch.equal(erase_batch(x, 0.0, torch.Generator().manual_seed(0)), x)
    every = erase_batch(torch.ones(64, 1, 16, 16), 1.0, torch.Generator().manual_seed(0))
    assert all(_zero_box(img[0]) is not None for img in every)


def test_config_validation():
    with pytest.raises(BitsnnError, match="bits"):
        TrainConfig(arch="mnist-cnn", dataset="digits", bits=9).validate()
    with pytest.raises(BitsnnError, match="unknown architecture"):
        TrainConfig(arch="lenet", dataset="digits").validate()
    with pytest.raises(BitsnnError, match="--stem"):
        TrainConfig(arch="vgg11", dataset="digits", arch_kwargs={"stem": "cifar"}).validate()


def test_non_checkpoint_files_rejected(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x80\x04garbage")
    with pytest.raises(BitsnnError, match="not a readable checkpoint"):
        load_checkpoint(bad)
    torch.save({"hello": 1}, tmp_path / "other.pt")
    with pytest.raises(BitsnnError, match="not a lava-bitsnn checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    save_checkpoint({"state_dict": {}}, tmp_path / "partial.pt")
    with pytest.raises(BitsnnError, match="lacks"):
        load_checkpoint(tmp_path / "partial.pt")


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "lava_bitsnn.cli.train", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.parametrize("args,message", [
    (["--arch", "lenet", "--dataset", "digits"], "unknown architecture"),
    (["--arch", "mnist-cnn", "--dataset", "svhn"], "unknown dataset"),
    (["--arch", "mnist-cnn", "--dataset", "digits", "--bits", "0"], "bits must be"),
    (["--arch", "mnist-cnn", "--dataset", "digits", "--erase", "1.5"], "erase must be"),
    (["--arch", "mnist-cnn", "--dataset", "digits", "--erase", "-0.1"], "erase must be"),
    (["--arch", "mnist-cnn", "--dataset", "digits", "--erase", "nan"], "erase must be"),
    (["--arch", "mnist-cnn", "--dataset", "digits", "--holdout", "1438"], "between 0 and 1437"),
    (["--arch", "mnist-cnn", "--dataset", "digits", "--holdout", "-1"], "between 0 and 1437"),
    (["--arch", "mnist-cnn", "--dataset", "digits", "--width", "2"], "--width applies to"),
    (["--arch", "resnet20", "--dataset", "digits", "--width", "0"], "width must be at least"),
    (["--from", "model.pt", "--dataset", "digits", "--width", "2"], "--from excludes"),
    (["--arch", "mnist-cnn", "--dataset", "mnist", "--data-dir", "/nonexistent"], "does not exist"),
    (["--arch", "mnist-cnn", "--dataset", "digits", "--device", "foo"], "unknown device"),
    (["--arch", "mnist-cnn", "--dataset", "digits", "--device", "meta"], "is not supported"),
    (["--arch", "mnist-cnn", "--dataset", "digits", "-o", "/nonexistent/dir/m.pt"],
     "does not exist"),
])
def test_cli_bad_input_one_line_no_traceback(tmp_path, args, message):
    if "-o" not in args:
        args = [*args, "-o", str(tmp_path / "m.pt")]
    proc = _cli(*args, "--epochs", "1")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not list(tmp_path.iterdir())


def test_cli_corrupt_data_leaves_no_checkpoint(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (data / name).write_bytes(b"truncated")
    out = tmp_path / "m.pt"
    proc = _cli("--arch", "mnist-cnn", "--dataset", "mnist", "--data-dir", str(data),
                "--epochs", "1", "-o", str(out))
    assert proc.returncode != 0 and "corrupt data file" in proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()


def test_cli_trains_and_prints_accuracy(tmp_path):
    out = tmp_path / "m.pt"
    proc = _cli("--arch", "mnist-cnn", "--dataset", "digits", "--epochs", "1", "--quiet",
                "--augment", "--erase", "0.5", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "test accuracy" in proc.stdout and out.is_file()
    assert load_checkpoint(out)["train_args"]["erase"] == 0.5


def test_training_erases_every_batch_with_the_configured_probability(tmp_path, digits,
                                                                      monkeypatch):
    import lava_bitsnn.ann.train as train_module

    seen = []
    real = train_module.erase_batch
    monkeypatch.setattr(train_module, "erase_batch",
                        lambda x, p, gen: seen.append(p) or real(x, p, gen))
    train(TrainConfig(epochs=1, erase=0.25, **FAST), digits, str(tmp_path / "e.pt"),
          progress=False)
    assert seen and set(seen) == {0.25}
    assert len(seen) == -(-len(digits.train.labels) // FAST["batch_size"])
    seen.clear()
    train(TrainConfig(epochs=1, **FAST), digits, str(tmp_path / "n.pt"), progress=False)
    assert not seen  # erase 0: never called


def test_torchrun_two_processes_on_digits(tmp_path, digits_checkpoint):
    """DDP on the CPU (gloo): ``torchrun --nproc_per_node 2`` trains digits with each rank on
    a strided half of every epoch; rank 0 writes a checkpoint that loads, exports and verifies,
    within 5 pp of the single-process run (359 test images: 5 pp = 18 images)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from lava_bitsnn.ann.checkpoint import load_checkpoint
    from tests.cli_helpers import cli

    out = tmp_path / "ddp.pt"
    torchrun = Path(sys.executable).with_name("torchrun")
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m",
                           "lava_bitsnn.cli.train", "--arch", "mnist-cnn", "--dataset",
                           "digits", "--epochs", "4", "--batch-size", "32", "--lr", "0.05",
                           "--quiet", "-o", str(out)], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("checkpoint written") == 1  # rank 0 only
    ddp = load_checkpoint(out)["test_accuracy"]
    single = load_checkpoint(digits_checkpoint)["test_accuracy"]
    assert abs(ddp - single) <= 0.05, (ddp, single)
    net = tmp_path / "ddp.net"
    assert cli("export", str(out), "-o", str(net)).returncode == 0
    verify = cli("verify", str(out), str(net), "--dataset", "digits", "--lava-samples", "0")
    assert verify.returncode == 0, verify.stdout[-2000:]
