"""``bitsnn-train``: train a QCFS ANN from the model zoo (or fine-tune your own model with
``--from``) and write a checkpoint."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from lava_bitsnn.ann.data import DATASETS, load_dataset
from lava_bitsnn.ann.zoo import ARCH_OPTIONS, ARCHS
from lava_bitsnn.cli.common import run_cli

if TYPE_CHECKING:
    from lava_bitsnn.ann.train import TrainConfig


def parser() -> argparse.ArgumentParser:
    from lava_bitsnn.ann.model_io import add_model_args
    from lava_bitsnn.ann.train import ERASE_AREA, ERASE_ASPECT

    p = argparse.ArgumentParser(prog="bitsnn-train",
                                description=__doc__.split("``: ")[1].replace("``", ""))
    p.add_argument("--arch", metavar="A", help=f"one of: {', '.join(ARCHS)}")
    p.add_argument("--from", dest="source", metavar="MODEL",
                   help="fine-tune this model instead (ReLU or QCFS; a checkpoint, a pickled "
                        "nn.Module or a state_dict with --model): its ReLUs become QCFS with "
                        "calibrated thresholds (paper A.9)")
    p.add_argument("--dataset", required=True, metavar="D", help=f"one of: {', '.join(DATASETS)}")
    p.add_argument("--data-dir", help="folder with the dataset files (all but digits)")
    p.add_argument("--image-size", type=int, metavar="N",
                   help="square N-pixel images: zero-padded above the native size, resized "
                        "below it (default: native; image folders 32)")
    p.add_argument("--stem", choices=["cifar", "imagenet"],
                   help="ResNet/MobileNetV2 stem (default: the architecture's own)")
    p.add_argument("--width", type=int, metavar="K",
                   help="ResNet channel multiplier (default 1); with --init from a narrower "
                        "checkpoint, its network is widened without changing what it computes")
    p.add_argument("--bits", type=int, help="QCFS activation bits, 1..8 (default 4)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, help="default 5e-4")
    p.add_argument("--augment", action="store_true", help="random crop (+ flip where sensible)")
    p.add_argument("--erase", type=float, default=0.0, metavar="P",
                   help=f"random erasing: with probability P per image, a random rectangle of "
                        f"{100 * ERASE_AREA[0]:g}-{100 * ERASE_AREA[1]:g}%% of its area, aspect "
                        f"{ERASE_ASPECT:g}-{1 / ERASE_ASPECT:.1f}, is set to the normalisation's "
                        "mean (default 0: off)")
    p.add_argument("--bit-l1", type=float, default=0.0, help="bit-sparsity l1 coefficient")
    p.add_argument("--qcfs-reg", type=float, default=0.0, help="QCFS regulariser weight")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--holdout", type=int, default=0, metavar="N",
                   help="train without N training images (the same fixed draw in every run) "
                        "and log their accuracy each epoch, to choose between runs without "
                        "looking at the test set (default 0)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--bf16", action="store_true",
                   help="mixed precision: bfloat16 autocast and channels-last (faster on "
                        "CPUs with AMX; the QCFS quantisers, weights and the test evaluation "
                        "stay float32)")
    p.add_argument("--resume", help="continue from this checkpoint")
    p.add_argument("--init", metavar="CKPT",
                   help="start from the weights and thresholds of this checkpoint of the same "
                        "architecture and data (its bits may differ: a b=4 model warm-starts "
                        "b=3 or b=2, or a bit-l1 run; with --width K a narrower ResNet is "
                        "first widened to width K)")
    p.add_argument("--fixed-point", action="store_true",
                   help="with --from: fine-tune the exported fixed-point network itself (BN "
                        "folded, the export's integer grid with straight-through rounding); "
                        "the result evaluates in PyTorch to exactly the fixed-point SNN")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("-o", "--output", required=True, help="checkpoint path (.pt)")
    add_model_args(p, dataset_flag=False)
    return p


def _fine_tune(args: argparse.Namespace) -> int:
    """``--from``: calibrate, swap, fine-tune; print the three accuracies."""
    import torch

    from lava_bitsnn.ann.adapters import describe
    from lava_bitsnn.ann.checkpoint import USER_ARCH, check_writable
    from lava_bitsnn.ann.data import hold_out, normalise
    from lava_bitsnn.ann.model_io import load_source
    from lava_bitsnn.ann.qcfs import bits_for_levels, qcfs_layers
    from lava_bitsnn.ann.relu_to_qcfs import relu_to_qcfs
    from lava_bitsnn.ann.train import TrainConfig, evaluate
    from lava_bitsnn.errors import BitsnnError

    if args.arch or args.init or args.stem or args.width is not None:
        raise BitsnnError("--from excludes --arch, --init, --stem and --width (it starts from "
                          "the given model)")
    bits = 4 if args.bits is None else args.bits
    if args.levels is not None:
        try:
            need = bits_for_levels(args.levels)
        except ValueError as exc:
            raise BitsnnError(f"--levels: {exc}") from None
        if args.bits is not None and bits != need:
            raise BitsnnError(f"--levels {args.levels} needs {need} bits, not --bits {bits}")
        bits = need
    cfg = TrainConfig(arch=USER_ARCH, bits=bits, weight_decay=_weight_decay(args),
                      qcfs_reg=args.qcfs_reg, **_schedule(args))
    cfg.validate()
    _warn_if_bf16_is_emulated(cfg)
    check_writable(args.output)
    data = load_dataset(args.dataset, args.data_dir, args.image_size)
    kept = hold_out(data, cfg.holdout)[0]  # all the run sees before train() holds them out too
    source = load_source(args.source, args, kept, relu=True)
    print(f"model: {source.description} from {args.source}")
    if tuple(source.input_shape) != tuple(data.input_shape):
        raise BitsnnError(f"the model takes inputs of shape {source.input_shape}, dataset "
                          f"{data.name} has {data.input_shape} (use --image-size)")
    mean, std = source.mean, source.std
    test = data.test
    before = evaluate(source.model, test.images, test.labels, mean, std)["accuracy"]
    model = source.model
    had_qcfs = bool(qcfs_layers(model))
    gen = torch.Generator().manual_seed(args.seed)
    pick = torch.randperm(len(kept.train.labels), generator=gen)[:512].numpy()
    model = relu_to_qcfs(model, None if args.levels else bits,
                         calibration=None if had_qcfs else normalise(kept.train.images[pick],
                                                                     mean, std),
                         levels=args.levels, maxpool=args.maxpool)
    layers = qcfs_layers(model)
    if not layers:
        raise BitsnnError("the model has neither ReLU nor QCFS activations to fine-tune")
    cfg.bits = max(m.bits for _, m in layers)
    found = source.activations
    print(describe(found) if found else f"swapped ReLU for QCFS in {len(layers)} modules "
          f"({'L=' + str(args.levels) if args.levels else f'{bits} bits'}), thresholds "
          "calibrated on 512 training images")
    swapped = evaluate(model, test.images, test.labels, mean, std)["accuracy"]
    user = {"normalisation": (mean, std), "imports": source.imports,
            "source": {"file": str(args.source), "form": source.kind,
                       "description": source.description, "factory": source.factory}}
    return _train_and_report(cfg, data, args, model, user, [("ReLU model", before), (
        "after the swap", swapped)], "after fine-tuning")


def _train_and_report(cfg, data, args: argparse.Namespace, model, user: dict,
                      before: list[tuple[str, float]], after_label: str, note: str = "") -> int:
    """Fine-tune, then print the accuracies before and after on one line."""
    from lava_bitsnn.ann.train import train

    ckpt = train(cfg, data, args.output, progress=not args.quiet, model=model, user=user)
    after = ckpt["log"][-1]["test_accuracy"] if ckpt["log"] else float("nan")
    parts = [f"{label} {100 * acc:.2f}%" for label, acc in [*before, (after_label, after)]]
    print(f"accuracy: {'  '.join(parts)}  ({len(data.test.labels)} {data.name} test images, "
          f"{cfg.epochs} epochs)")
    _print_holdout(ckpt)
    print(f"checkpoint written to {args.output}{note}")
    return 0


def _schedule(args: argparse.Namespace) -> dict:
    """The TrainConfig fields every kind of training takes straight from the command line."""
    return {"dataset": args.dataset, "epochs": args.epochs, "batch_size": args.batch_size,
            "lr": args.lr, "augment": args.augment, "erase": args.erase,
            "bit_l1": args.bit_l1, "seed": args.seed, "device": args.device, "bf16": args.bf16,
            "holdout": args.holdout}


def _warn_if_bf16_is_emulated(cfg: TrainConfig) -> None:
    """On stderr, for a valid ``--bf16`` run on a CPU without AMX bfloat16 units."""
    from lava_bitsnn.ann.train import cpu_model

    if not cfg.bf16 or cfg.device != "cpu":
        return
    cpu = cpu_model()
    if cpu["amx_bf16"] is False:
        print(f"bitsnn-train: warning: this CPU ({cpu['model']}) has no AMX bfloat16 "
              "units, so --bf16 is emulated here and trains about 12x slower than float32",
              file=sys.stderr)


def _arch_kwargs(args: argparse.Namespace) -> dict:
    """The zoo constructor's options given on the command line (absent: its defaults)."""
    given = {k: getattr(args, k) for k in ARCH_OPTIONS}
    return {k: v for k, v in given.items() if v is not None and (k, v) != ("width", 1)}


