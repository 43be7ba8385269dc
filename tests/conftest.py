"""Shared test fixtures: real datasets from ../shared/datasets when present."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def shared_dataset_dir(name: str) -> Path:
    """Folder of a shared dataset, or skip the test with the reason."""
    folder = SHARED_DATA / name
    if not (folder / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real {name} data not found at {folder} (../shared/datasets is absent)")
    return folder
