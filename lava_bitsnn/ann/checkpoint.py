"""The training checkpoint: a plain ``torch.save`` dict, written atomically.

Keys: ``format``, ``format_version``, ``state_dict``, ``arch``, ``arch_kwargs`` (constructor
arguments), ``bits``, ``dataset``, ``input_shape`` (C, H, W), ``normalisation`` ({mean, std}),
``class_names``, ``log`` (one dict per epoch), ``test_accuracy``, ``library_version``,
``train_args``; for ``--resume`` also ``epoch``, ``optimizer`` and ``scheduler``.

A user's own model (``bitsnn-train --from``) has ``arch == "user"`` and the whole module in
``module`` (pickled with the checkpoint; ``imports`` names the modules that define its classes,
``source`` how it was loaded: file, form, factory and kwargs). ``state_dict`` is then loaded
into that module, so the weights are those of ``state_dict`` as for a zoo model.

A fixed-point fine-tuned model (``bitsnn-train --from CKPT --fixed-point``) has ``arch ==
"fixed-point"`` and its network's netx file in ``network`` (a uint8 tensor, so the file stays
plain data); ``state_dict`` is that of a ``lava_bitsnn.convert.fixed_model.FixedPointNet``
built from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from lava_bitsnn.ann.zoo import build_model
from lava_bitsnn.errors import BitsnnError
from lava_bitsnn.files import atomic_write, check_writable

__all__ = ["check_writable", "load_checkpoint", "model_from_checkpoint", "save_checkpoint"]

FORMAT = "lava-bitsnn-checkpoint"
FORMAT_VERSION = 1
REQUIRED = ("state_dict", "arch", "arch_kwargs", "bits", "dataset", "input_shape",
            "normalisation", "class_names")


def save_checkpoint(ckpt: dict[str, Any], path: str | Path) -> None:
    ckpt = {"format": FORMAT, "format_version": FORMAT_VERSION, **ckpt}
    atomic_write(path, lambda tmp: torch.save(ckpt, tmp))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and validate a checkpoint; any problem is one ``BitsnnError``."""
    path = Path(path)
    if not path.is_file():
        raise BitsnnError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
        raise BitsnnError(f"{path} is not a readable checkpoint ({type(exc).__name__})") from None
    return validate_checkpoint(ckpt, path)


def validate_checkpoint(ckpt: Any, path: str | Path) -> dict[str, Any]:
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise BitsnnError(f"{path} is not a lava-bitsnn checkpoint")
    missing = [k for k in REQUIRED if k not in ckpt]
    if ckpt.get("arch") == USER_ARCH and "module" not in ckpt:
        missing.append("module")
    if ckpt.get("arch") == FIXED_ARCH and "network" not in ckpt:
        missing.append("network")
    if missing:
        raise BitsnnError(f"checkpoint {path} lacks {', '.join(missing)}")
    return ckpt


USER_ARCH = "user"
FIXED_ARCH = "fixed-point"


def model_from_checkpoint(ckpt: dict[str, Any]) -> nn.Module:
    """Rebuild the model and load its weights (eval mode)."""
    try:
        if ckpt["arch"] == USER_ARCH:
            import copy

            model = copy.deepcopy(ckpt["module"])
        elif ckpt["arch"] == FIXED_ARCH:
            from lava_bitsnn.convert.fixed_model import FixedPointNet
            from lava_bitsnn.netx.embed import network_from_bytes

            model = FixedPointNet(network_from_bytes(ckpt["network"].numpy().tobytes()))
        else:
            model = build_model(ckpt["arch"], **ckpt["arch_kwargs"])
        model.load_state_dict(ckpt["state_dict"])
    except (ValueError, RuntimeError, TypeError) as exc:
        raise BitsnnError(f"checkpoint does not match its architecture: {exc}") from None
    return model.eval()


def model_digest(ckpt: dict[str, Any]) -> str:
    """SHA-256 of what defines the model: architecture, its arguments, bits, input shape,
    normalisation and every state_dict tensor — not the training log, whose timings differ
    between otherwise identical runs."""
    import hashlib
    import json

    h = hashlib.sha256()
    h.update(json.dumps({k: ckpt[k] for k in ("arch", "arch_kwargs", "bits", "input_shape",
                                              "normalisation")}, sort_keys=True).encode())
    for key, tensor in sorted(ckpt["state_dict"].items()):
        h.update(key.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    if ckpt["arch"] == FIXED_ARCH:  # the grid: exponents, units, levels, T
        h.update(ckpt["network"].numpy().tobytes())
    return h.hexdigest()