def _weight_decay(args: argparse.Namespace) -> float:
    return 5e-4 if args.weight_decay is None else args.weight_decay


def _fixed_point(args: argparse.Namespace) -> int:
    """``--from M --fixed-point``: convert M, fine-tune its integer grid, print the accuracies
    of the float model, the fixed-point SNN as exported and after fine-tuning."""
    from lava_bitsnn.ann.checkpoint import FIXED_ARCH, check_writable
    from lava_bitsnn.ann.data import hold_out
    from lava_bitsnn.ann.model_io import load_source
    from lava_bitsnn.ann.train import TrainConfig, evaluate
    from lava_bitsnn.convert.fixed_model import FixedPointNet
    from lava_bitsnn.convert.model import convert_source
    from lava_bitsnn.errors import BitsnnError

    if args.arch or args.resume or args.init or args.stem or args.width is not None or \
            args.bits is not None or args.levels is not None:
        raise BitsnnError("--fixed-point keeps the model's architecture and bits: drop --arch, "
                          "--stem, --width, --resume, --init, --bits and --levels")
    if args.qcfs_reg or args.weight_decay is not None:
        raise BitsnnError("--fixed-point trains the grid's mantissas and biases on its exact "
                          "grid: --qcfs-reg and --weight-decay do not apply")
    data = load_dataset(args.dataset, args.data_dir, args.image_size)
    source = load_source(args.source, args, hold_out(data, args.holdout)[0])
    if tuple(source.input_shape) != tuple(data.input_shape):
        raise BitsnnError(f"the model takes inputs of shape {source.input_shape}, dataset "
                          f"{data.name} has {data.input_shape} (use --image-size)")
    net = convert_source(source)
    model = FixedPointNet(net)
    cfg = TrainConfig(arch=FIXED_ARCH, bits=net.bits, weight_decay=0.0, **_schedule(args))
    cfg.validate()
    check_writable(args.output)
    print(f"model: {source.description} from {args.source}; fixed point: "
          f"{len(net.layers) - 1} layers, T={net.time_steps}")
    mean, std, test = source.mean, source.std, data.test
    before = evaluate(source.model, test.images, test.labels, mean, std)["accuracy"]
    exported = evaluate(model, test.images, test.labels, mean, std)["accuracy"]
    user = {"normalisation": (mean, std),
            "source": {"file": str(args.source), "description": source.description,
                       "float_accuracy": before, "exported_fixed_snn_accuracy": exported}}
    return _train_and_report(cfg, data, args, model, user, [
        ("float model", before), ("fixed-point SNN as exported", exported)],
        "after fixed-point fine-tuning", " (bitsnn-export it: the file is this model)")


