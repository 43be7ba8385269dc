"""``bitsnn-verify``: compare, layer by layer, the QCFS ANN, the float SNN and the fixed-point
SNN (and the integer QANN it must equal); exit 0 only where every promised equality holds."""

from __future__ import annotations

import argparse
import sys

from lava_bitsnn.cli.common import (
    add_data_args,
    batch_ranges,
    checked_batch_size,
    run_cli,
    test_split,
    write_json,
)


def table(report) -> str:
    head = ("layer", "neurons", "ANN!=floatSNN", "(off-edge)", "QANN!=fixedSNN", "float!=fixed")
    rows = [(r.name, f"{r.neurons:,}", f"{r.ann_vs_float:,}", f"{r.ann_vs_float_unexplained:,}",
             f"{r.qann_vs_fixed:,}", f"{r.float_vs_fixed:,}") for r in report.layers]
    if report.lava_samples:
        head += ("Lava fixed!=ref", "Lava float!=ANN", "(off-edge)")
        rows = [row + (f"{r.lava_fixed_vs_reference:,}", f"{r.lava_float_vs_ann:,}",
                       f"{r.lava_float_unexplained:,}")
                for row, r in zip(rows, report.layers, strict=True)]
    rows = [head] + rows
    widths = [max(len(r[c]) for r in rows) for c in range(len(head))]
    return "\n".join("  ".join(c.rjust(w) if i else c.ljust(w)
                               for i, (c, w) in enumerate(zip(r, widths, strict=True)))
                     for r in rows)


def parser() -> argparse.ArgumentParser:
    from lava_bitsnn.ann.model_io import add_model_args

    p = argparse.ArgumentParser(prog="bitsnn-verify", description=__doc__.split("``: ")[1])
    p.add_argument("checkpoint", metavar="MODEL",
                   help="model.pt the network was exported from (any form bitsnn-export takes)")
    p.add_argument("network", help="netx file written by bitsnn-export")
    add_data_args(p)
    p.add_argument("--batch-size", type=int, default=200)
    p.add_argument("--lava-samples", type=int, default=16,
                   help="also run the first N images on Lava, fixed and float (0: skip)")
    p.add_argument("--json", help="also write the report to this JSON file")
    add_model_args(p, dataset_flag=False)
    return p


def _main(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from tqdm import tqdm

    from lava_bitsnn.ann.model_io import load_source
    from lava_bitsnn.cli.export import dataset_loader, describe_source
    from lava_bitsnn.errors import BitsnnError
    from lava_bitsnn.files import check_writable
    from lava_bitsnn.netx import read_network
    from lava_bitsnn.verify import EDGE_TOL, VerifyReport, verify_batch, verify_lava

    checked_batch_size(args.batch_size)
    if args.json:
        check_writable(args.json)
    source = load_source(args.checkpoint, args, dataset_loader(args))
    net = read_network(args.network)
    if not net.has_float_weights:
        raise BitsnnError(f"{args.network} was exported with --no-float-weights; bitsnn-verify "
                          "also checks the float path, so it needs a file with float weights")
    if net.meta.get("source_model_sha256") not in (None, source.digest()):
        raise BitsnnError(f"{args.network} was not exported from {args.checkpoint} "
                          "(model hash differs)")
    for line in describe_source(source):
        print(line, file=sys.stderr)
    model = source.model
    images, labels = test_split(net, args.dataset, args.data_dir, args.samples)
    report = VerifyReport(0)
    for start, stop in tqdm(batch_ranges(len(labels), args.batch_size), leave=False, unit="batch"):
        report.merge(verify_batch(model, net, images[start:stop], labels[start:stop]))
    if args.lava_samples > 0:
        report.merge(verify_lava(model, net, images[:args.lava_samples]))
    print(table(report))
    acc = report.accuracy
    print(f"accuracy: ANN {100 * acc['ann']:.2f}%  float SNN {100 * acc['float_snn']:.2f}%  "
          f"fixed SNN {100 * acc['fixed_snn']:.2f}%  integer QANN {100 * acc['int_qann']:.2f}%"
          f"  ({report.samples} {args.dataset} test images, T={net.time_steps})")
    agr = report.agreement
    print(f"prediction agreement: ANN/float SNN {100 * agr['ann_vs_float_snn']:.2f}%  "
          f"float/fixed SNN {100 * agr['float_snn_vs_fixed_snn']:.2f}%  "
          f"QANN/fixed SNN {100 * agr['int_qann_vs_fixed_snn']:.2f}%  "
          f"(logit mismatches QANN/fixed: {report.logit_mismatches})")
    print(f"the QANN column checks the fused closed form on all {report.samples} images and the "
          f"step-wise bit-serial dynamics on {report.stepwise_samples}")
    if report.lava_samples:
        print(f"Lava: {report.lava_samples} images run as Lava processes (Loihi2SimCfg), "
              "fixed_pt and floating_pt")
    if not report.ann_compared:
        print(f"ANN vs float SNN: not compared: the file runs T={net.time_steps}, fewer steps "
              "than bits, so each layer emits its top T bits (the integer QANN is truncated "
              "the same way, and fixed SNN == QANN still holds)")
    verdict = "OK" if report.ok else "FAILED"
    print(f"{verdict}: fixed SNN == integer QANN bit for bit; every ANN/float-SNN difference is a "
          f"bin-edge case (|z/Δ+½ − round| < {EDGE_TOL:g}); float/fixed gap = weight rounding")
    if args.json:
        write_json(args.json, {**asdict(report), "ok": report.ok})
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return run_cli("bitsnn-verify", lambda: _main(args))


if __name__ == "__main__":
    sys.exit(main())
