"""``bitsnn-run``: run an exported netx network on a dataset's test images and report accuracy."""

from __future__ import annotations

import argparse
import sys
import time

from lava_bitsnn.cli.common import add_data_args, run_cli, test_split, write_json


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bitsnn-run", description=__doc__.split("``: ")[1])
    p.add_argument("network", help="netx file written by bitsnn-export")
    p.add_argument("--engine", choices=["reference", "lava"], default="reference",
                   help="reference (fast batched numpy/torch) or lava (Lava processes)")
    p.add_argument("--precision", choices=["fixed", "float"], default="fixed")
    p.add_argument("--neuron", choices=["bit-serial", "if"], default="bit-serial",
                   help="bit-serial (this method) or if (rate-coded QCFS baseline)")
    p.add_argument("--time-steps", type=int, help="T (default: the file's; any T for if)")
    add_data_args(p)
    p.add_argument("--batch-size", type=int,
                   help="samples per batch (default: reference 256, lava 16)")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _main(args: argparse.Namespace) -> int:
    from lava_bitsnn.errors import BitsnnError
    from lava_bitsnn.files import check_writable
    from lava_bitsnn.netx import read_network
    from lava_bitsnn.reference import ReferenceEngine

    if args.json:
        check_writable(args.json)
    batch = args.batch_size or (16 if args.engine == "lava" else 256)
    if batch < 1:
        raise BitsnnError("--batch-size must be at least 1")
    net = read_network(args.network)
    images, labels = test_split(net, args.dataset, args.data_dir, args.samples)
    extra = {}
    t0 = time.perf_counter()
    if args.engine == "lava":
        from lava_bitsnn.lava.network import Network

        lava_net = Network(net, args.precision, args.neuron, args.time_steps, batch)
        lava_result = lava_net.run_dataset(images, progress=not args.quiet)
        preds, counts, steps = lava_result.predictions, lava_result.counts, lava_net.time_steps
        extra = {"simulated_steps": lava_result.steps, "latency_steps": lava_result.latency,
                 "period_steps": lava_result.period, "batch_size": batch,
                 "steps_per_sample": lava_result.period / batch}
    else:
        try:
            engine = ReferenceEngine(net, args.precision, args.neuron, args.time_steps)
        except ValueError as exc:
            raise BitsnnError(str(exc)) from None
        preds, counts = engine.evaluate(images, batch, progress=not args.quiet)
        steps = engine.time_steps
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
              f" steps, a batch of {batch} every {extra['period_steps']} steps "
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
