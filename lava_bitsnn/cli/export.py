"""``bitsnn-export``: convert a QCFS checkpoint to a netx HDF5 network (Loihi fixed point)."""

from __future__ import annotations

import argparse
import sys

from lava_bitsnn.cli.common import run_cli
from lava_bitsnn.core.ir import ACC_MAX, ENCODINGS, Network


def summary(net: Network) -> str:
    """Per-layer table: shape, synapses, weight exponents, D, worst-case |accumulator|."""
    from lava_bitsnn.core.fanout import fan_out

    rows = [("#", "layer", "kind", "shape", "synapses", "w_exp", "D", "|acc| max", "of 2^23")]
    for i, layer in enumerate(net.layers):
        if layer.kind == "input":
            rows.append((str(i), "input", net.encoding, "x".join(map(str, layer.shape)),
                         "", "", "", "", ""))
            continue
        conns = sum(int(fan_out(s, net.layers[s.source].shape).sum()) for s in layer.synapses)
        exps = ",".join(str(s.weight_exp) for s in layer.synapses)
        rows.append((str(i), layer.name, layer.kind, "x".join(map(str, layer.shape)),
                     f"{conns:,}", exps, f"2^{layer.threshold_unit.bit_length() - 1}",
                     f"{layer.acc_bound:,}", f"{100 * layer.acc_bound / ACC_MAX:.1f}%"))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    notes = [f"  note: layer {layer.name}: {layer.note}" for layer in net.layers if layer.note]
    return "\n".join(lines + notes)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bitsnn-export", description=__doc__.split("``: ")[1])
    p.add_argument("checkpoint", help="model.pt written by bitsnn-train")
    p.add_argument("-o", "--output", required=True, help="netx file to write (.net)")
    p.add_argument("--time-steps", type=int, help="T per layer, 1..b (default b)")
    p.add_argument("--input-encoding", choices=ENCODINGS, default="bit-serial")
    p.add_argument("--lava-dl-cuba", metavar="FILE",
                   help="also write a plain lava-dl netx file with CUBA (IF) neurons")
    return p


def _main(args: argparse.Namespace) -> int:
    from lava_bitsnn.convert.model import convert_checkpoint
    from lava_bitsnn.files import check_writable
    from lava_bitsnn.netx import write_lava_dl_cuba, write_network

    check_writable(args.output)
    if args.lava_dl_cuba:
        check_writable(args.lava_dl_cuba)
    net = convert_checkpoint(args.checkpoint, args.time_steps, args.input_encoding)
    if args.lava_dl_cuba:
        write_lava_dl_cuba(net, args.lava_dl_cuba)
    write_network(net, args.output)
    print(summary(net))
    print(f"{len(net.layers) - 1} layers, b={net.bits}, T={net.time_steps}, "
          f"{net.encoding} input -> {args.output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return run_cli("bitsnn-export", lambda: _main(args))


if __name__ == "__main__":
    sys.exit(main())
