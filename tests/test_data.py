import gzip

import numpy as np
import pytest

from lava_bitsnn.ann.data import load_dataset
from lava_bitsnn.errors import BitsnnError
from tests.conftest import shared_dataset_dir


def test_digits_is_real_and_split():
    data = load_dataset("digits")
    assert data.train.images.dtype == np.uint8 and data.train.images.shape[1:] == (1, 8, 8)
    assert len(data.train.labels) + len(data.test.labels) == 1797
    assert set(np.unique(data.test.labels)) == set(range(10))
    assert data.train.images.max() == 255
    mean, std = data.normalisation()
    assert 0 < mean[0] < 1 and std[0] > 0


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_idx_datasets(name):
    data = load_dataset(name, shared_dataset_dir(name))
    assert data.train.images.shape == (60000, 1, 28, 28)
    assert data.test.images.shape == (10000, 1, 28, 28)
    assert np.bincount(data.test.labels).tolist() == [1000] * 10 or name == "mnist"


def _write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_idx_errors(tmp_path):
    with pytest.raises(BitsnnError, match="missing data file"):
        load_dataset("mnist", tmp_path)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((3, 28, 28)))
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(3))
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((2, 28, 28)))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(BitsnnError, match="corrupt data file"):
        load_dataset("mnist", tmp_path)
    raw = gzip.compress(bytes([0, 0, 8, 1]) + (5).to_bytes(4, "big") + b"\0\0")
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(raw)
    with pytest.raises(BitsnnError, match="expected 5 values"):
        load_dataset("mnist", tmp_path)


def test_unknown_dataset_and_missing_dir(tmp_path):
    with pytest.raises(BitsnnError, match="unknown dataset"):
        load_dataset("imagenet-21k")
    with pytest.raises(BitsnnError, match="needs --data-dir"):
        load_dataset("cifar10")
    with pytest.raises(BitsnnError, match="does not exist"):
        load_dataset("cifar10", tmp_path / "nope")


def test_cifar_pickles(tmp_path):
    import pickle

    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
                 b"labels": list(rng.integers(0, 10, 4))}
        (folder / name).write_bytes(pickle.dumps(entry))
    data = load_dataset("cifar10", tmp_path)
    assert data.train.images.shape == (20, 3, 32, 32) and data.test.images.shape == (4, 3, 32, 32)


def test_image_folder(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(2):
                image = Image.new("RGB", (20, 10), (i * 100, 0, 0))
                image.save(tmp_path / split / cls / f"{i}.png")
    data = load_dataset("imagefolder", tmp_path, image_size=16)
    assert data.class_names == ["cat", "dog"]
    assert data.train.images.shape == (4, 3, 16, 16)


def test_normalise_in_float64_for_the_verification_trace():
    """bitsnn-verify's ANN runs fully in float64: a float32 normalisation alone moved z/Δ by
    ~1e-6 and produced a code mismatch away from any bin edge on MNIST."""
    import torch

    from lava_bitsnn.ann.data import normalise

    x = np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16)
    got = normalise(x, [0.1307], [0.3081], torch.float64)
    assert got.dtype == torch.float64
    np.testing.assert_array_equal(got.numpy(), (x / 255.0 - 0.1307) / 0.3081)
    assert normalise(x, [0.1307], [0.3081]).dtype == torch.float32


def test_image_size_pads_or_resizes_and_says_which():
    native = load_dataset("digits")
    padded = load_dataset("digits", image_size=12)
    assert padded.input_shape == (1, 12, 12) and padded.resized == "zero-padded from 8x8 to 12x12"
    # the native pixels sit in the centre, surrounded by zeros
    np.testing.assert_array_equal(padded.test.images[:, :, 2:10, 2:10], native.test.images)
    assert padded.test.images[:, :, :2].max() == 0 and padded.test.images[:, :, 10:].max() == 0
    small = load_dataset("digits", image_size=4)
    assert small.input_shape == (1, 4, 4) and small.resized.startswith("resized from 8x8")
    assert load_dataset("digits", image_size=8).resized == ""
    with pytest.raises(BitsnnError, match="image-size"):
        load_dataset("digits", image_size=0)


def test_image_size_is_stored_in_the_checkpoint(tmp_path):
    from lava_bitsnn.ann.checkpoint import load_checkpoint
    from lava_bitsnn.ann.train import TrainConfig, train

    data = load_dataset("digits", image_size=12)
    train(TrainConfig(arch="mnist-cnn", dataset="digits", epochs=1, batch_size=256),
          data, str(tmp_path / "m.pt"), progress=False)
    ckpt = load_checkpoint(tmp_path / "m.pt")
    assert ckpt["input_shape"] == [1, 12, 12]
    assert ckpt["image_transform"] == "zero-padded from 8x8 to 12x12"
