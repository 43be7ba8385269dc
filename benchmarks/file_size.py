"""Bytes per weight of the shipped netx files, written with and without the float64 copies of
the weights and biases (``bitsnn-export --no-float-weights``), and how much of each file is
array data and how much HDF5 metadata (object headers, link indices, heaps). Usage:

    python benchmarks/file_size.py

Writes benchmarks/results/file_size.json; prints a markdown table.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import h5py
from checkpoints import ROOT, save_result

from lava_bitsnn.netx import read_network, write_network


def layout(path: Path) -> dict:
    """Objects (groups and datasets below the root) and the bytes their arrays take."""
    objects, data = 0, 0

    def visit(_: str, obj) -> None:
        nonlocal objects, data
        objects += 1
        if isinstance(obj, h5py.Dataset):
            data += obj.id.get_storage_size()

    with h5py.File(path) as f:
        f.visititems(visit)
    size = path.stat().st_size
    return {"bytes": size, "objects": objects, "data_bytes": data, "metadata_bytes": size - data}


def sizes(path: Path) -> dict:
    net = read_network(path)
    weights = sum(s.weight_int.size for layer in net.layers for s in layer.synapses)
    row: dict = {"weights": weights, "layers": len(net.layers) - 1}
    with tempfile.TemporaryDirectory() as tmp:
        for key, float_weights in (("with_float_weights", True), ("fixed_point_only", False)):
            out = Path(tmp) / "x.net"
            write_network(net, out, float_weights=float_weights)
            row[key] = {**layout(out), "bytes_per_weight": out.stat().st_size / weights}
    return row


def main() -> None:
    print("| file | weights | B/weight with float weights | B/weight fixed point only | "
          "of which HDF5 metadata |")
    print("|---|---:|---:|---:|---:|")
    for path in sorted((ROOT / "netx_models").glob("*.net")):
        row = sizes(path)
        save_result("file_size.json", path.name, {**row,
                    "command": "python benchmarks/file_size.py"})
        print(f"| `{path.name}` | {row['weights']:,} | "
              f"{row['with_float_weights']['bytes_per_weight']:.2f} | "
              f"{row['fixed_point_only']['bytes_per_weight']:.2f} | "
              f"{row['fixed_point_only']['metadata_bytes'] / 1e3:.0f} KB of "
              f"{row['fixed_point_only']['bytes'] / 1e3:.0f} KB "
              f"({row['fixed_point_only']['objects']} objects) |")


if __name__ == "__main__":
    main()
