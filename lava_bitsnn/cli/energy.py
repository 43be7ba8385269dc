"""``bitsnn-energy``: per-layer energy of an exported network from operations counted while it
runs on a dataset's test images."""

from __future__ import annotations

import argparse
import sys

from lava_bitsnn.cli.common import (
    add_data_args,
    add_engine_args,
    run_cli,
    simulate,
    test_split,
    write_json,
)


def parser() -> argparse.ArgumentParser:
    from lava_bitsnn.energy.presets import DEFAULT_PRESET, PRESETS

    p = argparse.ArgumentParser(prog="bitsnn-energy", description=__doc__.split("``: ")[1])
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
    from lava_bitsnn.energy.plot import plot_report
    from lava_bitsnn.energy.report import spike_rate_listing, to_csv
    from lava_bitsnn.files import atomic_write, check_writable
    from lava_bitsnn.netx import read_network

    preset = load_preset(args.preset)  # bad presets fail before any work
    for path in (args.json, args.csv, args.plot):
        if path:
            check_writable(path)
    net = read_network(args.network)
    images, labels = test_split(net, args.dataset, args.data_dir, args.samples)
    preds, counts, steps, _ = simulate(net, args, images, progress=not args.quiet)
    accuracy = float((preds == labels).mean())
    report = energy_report(counts, preset, {
        "network": args.network, "engine": args.engine, "precision": args.precision,
        "neuron": args.neuron, "time_steps": steps, "encoding": net.encoding,
        "dataset": args.dataset, "accuracy": accuracy}, net,
        run_neurobench(net, counts, images, args))
    print(format_table(report))
    print(spike_rate_listing(report))
    print(f"accuracy {100 * accuracy:.2f}% on {len(labels)} samples")
    if args.json:
        write_json(args.json, report)
    if args.csv:
        def write(tmp: str) -> None:
            with open(tmp, "w", newline="") as f:
                f.write(to_csv(report))

        atomic_write(args.csv, write)
    if args.plot:
        plot_report(report, args.plot)
    written = [p for p in (args.json, args.csv, args.plot) if p]
    if written:
        print("wrote " + ", ".join(written))
    return 0


def run_neurobench(net, counts, images, args: argparse.Namespace) -> dict:
    """The NeuroBench metrics of the run; the per-neuron events come from the reference engine
    (its counts are tested equal to the Lava models')."""
    from lava_bitsnn.energy.neurobench import input_events, neurobench_metrics
    from lava_bitsnn.reference import ReferenceEngine

    engine = ReferenceEngine(net, args.precision, args.neuron, args.time_steps)
    events, graded = input_events(engine, images, args.batch_size or 256)
    return neurobench_metrics(net, counts, events, graded, args.precision == "fixed")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return run_cli("bitsnn-energy", lambda: _main(args))


if __name__ == "__main__":
    sys.exit(main())
