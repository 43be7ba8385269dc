"""``--holdout N``: a fixed draw of training images kept out of training and scored each epoch."""

import numpy as np
import pytest
import torch

from lava_bitsnn.ann.checkpoint import load_checkpoint, save_checkpoint
from lava_bitsnn.ann.data import Dataset, Split, hold_out
from lava_bitsnn.ann.train import TrainConfig, train
from lava_bitsnn.errors import BitsnnError
from tests.test_training import FAST, _cli


def _numbered(n: int) -> Dataset:
    """A dataset whose i-th training image carries i in its first two pixels."""
    images = np.zeros((n, 1, 4, 4), dtype=np.uint8)
    images[:, 0, 0, 0], images[:, 0, 0, 1] = np.arange(n) % 256, np.arange(n) // 256
    test = Split(np.full((3, 1, 4, 4), 7, dtype=np.uint8), np.zeros(3, dtype=np.int64))
    return Dataset("numbered", Split(images, np.arange(n) % 10), test, [str(i) for i in range(10)])


def _numbers(split: Split) -> np.ndarray:
    return split.images[:, 0, 0, 0].astype(int) + 256 * split.images[:, 0, 0, 1].astype(int)


def test_hold_out_splits_the_training_set_in_two_the_same_way_every_time():
    data = _numbered(1000)
    kept, held = hold_out(data, 200)
    inside, outside = _numbers(kept.train), _numbers(held)
    assert len(outside) == 200 and len(inside) == 800
    assert sorted([*inside, *outside]) == list(range(1000))
    assert np.array_equal(held.labels, outside % 10) and np.array_equal(kept.train.labels,
                                                                        inside % 10)
    assert kept.test is data.test
    assert np.array_equal(_numbers(hold_out(data, 200)[1]), outside)
    assert not np.array_equal(np.sort(outside), np.arange(200))  # a random draw, not the head
    same, none = hold_out(data, 0)
    assert same is data and len(none.labels) == 0
    assert len(hold_out(data, 999)[0].train.labels) == 1  # the largest N leaves one image
    for n in (-1, 1000):
        with pytest.raises(BitsnnError, match="--holdout must be between 0 and 999"):
            hold_out(data, n)


def poisoned_held_out(data: Dataset, n: int) -> Dataset:
    """``data`` with the ``n`` images ``--holdout n`` holds out inverted and their labels
    shifted (found through a numbered twin of the training set: the draw depends on its size
    alone)."""
    held_index = _numbers(hold_out(_numbered(len(data.train.labels)), n)[1])
    images, labels = data.train.images.copy(), data.train.labels.copy()
    images[held_index] = 255 - images[held_index]
    labels[held_index] = (labels[held_index] + 1) % 10
    return Dataset(data.name, Split(images, labels), data.test, data.class_names)


def test_training_never_sees_the_held_out_images(tmp_path, digits_data):
    """Poisoning the held-out images leaves the trained weights bit for bit the same, while
    their logged accuracy drops: they are scored, never trained on."""
    n = 300
    poisoned = poisoned_held_out(digits_data, n)
    cfg = TrainConfig(epochs=1, holdout=n, **FAST)
    clean = train(cfg, digits_data, str(tmp_path / "clean.pt"), progress=False)
    dirty = train(cfg, poisoned, str(tmp_path / "dirty.pt"), progress=False)
    for key, value in clean["state_dict"].items():
        assert torch.equal(value, dirty["state_dict"][key]), key
    assert clean["log"][-1]["test_accuracy"] == dirty["log"][-1]["test_accuracy"]
    assert clean["log"][-1]["holdout_accuracy"] > dirty["log"][-1]["holdout_accuracy"] + 0.5
    assert clean["train_args"]["holdout"] == n


def test_resume_refuses_another_holdout(tmp_path, digits_data):
    first = tmp_path / "first.pt"
    train(TrainConfig(epochs=1, holdout=100, **FAST), digits_data, str(first), progress=False)
    with pytest.raises(BitsnnError, match="trained with --holdout 100, not 0"):
        train(TrainConfig(epochs=2, **FAST), digits_data, str(tmp_path / "second.pt"),
              resume=str(first), progress=False)
    older = load_checkpoint(first)  # a checkpoint from before --holdout: it held none out
    del older["train_args"]["holdout"]
    save_checkpoint(older, tmp_path / "older.pt")
    with pytest.raises(BitsnnError, match="trained with --holdout 0, not 100"):
        train(TrainConfig(epochs=2, holdout=100, **FAST), digits_data,
              str(tmp_path / "third.pt"), resume=str(tmp_path / "older.pt"), progress=False)


def test_cli_prints_the_held_out_accuracy(tmp_path):
    out = tmp_path / "m.pt"
    proc = _cli("--arch", "mnist-cnn", "--dataset", "digits", "--epochs", "1", "--quiet",
                "--holdout", "300", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("held-out accuracy"))
    assert line.endswith("(300 training images held out)")
    assert load_checkpoint(out)["log"][-1]["holdout_accuracy"] == pytest.approx(
        float(line.split()[2].rstrip("%")) / 100, abs=5e-5)
