"""``bitsnn-train``: train a QCFS ANN from the model zoo and write a checkpoint."""

from __future__ import annotations

import argparse
import sys

from lava_bitsnn.ann.data import DATASETS, load_dataset
from lava_bitsnn.ann.zoo import ARCHS
from lava_bitsnn.cli.common import run_cli


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bitsnn-train", description=__doc__.split("``: ")[1])
    p.add_argument("--arch", required=True, metavar="A", help=f"one of: {', '.join(ARCHS)}")
    p.add_argument("--dataset", required=True, metavar="D", help=f"one of: {', '.join(DATASETS)}")
    p.add_argument("--data-dir", help="folder with the dataset files (all but digits)")
    p.add_argument("--image-size", type=int, metavar="N",
                   help="square N-pixel images: zero-padded above the native size, resized "
                        "below it (default: native; image folders 32)")
    p.add_argument("--stem", choices=["cifar", "imagenet"],
                   help="ResNet/MobileNetV2 stem (default: the architecture's own)")
    p.add_argument("--bits", type=int, default=4, help="QCFS activation bits, 1..8 (default 4)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--augment", action="store_true", help="random crop (+ flip where sensible)")
    p.add_argument("--bit-l1", type=float, default=0.0, help="bit-sparsity l1 coefficient")
    p.add_argument("--qcfs-reg", type=float, default=0.0, help="QCFS regulariser weight")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--resume", help="continue from this checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("-o", "--output", required=True, help="checkpoint path (.pt)")
    return p


def _main(args: argparse.Namespace) -> int:
    from lava_bitsnn.ann.checkpoint import check_writable
    from lava_bitsnn.ann.train import TrainConfig, train

    cfg = TrainConfig(arch=args.arch, dataset=args.dataset, bits=args.bits, epochs=args.epochs,
                      batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                      augment=args.augment, bit_l1=args.bit_l1, qcfs_reg=args.qcfs_reg,
                      seed=args.seed, device=args.device,
                      arch_kwargs={"stem": args.stem} if args.stem else {})
    cfg.validate()
    check_writable(args.output)
    data = load_dataset(args.dataset, args.data_dir, args.image_size)
    if data.resized:
        print(f"{data.name}: images {data.resized}")
    ckpt = train(cfg, data, args.output, resume=args.resume, progress=not args.quiet)
    last = ckpt["log"][-1] if ckpt["log"] else {}
    print(f"test accuracy {100 * last.get('test_accuracy', float('nan')):.2f}%  "
          f"({len(data.test.labels)} {data.name} test images, {cfg.bits}-bit QCFS, "
          f"mean 1-bits/activation {last.get('bits_per_activation', float('nan')):.3f})")
    print(f"checkpoint written to {args.output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return run_cli("bitsnn-train", lambda: _main(args))


if __name__ == "__main__":
    sys.exit(main())