def _main(args: argparse.Namespace) -> int:
    from lava_bitsnn.ann.checkpoint import check_writable
    from lava_bitsnn.ann.train import TrainConfig, train
    from lava_bitsnn.errors import BitsnnError

    if args.fixed_point and not args.source:
        raise BitsnnError("--fixed-point needs --from CHECKPOINT (the model to fine-tune)")
    if args.source:
        return _fixed_point(args) if args.fixed_point else _fine_tune(args)
    if not args.arch:
        raise BitsnnError("give --arch A (a zoo model) or --from MODEL (your own)")
    cfg = TrainConfig(arch=args.arch, bits=4 if args.bits is None else args.bits,
                      weight_decay=_weight_decay(args), qcfs_reg=args.qcfs_reg,
                      arch_kwargs=_arch_kwargs(args),
                      init=args.init or "", **_schedule(args))
    cfg.validate()
    _warn_if_bf16_is_emulated(cfg)
    check_writable(args.output)
    data = load_dataset(args.dataset, args.data_dir, args.image_size)
    if data.resized:
        print(f"{data.name}: images {data.resized}")
    ckpt = train(cfg, data, args.output, resume=args.resume, progress=not args.quiet)
    if int(os.environ.get("RANK", "0")):  # under torchrun only rank 0 evaluates and writes
        return 0
    last = ckpt["log"][-1] if ckpt["log"] else {}
    print(f"test accuracy {100 * last.get('test_accuracy', float('nan')):.2f}%  "
          f"({len(data.test.labels)} {data.name} test images, {cfg.bits}-bit QCFS, "
          f"mean 1-bits/activation {last.get('bits_per_activation', float('nan')):.3f})")
    _print_holdout(ckpt)
    print(f"checkpoint written to {args.output}")
    return 0


def _print_holdout(ckpt: dict) -> None:
    """With ``--holdout N``: the last epoch's accuracy on the held-out training images."""
    last = ckpt["log"][-1] if ckpt["log"] else {}
    if "holdout_accuracy" in last:
        n = ckpt["train_args"]["holdout"]
        print(f"held-out accuracy {100 * last['holdout_accuracy']:.2f}%  ({n} training images "
              "held out)")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return run_cli("bitsnn-train", lambda: _main(args))


if __name__ == "__main__":
    sys.exit(main())
