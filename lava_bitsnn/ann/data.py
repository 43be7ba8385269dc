"""Datasets as in-memory uint8 images (N, C, H, W) with integer labels.

Keeping the raw 8-bit pixels lets the SNN's bit-serial input send them MSB-first; the
normalisation ``(x/255 − mean)/std`` is stored in the checkpoint and folded into layer 1 at
conversion. Sources: sklearn ``digits`` (the embedded default), the four original IDX ``.gz``
files of MNIST / Fashion-MNIST, the CIFAR-10/100 python pickles, and an ImageFolder tree.
"""

from __future__ import annotations

import gzip
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lava_bitsnn.core.ir import PIXEL_MAX
from lava_bitsnn.errors import BitsnnError

DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10", "cifar100", "imagefolder")

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck"]


@dataclass
class Split:
    images: np.ndarray  # uint8 (N, C, H, W)
    labels: np.ndarray  # int64 (N,)


@dataclass
class Dataset:
    name: str
    train: Split
    test: Split
    class_names: list[str]
    resized: str = ""  # how --image-size changed the native images ("" if it did not)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.train.images.shape[1:])  # type: ignore[return-value]

    def normalisation(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and std of the training images scaled to [0, 1]."""
        x = self.train.images.astype(np.float64) / PIXEL_MAX
        mean = x.mean(axis=(0, 2, 3))
        std = x.std(axis=(0, 2, 3))
        return [float(m) for m in mean], [float(max(s, 1e-6)) for s in std]


def _digits() -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # 0..16 intensities → 8-bit pixels.
    images = np.round(bunch.images * (PIXEL_MAX / 16.0)).astype(np.uint8)[:, None]
    labels = bunch.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(labels))
    cut = int(round(0.8 * len(labels)))
    tr, te = order[:cut], order[cut:]
    return Dataset("digits", Split(images[tr], labels[tr]), Split(images[te], labels[te]),
                   [str(i) for i in range(10)])


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    if not path.is_file():
        raise BitsnnError(f"missing data file {path}")
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise BitsnnError(f"corrupt data file {path}: {exc}") from None
    if len(raw) < 4 + 4 * ndim or raw[0:2] != b"\0\0" or raw[2] != 0x08 or raw[3] != ndim:
        raise BitsnnError(f"corrupt data file {path}: not an IDX file of {ndim} dimension(s)")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise BitsnnError(f"corrupt data file {path}: expected {int(np.prod(dims))} values, "
                          f"found {body.size}")
    return body.reshape(dims)


def _idx_dataset(name: str, folder: Path, class_names: list[str]) -> Dataset:
    splits = []
    for prefix in ("train", "t10k"):
        images = _read_idx(folder / f"{prefix}-images-idx3-ubyte.gz", 3)
        labels = _read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", 1).astype(np.int64)
        if len(images) != len(labels):
            raise BitsnnError(f"corrupt data in {folder}: {len(images)} {prefix} images but "
                              f"{len(labels)} labels")
        splits.append(Split(np.ascontiguousarray(images[:, None]), labels))
    return Dataset(name, splits[0], splits[1], class_names)


def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise BitsnnError(f"missing data file {path}")
    try:
        with path.open("rb") as f:
            return pickle.load(f, encoding="bytes")
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a corrupt file
        raise BitsnnError(f"corrupt data file {path}: {exc}") from None


def _cifar_split(entries: list[dict], label_key: bytes) -> Split:
    data = np.concatenate([np.asarray(e[b"data"], dtype=np.uint8) for e in entries])
    labels = np.concatenate([np.asarray(e[label_key], dtype=np.int64) for e in entries])
    return Split(data.reshape(-1, 3, 32, 32), labels)


def _subfolder(folder: Path, name: str) -> Path:
    """The standard extracted folder inside ``folder`` if present, else ``folder`` itself."""
    return folder / name if (folder / name).is_dir() else folder


def _cifar(name: str, folder: Path) -> Dataset:
    if name == "cifar10":
        sub = _subfolder(folder, "cifar-10-batches-py")
        train = [_unpickle(sub / f"data_batch_{i}") for i in range(1, 6)]
        test = [_unpickle(sub / "test_batch")]
        return Dataset(name, _cifar_split(train, b"labels"), _cifar_split(test, b"labels"),
                       CIFAR10_CLASSES)
    sub = _subfolder(folder, "cifar-100-python")
    meta = _unpickle(sub / "meta")
    names = [n.decode() for n in meta[b"fine_label_names"]]
    return Dataset(name, _cifar_split([_unpickle(sub / "train")], b"fine_labels"),
                   _cifar_split([_unpickle(sub / "test")], b"fine_labels"), names)


def _image_folder(folder: Path, image_size: int) -> Dataset:
    from PIL import Image

    test_dir = next((folder / d for d in ("test", "val") if (folder / d).is_dir()), None)
    if not (folder / "train").is_dir() or test_dir is None:
        raise BitsnnError(f"{folder} must contain train/ and test/ (or val/) class folders")
    classes = sorted(p.name for p in (folder / "train").iterdir() if p.is_dir())
    if not classes:
        raise BitsnnError(f"no class folders in {folder / 'train'}")

    def load(split_dir: Path) -> Split:
        images, labels = [], []
        for label, cls in enumerate(classes):
            for path in sorted((split_dir / cls).glob("*")):
                try:
                    with Image.open(path) as im:
                        im = im.convert("RGB").resize((image_size, image_size))
                        images.append(np.asarray(im, dtype=np.uint8).transpose(2, 0, 1))
                except OSError:
                    continue  # not an image
                labels.append(label)
        if not images:
            raise BitsnnError(f"no readable images under {split_dir}")
        return Split(np.stack(images), np.asarray(labels, dtype=np.int64))

    return Dataset("imagefolder", load(folder / "train"), load(test_dir), classes)


def _fit_split(split: Split, size: int) -> Split:
    """Zero-pad (centred) up to ``size`` × ``size``, or resize (bilinear) down to it."""
    n, c, h, w = split.images.shape
    if size >= h and size >= w:
        out = np.zeros((n, c, size, size), dtype=np.uint8)
        top, left = (size - h) // 2, (size - w) // 2
        out[:, :, top:top + h, left:left + w] = split.images
        return Split(out, split.labels)
    from PIL import Image

    out = np.empty((n, c, size, size), dtype=np.uint8)
    for i in range(n):
        for ch in range(c):
            im = Image.fromarray(split.images[i, ch]).resize((size, size), Image.BILINEAR)
            out[i, ch] = np.asarray(im, dtype=np.uint8)
    return Split(out, split.labels)


def fit_image_size(data: Dataset, size: int | None) -> Dataset:
    """``data`` with square ``size``-pixel images: zero-padded when ``size`` exceeds the native
    size, resized otherwise. ``None`` or the native size leaves it unchanged."""
    _, h, w = data.input_shape
    if size is None or (size == h and size == w):
        return data
    if size < 1:
        raise BitsnnError(f"--image-size must be at least 1, got {size}")
    how = "zero-padded" if size >= h and size >= w else "resized"
    return Dataset(data.name, _fit_split(data.train, size), _fit_split(data.test, size),
                   data.class_names, f"{how} from {h}x{w} to {size}x{size}")


# one draw for every run: the same --holdout N, the same images (a checkpoint records N, not
# this seed: changing it would move the images of every --holdout run, resumed ones included)
HOLDOUT_SEED = 20_250_101


def hold_out(data: Dataset, n: int) -> tuple[Dataset, Split]:
    """``--holdout N``: ``data`` without ``n`` of its training images, and those images.

    The ``n`` are a fixed random draw (``HOLDOUT_SEED``, independent of the training seed), so
    runs that differ in anything but ``n`` are compared on the same held-out images: choose
    between them by their held-out accuracy and report the test set once, for the choice.
    ``n = 0`` returns ``data`` and an empty split."""
    total = len(data.train.labels)
    if not 0 <= n < total:
        raise BitsnnError(f"--holdout must be between 0 and {total - 1} (the {data.name} "
                          f"training set has {total} images), got {n}")
    order = np.random.default_rng(HOLDOUT_SEED).permutation(total)
    kept, held = np.sort(order[n:]), np.sort(order[:n])
    train = data.train
    return (Dataset(data.name, Split(train.images[kept], train.labels[kept]), data.test,
                    data.class_names, data.resized) if n else data,
            Split(train.images[held], train.labels[held]))


def load_dataset(name: str, data_dir: str | Path | None = None,
                 image_size: int | None = None) -> Dataset:
    """Load a dataset by name; ``data_dir`` is required for all but ``digits``.

    ``image_size`` makes the images square of that size (see ``fit_image_size``); image
    folders, whose files differ in size, are resized to it (default 32).
    """
    if name not in DATASETS:
        raise BitsnnError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    if image_size is not None and image_size < 1:
        raise BitsnnError(f"--image-size must be at least 1, got {image_size}")
    if name == "digits":
        return fit_image_size(_digits(), image_size)
    if data_dir is None:
        raise BitsnnError(f"dataset {name!r} needs --data-dir")
    folder = Path(data_dir)
    if not folder.is_dir():
        raise BitsnnError(f"data directory {folder} does not exist")
    if name == "mnist":
        data = _idx_dataset(name, folder, [str(i) for i in range(10)])
    elif name == "fashion-mnist":
        data = _idx_dataset(name, folder, FASHION_CLASSES)
    elif name in ("cifar10", "cifar100"):
        data = _cifar(name, folder)
    else:
        return _image_folder(folder, image_size or 32)
    return fit_image_size(data, image_size)


def normalise(images: np.ndarray, mean: list[float], std: list[float], dtype=None):
    """uint8 NCHW → normalised torch tensor (float32 unless ``dtype`` says otherwise)."""
    import torch

    dtype = dtype or torch.float32
    # Keep the float64 step: the values are the same either way, but dropping it changes the
    # allocator's layout and with it the digits training run (netx_models/ is rebuilt bit for
    # bit, tests/test_recipes.py).
    x = torch.from_numpy(np.asarray(images, dtype=np.float64)).to(dtype).div_(PIXEL_MAX)
    m = torch.tensor(mean, dtype=dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=dtype).view(1, -1, 1, 1)
    return (x - m) / s
