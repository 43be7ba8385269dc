"""``bitsnn-export``: convert a QCFS model to a netx HDF5 network (Loihi fixed point)."""

from __future__ import annotations

import argparse
import os
import sys

from lava_bitsnn.cli.common import run_cli
from lava_bitsnn.core.ir import ACC_MAX, ENCODINGS, INPUT_BITS, PIXEL_MAX, Network


def summary(net: Network) -> str:
    """Per-layer table: shape, levels, synapses, weight exponents, D, worst-case
    |accumulator|."""
    from lava_bitsnn.core.fanout import fan_out

    rows = [("#", "layer", "kind", "shape", "b", "L", "synapses", "w_exp", "D", "|acc| max",
             "of 2^23")]
    for i, layer in enumerate(net.layers):
        if layer.kind == "input":
            rows.append((str(i), "input", net.encoding, "x".join(map(str, layer.shape)),
                         str(INPUT_BITS), str(PIXEL_MAX), "", "", "", "", ""))
            continue
        conns = sum(int(fan_out(s, net.layers[s.source].shape).sum()) for s in layer.synapses)
        exps = ",".join(str(s.weight_exp) for s in layer.synapses)
        neuron = layer.kind == "neuron"
        rows.append((str(i), layer.name, layer.kind, "x".join(map(str, layer.shape)),
                     str(layer.bits) if neuron else "", str(layer.max_code) if neuron else "",
                     f"{conns:,}", exps, f"2^{layer.threshold_unit.bit_length() - 1}",
                     f"{layer.acc_bound:,}", f"{100 * layer.acc_bound / ACC_MAX:.1f}%"))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    notes = [f"  note: layer {layer.name}: {layer.note}" for layer in net.layers if layer.note]
    return "\n".join(lines + notes)


def folded(source, net: Network) -> str:
    """What the conversion folded away, in one line."""
    from torch import nn

    from lava_bitsnn.ann.checkpoint import FIXED_ARCH

    if source.checkpoint is not None and source.checkpoint["arch"] == FIXED_ARCH:
        return ("folded: nothing (a --fixed-point checkpoint holds the grid itself: the file's "
                "integers are its parameters as trained)")
    mods = list(source.model.modules())
    bn = sum(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in mods)
    pools = sum(isinstance(m, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)) for m in mods)
    chw = sum(a.channels > 1 for a in source.activations)
    parts = [f"{bn} BatchNorm into their synapses", "input normalisation into layer 1",
             f"QCFS half-step into the biases of {sum(lay.kind == 'neuron' for lay in net.layers)}"
             " layers"]
    if pools:
        parts.append(f"{pools} average pool(s) into the next synapse")
    if chw:
        parts.append(f"{chw} channel-wise threshold(s) into the synapse weights (D stays 2^k)")
    if source.swapped_maxpool:
        parts.append(f"MaxPool2d swapped for AvgPool2d at {', '.join(source.swapped_maxpool)}")
    return "folded: " + "; ".join(parts)


def parser() -> argparse.ArgumentParser:
    from lava_bitsnn.ann.model_io import add_model_args

    p = argparse.ArgumentParser(prog="bitsnn-export", description=__doc__.split("``: ")[1])
    p.add_argument("checkpoint", metavar="MODEL",
                   help="model.pt: a bitsnn-train checkpoint, a pickled nn.Module or a "
                        "state_dict (with --model); a state_dict is loaded with "
                        "weights_only=True, a pickled module executes code from the file")
    p.add_argument("-o", "--output", required=True, help="netx file to write (.net)")
    p.add_argument("--time-steps", type=int, help="T per layer, 1..b (default b)")
    p.add_argument("--input-encoding", choices=ENCODINGS, default="bit-serial")
    p.add_argument("--no-float-weights", action="store_true",
                   help="leave out the float64 weights and biases (most of the file): about "
                        "1 byte per weight; the file then runs in fixed point only")
    p.add_argument("--lava-dl-cuba", metavar="FILE",
                   help="also write a plain lava-dl netx file with CUBA (IF) neurons")
    add_model_args(p)
    return p


def dataset_loader(args: argparse.Namespace):
    """``--dataset`` as a lazy loader (None without the flag)."""
    if not getattr(args, "dataset", None):
        return None

    def load():
        from lava_bitsnn.ann.data import load_dataset

        return load_dataset(args.dataset, args.data_dir)

    return load


def describe_source(source, warn: bool = True) -> list[str]:
    """What was loaded; with ``warn`` also the ``--maxpool avg`` warning (``bitsnn-verify``
    prints these lines on stderr)."""
    from lava_bitsnn.ann.adapters import describe

    lines = [f"model: {source.description} from {source.path}", describe(source.activations)]
    if warn and source.swap_warning():
        lines.append(source.swap_warning())
    return lines


def _main(args: argparse.Namespace) -> int:
    from lava_bitsnn.ann.model_io import load_source
    from lava_bitsnn.convert.model import convert_source
    from lava_bitsnn.files import check_writable
    from lava_bitsnn.netx import write_lava_dl_cuba, write_network

    check_writable(args.output)
    if args.lava_dl_cuba:
        check_writable(args.lava_dl_cuba)
    source = load_source(args.checkpoint, args, dataset_loader(args))
    for line in describe_source(source, warn=False):
        print(line)
    net = convert_source(source, args.time_steps, args.input_encoding)
    if source.swap_warning():  # on stderr, once the swapped model converts
        print(f"bitsnn-export: {source.swap_warning()}", file=sys.stderr)
    if args.lava_dl_cuba:
        write_lava_dl_cuba(net, args.lava_dl_cuba)
    write_network(net, args.output, float_weights=not args.no_float_weights)
    print(summary(net))
    print(folded(source, net))
    bits = sorted({layer.bits for layer in net.layers if layer.kind == "neuron"})
    b = f"b={net.bits}" if len(bits) == 1 else f"b={','.join(map(str, bits))} per layer"
    weights = sum(s.weight_int.size for layer in net.layers for s in layer.synapses)
    print(f"{len(net.layers) - 1} layers, {b}, T={net.time_steps}, "
          f"{net.encoding} input -> {args.output} ({os.path.getsize(args.output) / weights:.2f} "
          f"bytes per weight{'' if not args.no_float_weights else ', fixed point only'})")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return run_cli("bitsnn-export", lambda: _main(args))


if __name__ == "__main__":
    sys.exit(main())
