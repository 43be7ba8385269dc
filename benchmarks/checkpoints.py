"""Where the benchmarks keep their results and find the checkpoints of train_mnist_cnn.py and
deep_networks.py."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lava_bitsnn.ann.checkpoint import load_checkpoint
from lava_bitsnn.ann.data import Dataset, load_dataset
from lava_bitsnn.convert.model import convert_checkpoint
from lava_bitsnn.core.ir import Network

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MODELS = ROOT / "runs" / "benchmarks"
SHIPPED = ROOT / "benchmarks" / "deep"  # checkpoints committed with the repository
DATA_ROOT = ROOT.parent / "shared" / "datasets"


@dataclass
class BenchmarkModel:
    name: str
    path: Path
    checkpoint: dict
    net: Network
    data: Dataset


def model_path(name: str) -> Path:
    """``runs/benchmarks/NAME.pt``; in a fresh clone the committed copy in ``benchmarks/deep/``,
    where there is one, is copied there first, so runs that start from it need not retrain it."""
    path, shipped = MODELS / f"{name}.pt", SHIPPED / f"{name}.pt"
    if not path.exists() and shipped.exists():
        MODELS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shipped, path)
    return path


def load_benchmark_model(name: str, data_root: Path = DATA_ROOT) -> BenchmarkModel | None:
    """The checkpoint ``runs/benchmarks/NAME.pt`` converted, with its dataset; ``None`` (and a
    message) when it has not been trained."""
    path = model_path(name)
    if not path.is_file():
        print(f"skip {name}: {path} not found (train it with benchmarks/train_mnist_cnn.py or "
              "benchmarks/deep_networks.py --train)")
        return None
    ckpt = load_checkpoint(path)
    dataset = ckpt["dataset"]
    data = load_dataset(dataset, None if dataset == "digits" else Path(data_root) / dataset,
                        image_size=int(ckpt["input_shape"][-1]))  # as trained (--image-size)
    return BenchmarkModel(name, path, ckpt, convert_checkpoint(path), data)


def trained_models(names: list[str], data_root: Path = DATA_ROOT) -> Iterator[BenchmarkModel]:
    """The named benchmark models that have been trained, loaded one at a time."""
    for name in names:
        model = load_benchmark_model(name, data_root)
        if model is not None:
            yield model


def previous_results(filename: str) -> tuple[Path, dict]:
    """``benchmarks/results/FILENAME`` and what an earlier run saved there (models not run now
    keep their rows)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / filename
    return path, json.loads(path.read_text()) if path.exists() else {}


def save_result(filename: str, name: str, entry: dict) -> dict:
    """Merge ``entry`` into ``benchmarks/results/FILENAME`` under ``name``, reading the file
    again first: benchmark runs that overlap each write only their own models. Returns all
    results."""
    path, results = previous_results(filename)
    results.setdefault(name, {}).update(entry)
    path.write_text(json.dumps(results, indent=1))
    return results
