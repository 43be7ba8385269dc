"""Bytes per weight of the shipped netx files, written with and without the float64 copies of
the weights and biases (``bitsnn-export --no-float-weights``). Usage:

    python benchmarks/file_size.py

Writes benchmarks/results/file_size.json; prints a markdown table.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from checkpoints import ROOT, save_result

from lava_bitsnn.netx import read_network, write_network


def sizes(path: Path) -> dict:
    net = read_network(path)
    weights = sum(s.weight_int.size for layer in net.layers for s in layer.synapses)
    row: dict = {"weights": weights, "layers": len(net.layers) - 1}
    with tempfile.TemporaryDirectory() as tmp:
        for key, float_weights in (("with_float_weights", True), ("fixed_point_only", False)):
            out = Path(tmp) / "x.net"
            write_network(net, out, float_weights=float_weights)
            row[key] = {"bytes": out.stat().st_size,
                        "bytes_per_weight": out.stat().st_size / weights}
    return row


def main() -> None:
    print("| file | weights | B/weight with float weights | B/weight fixed point only |")
    print("|---|---:|---:|---:|")
    for path in sorted((ROOT / "netx_models").glob("*.net")):
        row = sizes(path)
        save_result("file_size.json", path.name, {**row,
                    "command": "python benchmarks/file_size.py"})
        print(f"| `{path.name}` | {row['weights']:,} | "
              f"{row['with_float_weights']['bytes_per_weight']:.2f} | "
              f"{row['fixed_point_only']['bytes_per_weight']:.2f} |")


if __name__ == "__main__":
    main()
