"""``bitsnn-run``: run an exported netx network on a dataset's test images and report accuracy."""

from __future__ import annotations

import argparse
import sys
import time

from lava_bitsnn.cli.common import (
    add_data_args,
    add_engine_args,
    run_cli,
    simulate,
    test_split,
    write_json,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bitsnn-run", description=__doc__.split("``: ")[1])
    p.add_argument("network", help="netx file written by bitsnn-export")
    add_engine_args(p)
    add_data_args(p)
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _main(args: argparse.Namespace) -> int:
    from lava_bitsnn.files import check_writable
    from lava_bitsnn.netx import read_network

    if args.json:
        check_writable(args.json)
    net = read_network(args.network)
    images, labels = test_split(net, args.dataset, args.data_dir, args.samples)
    t0 = time.perf_counter()
    preds, counts, steps, extra = simulate(net, args, images, progress=not args.quiet)
    wall = time.perf_counter() - t0
    accuracy = float((preds == labels).mean())
    result = {
        "network": args.network, "engine": args.engine, "precision": args.precision,
        "neuron": args.neuron, "time_steps": steps, "dataset": args.dataset,
        "samples": int(len(labels)), "accuracy": accuracy, "wall_seconds": wall,
        "samples_per_second": len(labels) / wall if wall else None,
        "overflows": sum(c.overflows for c in counts), **extra,
        "layers": [c.as_dict() for c in counts[1:]],
    }
    print(f"accuracy {100 * accuracy:.2f}% on {len(labels)} {args.dataset} test images "
          f"({args.engine}, {args.precision}, {args.neuron}, T={steps}); "
          f"{wall:.1f} s, {result['samples_per_second']:.1f} samples/s")
    if extra:
        print(f"lava: {extra['simulated_steps']} steps simulated, latency {extra['latency_steps']}"
              f" steps, a batch of {extra['batch_size']} every {extra['period_steps']} steps "
              f"({extra['steps_per_sample']:.2f} steps/sample)")
    if result["overflows"]:
        print(f"warning: {result['overflows']} accumulator saturation events in layers "
              f"{[c.name for c in counts if c.overflows]}", file=sys.stderr)
    if args.json:
        write_json(args.json, result)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return run_cli("bitsnn-run", lambda: _main(args))


if __name__ == "__main__":
    sys.exit(main())
