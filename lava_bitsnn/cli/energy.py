"""``bitsnn-energy``: per-layer energy of an exported network from operations counted while it
runs on a dataset's test images."""

from __future__ import annotations

import argparse
import sys

from lava_bitsnn.cli.common import (
    add_data_args,
    add_engine_args,
    batch_size,
    check_saturation,
    run_cli,
    simulate,
    test_split,
)
from lava_bitsnn.errors import BitsnnError


def parser() -> argparse.ArgumentParser:
    from lava_bitsnn.energy.presets import DEFAULT_PRESET, PRESETS

    p = argparse.ArgumentParser(
        prog="bitsnn-energy", description=__doc__.split("``: ")[1],
        epilog="NeuroBench's per-neuron events: with --engine reference they come from the same "
               "run; with --engine lava the images are run a second time on the reference "
               "engine for them (the Lava run keeps no per-neuron codes).")
    p.add_argument("network", help="netx file written by bitsnn-export")
    add_data_args(p)
    add_engine_args(p)
    p.add_argument("--preset", default=DEFAULT_PRESET,
                   help=f"one of {', '.join(PRESETS)}, or a .json / .toml file "
                        f"(default {DEFAULT_PRESET})")
    p.add_argument("--json", help="write the report as JSON")
    p.add_argument("--csv", help="write the per-layer table as CSV")
    p.add_argument("--plot", help="write a PNG: per-layer energy and spike rates")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _main(args: argparse.Namespace) -> int:
    from lava_bitsnn.energy import energy_report, format_table, load_preset
    from lava_bitsnn.energy.neurobench import neurobench_metrics
    from lava_bitsnn.energy.report import spike_rate_listing
    from lava_bitsnn.files import check_writable
    from lava_bitsnn.netx import read_network

    preset = load_preset(args.preset)  # bad presets fail before any work
    for path in (args.json, args.csv, args.plot):
        if path:
            check_writable(path)
    net = read_network(args.network)
    images, labels = test_split(net, args.dataset, args.data_dir, args.samples)
    preds, counts, steps, events, graded = run(net, args, images)
    accuracy = float((preds == labels).mean())
    report = energy_report(counts, preset, {
        "network": args.network, "engine": args.engine, "precision": args.precision,
        "neuron": args.neuron, "time_steps": steps, "encoding": net.encoding,
        "dataset": args.dataset, "accuracy": accuracy}, net,
        neurobench_metrics(net, counts, events, graded, args.precision == "fixed",
                           args.neuron), args.neuron)
    outputs = render_outputs(report, args)  # everything rendered before anything is written
    print(format_table(report))
    print(spike_rate_listing(report))
    print(f"accuracy {100 * accuracy:.2f}% on {len(labels)} samples")
    write_all(outputs)
    if outputs:
        print("wrote " + ", ".join(path for path, _ in outputs))
    return 0


def run(net, args: argparse.Namespace, images):
    """(predictions, counts, time steps, NeuroBench per-neuron events, graded input).
    Reference engine: one run gives the counts and the events. Lava engine: the events come
    from a second run of the same images on the reference engine (its counts are tested equal
    to the Lava models'; the Lava run does not keep per-neuron codes)."""
    from lava_bitsnn.energy.neurobench import evaluate_with_events, graded_input, input_events
    from lava_bitsnn.reference import ReferenceEngine

    batch = batch_size(args)
    if args.engine == "lava":
        preds, counts, steps, _ = simulate(net, args, images, progress=not args.quiet)
        engine = ReferenceEngine(net, args.precision, args.neuron, args.time_steps)
        events, graded = input_events(engine, images, 256)
        return preds, counts, steps, events, graded
    try:
        engine = ReferenceEngine(net, args.precision, args.neuron, args.time_steps)
    except ValueError as exc:
        raise BitsnnError(str(exc)) from None
    preds, counts, events = evaluate_with_events(engine, images, batch, not args.quiet)
    check_saturation(counts, args)
    return preds, counts, engine.time_steps, events, graded_input(engine)


def render_outputs(report: dict, args: argparse.Namespace) -> list[tuple[str, bytes]]:
    """(path, content) of every output asked for, rendered in memory."""
    import json

    from lava_bitsnn.energy.plot import render_png
    from lava_bitsnn.energy.report import to_csv

    outputs = []
    if args.json:
        outputs.append((args.json, json.dumps(report, indent=1).encode()))
    if args.csv:
        outputs.append((args.csv, to_csv(report).encode()))
    if args.plot:
        outputs.append((args.plot, render_png(report)))
    return outputs


def write_all(outputs: list[tuple[str, bytes]]) -> None:
    """Write every output through a temporary file each; the files are renamed into place only
    after all of them are written, so a failure while writing leaves none of them."""
    from lava_bitsnn.files import atomic_write

    if not outputs:
        return
    (path, content), rest = outputs[0], outputs[1:]

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(content)
        write_all(rest)  # the rest are written (and renamed) before this one is renamed

    atomic_write(path, write)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return run_cli("bitsnn-energy", lambda: _main(args))


if __name__ == "__main__":
    sys.exit(main())
