"""Training loop: SGD + momentum with a cosine schedule, optional bit-ℓ1 / QCFS regularisers.

Deterministic on CPU for a given seed. Under ``torchrun`` (``WORLD_SIZE`` > 1) each rank takes a
strided shard of every epoch's permutation and the model is wrapped in DDP; only rank 0 logs and
writes the checkpoint.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

import lava_bitsnn
from lava_bitsnn.ann.checkpoint import (
    FIXED_ARCH,
    USER_ARCH,
    check_writable,
    load_checkpoint,
    save_checkpoint,
)
from lava_bitsnn.ann.data import Dataset, hold_out, normalise
from lava_bitsnn.ann.qcfs import QCFS, check_bits, qcfs_layers
from lava_bitsnn.ann.regularizers import bit_l1, count_ones, qcfs_reg
from lava_bitsnn.ann.widen import widen_state_dict
from lava_bitsnn.ann.zoo import ARCH_OPTIONS, ARCHS, archs_taking, build_model
from lava_bitsnn.errors import BitsnnError

MODEL_ARCHS = (USER_ARCH, FIXED_ARCH)  # trained from a given model, not built from the zoo
FLIP_DATASETS = {"fashion-mnist", "cifar10", "cifar100", "imagefolder"}
ERASE_AREA = (0.02, 0.4)  # random erasing: fraction of the image a rectangle covers
ERASE_ASPECT = 0.3  # and its height / width, between this and its inverse


@dataclass
class TrainConfig:
    arch: str
    dataset: str
    bits: int = 4
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    augment: bool = False
    erase: float = 0.0  # random-erasing probability per image
    bf16: bool = False  # mixed precision (bfloat16 autocast, channels-last): see train()
    bit_l1: float = 0.0
    qcfs_reg: float = 0.0
    seed: int = 0
    device: str = "cpu"
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    init: str = ""  # start from this checkpoint's weights (same architecture, any bits)
    holdout: int = 0  # training images held out for choosing between runs (data.hold_out)

    def validate(self) -> None:
        if self.arch not in ARCHS and self.arch not in MODEL_ARCHS:
            raise BitsnnError(f"unknown architecture {self.arch!r}; choose from {', '.join(ARCHS)}")
        try:
            check_bits(self.bits)
        except ValueError as exc:
            raise BitsnnError(str(exc)) from None
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise BitsnnError(f"{name.replace('_', '-')} must be at least 1")
        for name in ("lr", "weight_decay", "bit_l1", "qcfs_reg"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0 or (name == "lr" and value == 0):
                raise BitsnnError(f"{name.replace('_', '-')} must be a finite number "
                                  f"{'> 0' if name == 'lr' else '>= 0'}, got {value}")
        if self.bf16 and self.arch == FIXED_ARCH:
            raise BitsnnError("--bf16 does not apply to --fixed-point, which trains on the "
                              "export's exact integer grid")
        if not 0.0 <= self.erase <= 1.0:
            raise BitsnnError(f"erase must be a probability in [0, 1], got {self.erase}")
        for option in self.arch_kwargs:
            if self.arch not in (takers := archs_taking(option)):
                raise BitsnnError(f"--{option} applies to {', '.join(takers)}, not {self.arch}")
        try:
            kind = torch.device(self.device).type
        except RuntimeError:
            raise BitsnnError(f"unknown device {self.device!r}: use cpu, cuda or cuda:N") from None
        if kind not in ("cpu", "cuda"):
            raise BitsnnError(f"device {self.device!r} is not supported: use cpu, cuda or cuda:N")
        if kind == "cuda" and not torch.cuda.is_available():
            raise BitsnnError("--device cuda requested but no CUDA device is available")


def augment_batch(x: torch.Tensor, flip: bool, gen: torch.Generator) -> torch.Tensor:
    """Random crop (zero padding of H/8, at least 1 px) and optional horizontal flip."""
    n, _, h, w = x.shape
    pad = max(1, h // 8)
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, :]
    out = padded[torch.arange(n)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)
    if flip:
        mask = torch.rand(n, generator=gen) < 0.5
        out = torch.where(mask[:, None, None, None], out.flip(3), out)
    return out.contiguous()


def erase_batch(x: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    """Random erasing (Zhong et al., AAAI 2020): with probability ``p`` per image, one
    rectangle of ERASE_AREA of the image's area and aspect ERASE_ASPECT..1/ERASE_ASPECT (before
    its sides are rounded and clipped to the image) is set to 0 in every channel: the mean of
    the normalisation the images went through."""
    n, _, h, w = x.shape
    area = torch.empty(n).uniform_(*ERASE_AREA, generator=gen) * h * w
    log_aspect = math.log(ERASE_ASPECT)
    ratio = torch.exp(torch.empty(n).uniform_(log_aspect, -log_aspect, generator=gen))
    eh = torch.sqrt(area * ratio).round().clamp(1, h).long()
    ew = torch.sqrt(area / ratio).round().clamp(1, w).long()
    top = (torch.rand(n, generator=gen) * (h - eh + 1)).long()
    left = (torch.rand(n, generator=gen) * (w - ew + 1)).long()
    hit = torch.rand(n, generator=gen) < p
    rows, cols = torch.arange(h)[None], torch.arange(w)[None]
    in_rows = (rows >= top[:, None]) & (rows < (top + eh)[:, None])
    in_cols = (cols >= left[:, None]) & (cols < (left + ew)[:, None])
    mask = in_rows[:, :, None] & in_cols[:, None, :] & hit[:, None, None]
    return x.masked_fill(mask[:, None], 0.0)


class ActivationTap:
    """Forward hooks that collect (layer, input, output) of every QCFS layer while active."""

    def __init__(self, model: nn.Module) -> None:
        self.records: list[tuple[QCFS, torch.Tensor, torch.Tensor]] = []
        self._hooks = [m.register_forward_hook(self._hook) for _, m in qcfs_layers(model)]

    def _hook(self, module: nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        self.records.append((module, inputs[0], output))  # type: ignore[arg-type]

    def clear(self) -> None:
        self.records = []

    def remove(self) -> None:
        for h in self._hooks:
            h.remove()


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on conv/linear weights and QCFS thresholds; none on BN and biases."""
    decay, no_decay = [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            wants = (isinstance(module, (nn.Conv2d, nn.Linear)) and name == "weight") or isinstance(
                module, QCFS)
            (decay if wants else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def _cosine_with_warmup(total: int, warmup: int):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return factor


@torch.no_grad()
def evaluate(model: nn.Module, images: np.ndarray, labels: np.ndarray, mean: list[float],
             std: list[float], device: str = "cpu", batch_size: int = 500) -> dict[str, float]:
    """Accuracy and mean 1-bits per hidden activation of a QCFS model."""
    model.eval()
    tap = ActivationTap(model)
    correct, ones, count = 0, 0, 0
    try:
        for start in range(0, len(labels), batch_size):
            x = normalise(images[start:start + batch_size], mean, std).to(device)
            y = torch.from_numpy(labels[start:start + batch_size]).to(device)
            tap.clear()
            correct += int((model(x).argmax(1) == y).sum())
            for layer, _, a in tap.records:
                ones += count_ones(torch.round(a / layer.step()), layer.bits)
                count += a.numel()
    finally:
        tap.remove()
    return {"accuracy": correct / max(1, len(labels)),
            "bits_per_activation": ones / max(1, count)}


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world


def train(cfg: TrainConfig, data: Dataset, output: str, resume: str | None = None,
          progress: bool = True, model: nn.Module | None = None,
          user: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train (or resume) and write the checkpoint to ``output``; returns the checkpoint dict.

    ``model`` (with ``cfg.arch == "user"``): fine-tune this QCFS model instead of building a
    zoo one (``bitsnn-train --from``); ``user`` then holds ``normalisation`` (the model's
    own), ``imports`` and ``source``, stored in the checkpoint with the module itself. With
    ``cfg.arch == "fixed-point"`` the model is a ``FixedPointNet`` (``--fixed-point``), kept
    on its grid's 24-bit bound after every step. ``cfg.holdout`` trains without that many
    training images (``data.hold_out``) and logs their accuracy after every epoch.

    ``cfg.bf16`` runs the forward and backward passes under bfloat16 autocast with
    channels-last tensors; the QCFS quantisers, weights, optimiser state and the per-epoch
    test evaluation stay float32. It pays on CPUs with AMX (``benchmarks/train_precision.py``);
    it changes the float sums, so a run is reproducible only against a run in the same
    precision. A run may resume in the other precision (from a machine with AMX to one
    without, say): each epoch of the log records its own (``"bf16"``)."""
    cfg.validate()
    if (model is None) != (cfg.arch not in MODEL_ARCHS):
        raise BitsnnError(f"a given model needs arch {' or '.join(MODEL_ARCHS)}, and those "
                          "archs need a model")
    if model is not None and resume:
        raise BitsnnError("--resume is not supported with --from")
    if resume and cfg.init:
        raise BitsnnError("--init and --resume exclude each other")
    check_writable(output)
    data, held = hold_out(data, cfg.holdout)
    rank, world = _distributed()
    device = cfg.device
    if world > 1 and device.startswith("cuda"):
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        torch.cuda.set_device(device)
    torch.manual_seed(cfg.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)

    c, h, w = data.input_shape
    if h != w:
        raise BitsnnError(f"square images are required, got {h}x{w}")
    if model is not None:
        arch_kwargs: dict[str, Any] = {}
        model = model.to(device)
        mean, std = (user or {}).get("normalisation") or data.normalisation()
    else:
        arch_kwargs = {"in_channels": c, "image_size": h, "num_classes": len(data.class_names),
                       "bits": cfg.bits, **cfg.arch_kwargs}
        try:
            model = build_model(cfg.arch, **arch_kwargs).to(device)
        except ValueError as exc:
            hint = " (pad or resize with --image-size)" if "pixels" in str(exc) else ""
            raise BitsnnError(f"{exc}{hint}") from None
        mean, std = data.normalisation()
        if cfg.init:
            _load_init(model, cfg, data)
    if cfg.bf16:
        model.to(memory_format=torch.channels_last)

    steps_per_epoch = math.ceil(len(data.train.labels) / world / cfg.batch_size)
    opt = torch.optim.SGD(_param_groups(model, cfg.weight_decay), lr=cfg.lr,
                          momentum=cfg.momentum, nesterov=True)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, _cosine_with_warmup(cfg.epochs * steps_per_epoch, min(steps_per_epoch, 200)))
    log: list[dict[str, float]] = []
    start_epoch = 0
    if resume:
        state = load_checkpoint(resume)
        if (state["arch"], state["bits"], state["dataset"], list(state["input_shape"])) != (
                cfg.arch, cfg.bits, data.name, [c, h, w]):
            raise BitsnnError(
                f"--resume checkpoint is {state['arch']}/{state['bits']} bits/{state['dataset']}"
                f"/{state['input_shape']}, not {cfg.arch}/{cfg.bits} bits/{data.name}/{[c, h, w]}")
        if (saved := state["train_args"].get("holdout", 0)) != cfg.holdout:
            raise BitsnnError(f"--resume checkpoint was trained with --holdout {saved}, not "
                              f"{cfg.holdout}")
        try:
            model.load_state_dict(state["state_dict"])
        except RuntimeError:
            raise BitsnnError(f"--resume checkpoint has other layers than this {cfg.arch}: it "
                              f"was built with {_options(state['arch_kwargs'])}") from None
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        # epochs logged before the per-epoch key ran in the saved run's precision, which
        # this run's train_args replace
        start_epoch = state["epoch"]
        log = [{"bf16": state["train_args"]["bf16"], **e} for e in state["log"]]
    net = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[torch.device(device).index] if device.startswith("cuda") else None)

    train_x = normalise(data.train.images, mean, std)
    train_y = torch.from_numpy(data.train.labels)
    flip = cfg.augment and data.name in FLIP_DATASETS
    tap = ActivationTap(model) if (cfg.bit_l1 or cfg.qcfs_reg) else None
    for epoch in range(start_epoch, cfg.epochs):
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        order = torch.randperm(len(train_y), generator=gen)[rank::world]
        net.train()
        t0 = time.perf_counter()
        seen = correct = 0
        loss_sum = 0.0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   disable=not progress or rank != 0, leave=False)
        for i in bar:
            idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            x, y = train_x[idx], train_y[idx]
            if cfg.augment:
                x = augment_batch(x, flip, gen)
            if cfg.erase:
                x = erase_batch(x, cfg.erase, gen)
            x, y = x.to(device), y.to(device)
            if tap:
                tap.clear()
            out = training_forward(net, x, cfg.bf16)
            loss = F.cross_entropy(out, y)
            if cfg.bit_l1:
                loss = loss + cfg.bit_l1 * bit_l1([(m, a) for m, _, a in tap.records])
            if cfg.qcfs_reg:
                loss = loss + cfg.qcfs_reg * qcfs_reg([(z, a) for _, z, a in tap.records])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                for m in qcfs_layers(model):
                    m[1].threshold.clamp_(min=1e-3)
            if cfg.arch == FIXED_ARCH:
                model.constrain_()
            seen += len(y)
            correct += int((out.argmax(1) == y).sum())
            loss_sum += float(loss) * len(y)
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}")
        seconds = time.perf_counter() - t0
        if rank == 0:
            metrics = evaluate(model, data.test.images, data.test.labels, mean, std, device)
            held_out = {"holdout_accuracy": evaluate(model, held.images, held.labels, mean, std,
                                                     device)["accuracy"]} if cfg.holdout else {}
            log.append({"epoch": epoch + 1, "loss": loss_sum / seen, "train_accuracy":
                        correct / seen, **held_out, "test_accuracy": metrics["accuracy"],
                        "bits_per_activation": metrics["bits_per_activation"],
                        "seconds": seconds, "bf16": cfg.bf16})
            if progress:
                shown = f"holdout {held_out['holdout_accuracy']:.4f}  " if held_out else ""
                tqdm.write(f"epoch {epoch + 1}/{cfg.epochs}  loss {loss_sum / seen:.4f}  "
                           f"train {correct / seen:.4f}  {shown}test {metrics['accuracy']:.4f}  "
                           f"bits/act {metrics['bits_per_activation']:.3f}  {seconds:.1f}s")
            if epoch + 1 < cfg.epochs:  # resumable after every epoch
                save_checkpoint(_checkpoint(cfg, model, data, arch_kwargs, (mean, std), log,
                                            epoch + 1, opt, sched, user), output)
    if tap:
        tap.remove()
    ckpt = _checkpoint(cfg, model.cpu(), data, arch_kwargs, (mean, std), log, cfg.epochs, opt,
                       sched, user)
    if rank == 0:
        save_checkpoint(ckpt, output)
    return ckpt


def _load_init(model: nn.Module, cfg: TrainConfig, data: Dataset) -> None:
    """``--init``: every weight, BN statistic and QCFS threshold λ of a checkpoint of the same
    architecture and data (its bits may differ: λ is the clip value, Δ = λ/K follows K). A
    narrower checkpoint of a ResNet is widened without changing what it computes (``widen``)."""
    state = load_checkpoint(cfg.init)
    if (state["arch"], state["dataset"], list(state["input_shape"])) != (
            cfg.arch, data.name, list(data.input_shape)):
        raise BitsnnError(f"--init checkpoint is {state['arch']}/{state['dataset']}/"
                          f"{state['input_shape']}, not {cfg.arch}/{data.name}/"
                          f"{list(data.input_shape)}")
    narrow, wide = state["arch_kwargs"].get("width", 1), cfg.arch_kwargs.get("width", 1)
    other = f"--init checkpoint {cfg.init} has other layers than this {cfg.arch}: it was " \
            f"built with {_options(state['arch_kwargs'])}"
    weights = state["state_dict"]
    if wide != narrow:
        if wide % narrow:
            raise BitsnnError(f"--init checkpoint {cfg.init} has width {narrow}: give --width "
                              f"{narrow} or a multiple of it")
        try:
            weights = widen_state_dict(weights, model.state_dict(),
                                       torch.Generator().manual_seed(cfg.seed))
        except ValueError:
            raise BitsnnError(other) from None
    try:
        model.load_state_dict(weights)
    except RuntimeError:
        raise BitsnnError(other) from None


def _options(arch_kwargs: dict[str, Any]) -> str:
    """A checkpoint's --stem / --width, as the command line would give them."""
    given = [f"--{k} {arch_kwargs[k]}" for k in ARCH_OPTIONS if k in arch_kwargs]
    return " ".join(given) or "the architecture's default --stem and --width"


def cpu_model() -> dict[str, Any]:
    """This machine's CPU model name and whether it has AMX bfloat16 units (``amx_bf16``;
    None where /proc/cpuinfo cannot be read). Without them bfloat16 is emulated and
    ``--bf16`` trains about 12x slower than float32 (0.07-0.09x the speed, resnet20 width 2
    on an AMD EPYC: ``benchmarks/train_precision.py``)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"model": "unknown", "amx_bf16": None}
    names = [line.split(":", 1)[1].strip() for line in info.splitlines()
             if line.startswith("model name")]
    return {"model": names[0] if names else "unknown", "amx_bf16": "amx_bf16" in info}


def training_forward(net: nn.Module, x: torch.Tensor, bf16: bool) -> torch.Tensor:
    """The float32 logits of a training step; with ``bf16`` computed under bfloat16 autocast
    on channels-last input (the model made channels-last once, before training)."""
    if not bf16:
        return net(x)
    with torch.autocast(x.device.type, torch.bfloat16):
        return net(x.to(memory_format=torch.channels_last)).float()


def _checkpoint(cfg: TrainConfig, model: nn.Module, data: Dataset, arch_kwargs: dict[str, Any],
                norm: tuple[list[float], list[float]], log: list[dict[str, float]], epoch: int,
                opt: torch.optim.Optimizer, sched: Any, user: dict[str, Any] | None = None
                ) -> dict[str, Any]:
    """The checkpoint dict after ``epoch`` epochs (``epoch`` < ``cfg.epochs``: resumable)."""
    extra: dict[str, Any] = {}
    if cfg.arch == USER_ARCH:
        extra = {"module": _plain_copy(model), "imports": list((user or {}).get("imports", [])),
                 "source": (user or {}).get("source", {})}
    elif cfg.arch == FIXED_ARCH:
        from lava_bitsnn.netx.embed import network_to_bytes

        extra = {"network": torch.frombuffer(bytearray(network_to_bytes(model.to_network())),
                                             dtype=torch.uint8),
                 "source": (user or {}).get("source", {})}
    return {**extra,
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "arch": cfg.arch,
        "arch_kwargs": arch_kwargs,
        "bits": cfg.bits,
        "dataset": data.name,
        "input_shape": list(data.input_shape),
        "image_transform": data.resized,
        "normalisation": {"mean": norm[0], "std": norm[1]},
        "class_names": data.class_names,
        "log": list(log),
        "test_accuracy": log[-1]["test_accuracy"] if log else None,
        "library_version": lava_bitsnn.__version__,
        "train_args": asdict(cfg),
        "epoch": epoch,
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
    }


def _plain_copy(model: nn.Module) -> nn.Module:
    """A CPU copy of a user model without hooks, for pickling into the checkpoint."""
    import copy

    hooks = [(m, m._forward_hooks, m._forward_pre_hooks) for m in model.modules()]
    for m, _, _ in hooks:
        m._forward_hooks, m._forward_pre_hooks = type(m._forward_hooks)(), \
            type(m._forward_pre_hooks)()
    try:
        return copy.deepcopy(model).cpu().to(memory_format=torch.contiguous_format)
    finally:
        for m, post, pre in hooks:
            m._forward_hooks, m._forward_pre_hooks = post, pre
