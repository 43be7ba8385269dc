"""Checkpoint / model → IR network (float and fixed point)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

import lava_bitsnn
from lava_bitsnn.ann.qcfs import qcfs_layers
from lava_bitsnn.convert.fixed import quantise_network
from lava_bitsnn.convert.trace import trace_model
from lava_bitsnn.core.ir import ENCODINGS, Network
from lava_bitsnn.errors import BitsnnError


def _check_finite(model: nn.Module) -> None:
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise BitsnnError(f"{name} contains NaN or Inf values")


def convert_model(model: nn.Module, input_shape: tuple[int, ...], mean: list[float],
                  std: list[float], class_names: list[str], time_steps: int | None = None,
                  encoding: str = "bit-serial", meta: dict[str, str] | None = None) -> Network:
    """Trace, fold and quantise a QCFS model. ``time_steps`` defaults to the bits ``b`` (the
    largest of the layers' when they differ)."""
    if encoding not in ENCODINGS:
        raise BitsnnError(f"input encoding must be one of {', '.join(ENCODINGS)}")
    _check_finite(model)
    layers = trace_model(model, tuple(input_shape), mean, std)
    bits = {layer.bits for layer in layers if layer.kind == "neuron"}
    if not bits:
        raise BitsnnError("the model has no QCFS activation")
    b = max(bits)  # layers may differ: each fires its own T_l = b_l steps
    t = b if time_steps is None else time_steps
    if not 1 <= t <= b:
        raise BitsnnError(f"time steps must be from 1 to the activation bits ({b}), got {t}")
    net = Network(layers, b, t, encoding, list(class_names),
                  {"mean": list(mean), "std": list(std)},
                  {"library_version": lava_bitsnn.__version__, **(meta or {})})
    quantise_network(net)
    return net


def convert_checkpoint(path: str | Path, time_steps: int | None = None,
                       encoding: str = "bit-serial") -> Network:
    from lava_bitsnn.ann.checkpoint import load_checkpoint, model_from_checkpoint

    ckpt = load_checkpoint(path)
    return _convert_checkpoint(ckpt, model_from_checkpoint(ckpt), Path(path).name, time_steps,
                               encoding)


def _convert_checkpoint(ckpt: dict, model: nn.Module, filename: str, time_steps: int | None,
                        encoding: str) -> Network:
    from lava_bitsnn.ann.checkpoint import FIXED_ARCH, model_digest

    meta = {"source_checkpoint": filename, "source_model_sha256": model_digest(ckpt),
            "arch": ckpt["arch"], "dataset": ckpt["dataset"]}
    if ckpt["arch"] == FIXED_ARCH:
        return fixed_point_network(model, time_steps, encoding, meta)
    if max((m.bits for _, m in qcfs_layers(model)), default=ckpt["bits"]) != ckpt["bits"]:
        raise BitsnnError(f"bits mismatch: checkpoint says {ckpt['bits']} but its QCFS layers "
                          "differ")
    norm = ckpt["normalisation"]
    return convert_model(model, tuple(ckpt["input_shape"]), norm["mean"], norm["std"],
                         ckpt["class_names"], time_steps, encoding, meta)


def fixed_point_network(model: nn.Module, time_steps: int | None, encoding: str,
                        meta: dict[str, str]) -> Network:
    """The network of a ``FixedPointNet`` as it stands: its grid is the file's, so the time
    steps and input encoding it was trained for (which fix its bias grid) cannot change."""
    net = model.to_network()  # type: ignore[operator]
    if time_steps not in (None, net.time_steps) or encoding != net.encoding:
        raise BitsnnError(f"this fixed-point checkpoint was trained for T={net.time_steps} and "
                          f"the {net.encoding} input encoding; it exports only with those")
    net.meta = {"library_version": lava_bitsnn.__version__, **meta}
    return net


def convert_source(source, time_steps: int | None = None, encoding: str = "bit-serial"
                   ) -> Network:
    """Convert a ``lava_bitsnn.ann.model_io.ModelSource`` (any of the model forms)."""
    from lava_bitsnn.ann.model_io import default_class_names

    if source.checkpoint is not None:
        return _convert_checkpoint(source.checkpoint, source.model, Path(source.path).name,
                                   time_steps, encoding)
    meta = {"source_checkpoint": Path(source.path).name,
            "source_model_sha256": source.digest(), "source_model": source.description,
            "dataset": source.dataset}
    return convert_model(source.model, source.input_shape, source.mean, source.std,
                         default_class_names(source), time_steps, encoding, meta)
