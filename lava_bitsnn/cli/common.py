"""What every console script shares: one-line errors with a non-zero exit, never a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable

from lava_bitsnn.errors import BitsnnError, Terminated


def run_cli(prog: str, body: Callable[[], int | None]) -> int:
    """Run ``body``; turn user errors, Ctrl-C and broken pipes into a one-line message."""
    try:
        return body() or 0
    except BitsnnError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Terminated as exc:
        print(f"{prog}: stopped by {exc}", file=sys.stderr)
        return 128 + exc.signum
    except MemoryError:
        print(f"{prog}: error: out of memory", file=sys.stderr)
        return 1


def add_data_args(p, samples: bool = True) -> None:
    """``--dataset``, ``--data-dir`` (and ``--samples``) as every evaluating command takes them."""
    from lava_bitsnn.ann.data import DATASETS

    p.add_argument("--dataset", required=True, metavar="D", help=f"one of: {', '.join(DATASETS)}")
    p.add_argument("--data-dir", help="folder with the dataset files (all but digits)")
    if samples:
        p.add_argument("--samples", type=int, help="first N test images (default: all)")


def test_split(net, dataset: str, data_dir: str | None, samples: int | None):
    """The test images and labels of a dataset, checked against the network's input shape."""
    from lava_bitsnn.ann.data import load_dataset

    if samples is not None and samples < 1:
        raise BitsnnError("--samples must be at least 1")
    size = int(net.input_shape[-1]) if len(net.input_shape) == 3 else 32
    data = load_dataset(dataset, data_dir, image_size=size)
    if data.resized:
        print(f"{dataset}: test images {data.resized} (the network's input size)",
              file=sys.stderr)
    if tuple(data.input_shape) != tuple(net.input_shape):
        raise BitsnnError(f"dataset {dataset} has images of shape {data.input_shape}, the "
                          f"network expects {tuple(net.input_shape)}")
    n = len(data.test.labels) if samples is None else min(samples, len(data.test.labels))
    return data.test.images[:n], data.test.labels[:n]


def batch_ranges(n: int, size: int) -> list[tuple[int, int]]:
    """(start, stop) pairs covering ``range(n)``."""
    return [(i, min(n, i + size)) for i in range(0, n, size)]


def write_json(path: str, payload: dict) -> None:
    import json

    from lava_bitsnn.files import atomic_write

    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(payload, f, indent=1)

    atomic_write(path, write)


def add_engine_args(p) -> None:
    """The simulation flags of bitsnn-run and bitsnn-energy."""
    p.add_argument("--engine", choices=["reference", "lava"], default="reference",
                   help="reference (fast batched numpy/torch) or lava (Lava processes)")
    p.add_argument("--precision", choices=["fixed", "float"], default="fixed")
    p.add_argument("--neuron", choices=["bit-serial", "if"], default="bit-serial",
                   help="bit-serial (this method) or if (rate-coded QCFS baseline)")
    p.add_argument("--time-steps", type=int, help="T (default: the file's; any T for if)")
    p.add_argument("--batch-size", type=int,
                   help="samples per batch (default: reference 256, lava 16)")
    p.add_argument("--allow-saturation", action="store_true",
                   help="report results even if 24-bit accumulators saturated (by default "
                        "that is an error: exported networks cannot saturate as bit-serial "
                        "SNNs, but fixed-point IF does over long windows)")


def simulate(net, args, images, progress: bool):
    """Run ``images`` through the engine the flags name: (predictions, per-layer counts,
    time steps, Lava timing facts or {}). Saturated accumulators are an error unless
    ``--allow-saturation``."""
    preds, counts, steps, extra = _simulate(net, args, images, progress)
    check_saturation(counts, args)
    return preds, counts, steps, extra


def check_saturation(counts, args) -> None:
    """Saturated accumulators are an error unless ``--allow-saturation``."""
    saturated = [c for c in counts if c.overflows]
    if saturated and not getattr(args, "allow_saturation", False):
        why = ("the IF membranes integrate a whole input every step: use fewer --time-steps or "
               "--precision float" if getattr(args, "neuron", "") == "if"
               else "is the file tampered or foreign?")
        raise BitsnnError(
            f"{sum(c.overflows for c in saturated):,} accumulator saturation events in layers "
            f"{', '.join(c.name for c in saturated)}: the results would not be the network's "
            f"({why}); --allow-saturation reports them anyway")


def checked_batch_size(batch: int) -> int:
    if batch < 1:
        raise BitsnnError("--batch-size must be at least 1")
    return batch


def batch_size(args) -> int:
    """``--batch-size``, or the engine's default (reference 256, Lava 16)."""
    return checked_batch_size(args.batch_size or (16 if args.engine == "lava" else 256))


def _simulate(net, args, images, progress: bool):
    from lava_bitsnn.reference import ReferenceEngine

    batch = batch_size(args)
    if args.engine == "lava":
        from lava_bitsnn.lava.runner import LavaRunner

        lava_net = LavaRunner(net, args.precision, args.neuron, args.time_steps, batch)
        result = lava_net.run_dataset(images, progress=progress)
        extra = {"simulated_steps": result.steps, "latency_steps": result.latency,
                 "period_steps": result.period, "batch_size": batch,
                 "steps_per_sample": result.period / batch}
        return result.predictions, result.counts, lava_net.time_steps, extra
    try:
        engine = ReferenceEngine(net, args.precision, args.neuron, args.time_steps)
    except ValueError as exc:
        raise BitsnnError(str(exc)) from None
    preds, counts = engine.evaluate(images, batch, progress=progress)
    return preds, counts, engine.time_steps, {}
