"""Shared test fixtures: real datasets from ../shared/datasets when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# CI replays a fixed set of examples (no flaky landings); local runs keep exploring.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def shared_dataset_dir(name: str) -> Path:
    """Folder of a shared dataset, or skip the test with the reason."""
    folder = SHARED_DATA / name
    if not (folder / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real {name} data not found at {folder} (../shared/datasets is absent)")
    return folder


@pytest.fixture(scope="session")
def digits_data():
    from lava_bitsnn.ann.data import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="session")
def digits_checkpoint(tmp_path_factory, digits_data):
    """A real mnist-cnn (b=4) trained for 4 epochs on digits (≈ 5 s)."""
    from lava_bitsnn.ann.train import TrainConfig, train

    path = tmp_path_factory.mktemp("digits") / "digits.pt"
    train(TrainConfig(arch="mnist-cnn", dataset="digits", bits=4, epochs=4, batch_size=64,
                      lr=0.05, seed=0), digits_data, str(path), progress=False)
    return path


@pytest.fixture(scope="session")
def digits_net(digits_checkpoint):
    from lava_bitsnn.convert.model import convert_checkpoint

    return convert_checkpoint(digits_checkpoint)
