"""Where a model comes from, for ``bitsnn-export``, ``bitsnn-verify`` and ``bitsnn-train
--from``: one loader, auto-detecting the file.

a. a lava-bitsnn checkpoint (``bitsnn-train``);
b. a whole pickled ``nn.Module`` (``torch.save(model)``); ``--import MODULE`` imports the
   modules that define its classes first;
c. a ``state_dict`` (or a dict holding one under ``state_dict``, ``model``, ``net`` or
   ``model_state_dict``) plus ``--model pkg.module:factory [--model-kwargs JSON]``;
d. metadata that (b) and (c) lack from ``--input-shape C,H,W --mean --std [--class-names]``
   or ``--dataset NAME`` (its normalisation, shape and class names).

A ``forward`` that returns a tuple (output, auxiliary loss) is used through its first
element; extra ``forward`` arguments come from ``--forward-kwargs JSON``. Activations of
other QCFS codes are adapted to ``QCFS`` (``lava_bitsnn.ann.adapters``).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import pickle
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lava_bitsnn.ann.adapters import Activation, adapt_activations, check_levels
from lava_bitsnn.ann.relu_to_qcfs import (
    MAXPOOL_POLICIES,
    maxpool_paths,
    maxpool_refusal,
    swap_maxpool,
)
from lava_bitsnn.errors import BitsnnError

STATE_DICT_KEYS = ("state_dict", "model", "net", "model_state_dict")
METADATA_FLAGS = "--input-shape C,H,W --mean M[,M...] --std S[,S...] (or --dataset NAME)"


class ForwardAdapter(nn.Module):
    """``net(x, **forward_kwargs)``, reduced to its first element when it returns a tuple."""

    def __init__(self, net: nn.Module, forward_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.net = net
        self.forward_kwargs = dict(forward_kwargs or {})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x, **self.forward_kwargs)
        while isinstance(out, (tuple, list)):
            out = out[0]
        return out


@dataclass
class ModelSource:
    model: nn.Module
    kind: str  # checkpoint | pickled module | state_dict + factory
    description: str
    input_shape: tuple[int, int, int]
    mean: list[float]
    std: list[float]
    class_names: list[str]
    dataset: str
    activations: list[Activation] = field(default_factory=list)
    swapped_maxpool: list[str] = field(default_factory=list)
    checkpoint: dict[str, Any] | None = None
    imports: list[str] = field(default_factory=list)
    factory: dict[str, Any] | None = None  # {"model": "pkg.mod:fn", "kwargs": {...}}
    path: str = ""

    def swap_warning(self) -> str | None:
        """The line that says a ``--maxpool avg`` swap (not fine-tuned) is not the user's model."""
        if not self.swapped_maxpool:
            return None
        return (f"warning: MaxPool2d swapped for AvgPool2d without fine-tuning at "
                f"{', '.join(self.swapped_maxpool)}: this is no longer your model (its outputs "
                "and accuracy differ from the original's); fine-tune it with bitsnn-train "
                f"--from {self.path} --maxpool avg and convert that checkpoint instead")

    def digest(self) -> str:
        """SHA-256 of what defines the model (checkpoints: ``model_digest``)."""
        if self.checkpoint is not None:
            from lava_bitsnn.ann.checkpoint import model_digest

            return model_digest(self.checkpoint)
        h = hashlib.sha256(json.dumps({"input_shape": list(self.input_shape), "mean": self.mean,
                                       "std": self.std}, sort_keys=True).encode())
        for key, tensor in sorted(self.model.state_dict().items()):
            h.update(key.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        for a in self.activations:
            h.update(f"{a.path}:{a.levels}".encode())
        return h.hexdigest()


def add_model_args(p: argparse.ArgumentParser, dataset_flag: bool = True) -> None:
    """The flags of the model forms (b)–(d) and of the adapters."""
    g = p.add_argument_group(
        "your own model (pickled nn.Module or state_dict)",
        "A state_dict is read with torch.load(weights_only=True). Loading a pickled nn.Module "
        "executes code from the file, as with any torch.save(model): load only files you "
        "trust.")
    g.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import this module first (repeatable) so pickled classes resolve")
    g.add_argument("--model", metavar="PKG.MODULE:FACTORY",
                   help="callable that builds the architecture of a state_dict file")
    g.add_argument("--model-kwargs", metavar="JSON", help="keyword arguments for --model")
    g.add_argument("--forward-kwargs", metavar="JSON",
                   help="extra keyword arguments for the model's forward, e.g. "
                        "'{\"t\": 0, \"mode\": \"ann\"}'")
    g.add_argument("--input-shape", metavar="C,H,W")
    g.add_argument("--mean", metavar="M[,M...]", help="input normalisation mean per channel")
    g.add_argument("--std", metavar="S[,S...]", help="input normalisation std per channel")
    g.add_argument("--class-names", metavar="A,B,...")
    g.add_argument("--levels", type=int, metavar="L",
                   help="QCFS levels L (codes 0..L) for activations that do not store it")
    g.add_argument("--maxpool", choices=MAXPOOL_POLICIES, default="refuse",
                   help="MaxPool2d: refuse (default), keep (exact: the SNN takes the maximum "
                        "bit-serially; not with the IF baseline) or avg (swap for AvgPool2d; "
                        "outside bitsnn-train --from the swapped model is not fine-tuned and "
                        "differs from yours: a warning says so)")
    if dataset_flag:
        g.add_argument("--dataset", metavar="NAME",
                       help="take normalisation, input shape and class names from this dataset")
        g.add_argument("--data-dir", help="folder with the dataset files (all but digits)")


def _json(text: str | None, flag: str) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BitsnnError(f"{flag} is not valid JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise BitsnnError(f"{flag} must be a JSON object, got {text!r}")
    return value


def _floats(text: str, flag: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise BitsnnError(f"{flag} must be comma-separated numbers, got {text!r}") from None


def import_modules(names: list[str]) -> list[types.ModuleType]:
    """``--import``: module names (or .py files), with the working directory importable."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    out = []
    for name in names:
        try:
            if name.endswith(".py"):
                folder, stem = os.path.split(os.path.abspath(name))
                if folder not in sys.path:
                    sys.path.insert(0, folder)
                name = stem[:-3]
            out.append(importlib.import_module(name))
        except Exception as exc:  # noqa: BLE001 - any import failure is the user's module
            raise BitsnnError(f"--import {name}: cannot import it ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    return out


def _pickle_module(imported: list[types.ModuleType]) -> types.ModuleType:
    """A ``pickle`` for ``torch.load`` that also finds a class in the ``--import`` modules when
    the file names another module for it (``__main__`` of the training script)."""

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str):
            try:
                return super().find_class(module, name)
            except (AttributeError, ModuleNotFoundError, ImportError):
                for mod in imported:
                    if isinstance(getattr(mod, name, None), type):
                        return getattr(mod, name)
                raise

    mod = types.ModuleType("bitsnn_pickle")
    mod.__dict__.update({k: getattr(pickle, k) for k in dir(pickle) if not k.startswith("__")})
    mod.Unpickler = Unpickler
    mod.load = lambda f, **kw: Unpickler(f, **kw).load()
    return mod


_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING",
               "BINSTRING", "STRING"}


def _pickle_globals(path: Path) -> list[tuple[str, str]] | None:
    """(module, name) of every class or function the file's pickles name, read with
    ``pickletools`` (nothing is unpickled); None when that cannot be told."""
    import io
    import pickletools
    import zipfile

    try:
        if zipfile.is_zipfile(path):  # torch.save: <archive>/data.pkl beside the storages
            with zipfile.ZipFile(path) as z:
                streams = [io.BytesIO(z.read(n)) for n in z.namelist()
                           if n.endswith("/data.pkl") or n == "data.pkl"]
            if not streams:
                return None
        else:  # legacy format: magic, protocol, sys info, the object, storage keys, raw data
            data = io.BytesIO(path.read_bytes())
            streams = [data] * 5
        found: list[tuple[str, str]] = []
        for stream in streams:
            pushed: list[Any] = []  # values pushed by the latest opcodes (None: not a string)
            memo: dict[int, Any] = {}
            for op, arg, _ in pickletools.genops(stream):
                if op.name == "GLOBAL":
                    module, _, name = str(arg).partition(" ")
                    found.append((module, name))
                elif op.name == "STACK_GLOBAL":
                    if len(pushed) < 2 or not all(isinstance(v, str) for v in pushed[-2:]):
                        return None
                    found.append((pushed[-2], pushed[-1]))
                elif op.name in _STRING_OPS:
                    pushed.append(arg if isinstance(arg, str) else bytes(arg).decode("latin-1"))
                elif op.name in ("BINPUT", "LONG_BINPUT", "PUT"):
                    memo[arg] = pushed[-1] if pushed else None
                elif op.name == "MEMOIZE":
                    memo[len(memo)] = pushed[-1] if pushed else None
                elif op.name in ("BINGET", "LONG_BINGET", "GET"):
                    pushed.append(memo.get(arg))
                else:
                    pushed.append(None)
                del pushed[:-2]
        return found
    except Exception:  # noqa: BLE001 - a damaged or foreign file: cannot be told
        return None


def _resolve(module: str, name: str, imported: list[types.ModuleType]) -> Any:
    try:
        obj: Any = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
        return obj
    except Exception:  # noqa: BLE001 - not importable here: maybe in an --import module
        for mod in imported:
            if isinstance(getattr(mod, name, None), type):
                return getattr(mod, name)
        return None


def _check_pickled_module(path: Path, imported: list[types.ModuleType]) -> None:
    """A file that ``weights_only`` refuses is unpickled only when it holds an ``nn.Module``
    (which runs code from the file, as any ``torch.load`` of ``torch.save(model)`` does)."""
    names = _pickle_globals(path)
    if names is None:
        raise BitsnnError(f"{path} is not a readable checkpoint (UnpicklingError)")
    modules, missing, other = [], [], []
    for module, name in dict.fromkeys(names):
        module = {"__builtin__": "builtins"}.get(module, module)  # pickle protocol 2 names
        obj = _resolve(module, name, imported)
        if obj is None:
            missing.append(f"{module}.{name}")
        elif isinstance(obj, type) and issubclass(obj, nn.Module):
            modules.append(obj)
        elif not (module == "collections" or module.split(".")[0] == "torch"):
            other.append(f"{module}.{name}")
    if modules:
        return
    if missing:
        raise BitsnnError(f"{path}: a class of the pickled model cannot be imported "
                          f"({missing[0]}); pass --import MODULE for the module that defines it")
    raise BitsnnError(f"{path} holds pickled objects that are neither tensors nor an nn.Module "
                      f"({', '.join(other[:3]) or 'unknown'}): not unpickled, since that would run "
                      "code from the file; save model.state_dict() or the model itself")


def _load_file(path: Path, imported: list[types.ModuleType]) -> Any:
    """``torch.load`` with ``weights_only=True`` (a state_dict or a checkpoint of plain data);
    a pickled ``nn.Module`` only after ``_check_pickled_module``, unpickled in full."""
    if not path.is_file():
        raise BitsnnError(f"model file {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass  # the file names classes or functions: a pickled module, or refused below
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
        raise BitsnnError(f"{path} is not a readable checkpoint ({type(exc).__name__})") from None
    _check_pickled_module(path, imported)
    try:
        return torch.load(path, map_location="cpu", weights_only=False,
                          pickle_module=_pickle_module(imported))
    except (AttributeError, ModuleNotFoundError, ImportError) as exc:
        what = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BitsnnError(f"{path}: a class of the pickled model cannot be imported ({what}); "
                          "pass --import MODULE for the module that defines it") from None
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
        raise BitsnnError(f"{path} is not a readable checkpoint ({type(exc).__name__})") from None


def _is_state_dict(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def build_factory(spec: str, kwargs: dict[str, Any]) -> nn.Module:
    """``pkg.module:factory`` called with ``kwargs``; it must return an ``nn.Module``."""
    if ":" not in spec:
        raise BitsnnError(f"--model must be PKG.MODULE:FACTORY, got {spec!r}")
    mod_name, attr = spec.split(":", 1)
    mod = import_modules([mod_name])[0]
    factory = mod
    for part in attr.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise BitsnnError(f"--model {spec}: {mod_name} has no attribute {attr!r}")
    try:
        model = factory(**kwargs)
    except Exception as exc:  # noqa: BLE001 - the user's factory
        raise BitsnnError(f"--model {spec} failed: {type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    if not isinstance(model, nn.Module):
        raise BitsnnError(f"--model {spec} returned a {type(model).__name__}, not an nn.Module")
    return model


def _load_state(model: nn.Module, state: dict[str, torch.Tensor], spec: str) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines()[1:] if ln.strip()]
        detail = "; ".join(lines)
        if len(detail) > 300:
            detail = detail[:300] + " ..."
        raise BitsnnError(f"the state_dict does not fit --model {spec}: {detail}") from None


def _metadata(args: argparse.Namespace, dataset: Any | None) -> dict[str, Any]:
    """Input shape, normalisation and class names from flags or ``--dataset``."""
    meta: dict[str, Any] = {}
    if callable(dataset) and not (getattr(args, "input_shape", None) and getattr(args, "mean", None)
                                  and getattr(args, "std", None)):
        dataset = dataset()  # loaded only when the flags leave something to take from it
    elif callable(dataset):
        dataset = None
    if dataset is not None:
        mean, std = dataset.normalisation()
        meta = {"input_shape": tuple(dataset.input_shape), "mean": mean, "std": std,
                "class_names": list(dataset.class_names), "dataset": dataset.name}
    if getattr(args, "input_shape", None):
        shape = _floats(args.input_shape, "--input-shape")
        if len(shape) != 3 or any(v < 1 or not v.is_integer() for v in shape):
            raise BitsnnError(f"--input-shape must be C,H,W (positive integers), got "
                              f"{args.input_shape!r}")
        meta["input_shape"] = tuple(int(v) for v in shape)
    if getattr(args, "mean", None):
        meta["mean"] = _floats(args.mean, "--mean")
    if getattr(args, "std", None):
        meta["std"] = _floats(args.std, "--std")
        if any(not v > 0 for v in meta["std"]):
            raise BitsnnError("--std values must be positive")
    if getattr(args, "class_names", None):
        meta["class_names"] = args.class_names.split(",")
    missing = [flag for key, flag in (("input_shape", "--input-shape C,H,W"),
                                      ("mean", "--mean M[,M...]"), ("std", "--std S[,S...]"))
               if key not in meta]
    if missing:
        raise BitsnnError(f"the model file has no metadata: add {' '.join(missing)} "
                          "(or --dataset NAME for its normalisation, shape and class names)")
    c = meta["input_shape"][0]
    for key in ("mean", "std"):
        if len(meta[key]) == 1:
            meta[key] = meta[key] * c
        if len(meta[key]) != c:
            raise BitsnnError(f"--{key} has {len(meta[key])} values for {c} input channels")
    meta.setdefault("dataset", "")
    return meta


def _wrap_forward(model: nn.Module, forward_kwargs: dict[str, Any],
                  shape: tuple[int, int, int]) -> nn.Module:
    """Wrap in ``ForwardAdapter`` when forward needs extra arguments or returns a tuple."""
    if not forward_kwargs:
        try:
            with torch.no_grad():
                out = model.eval()(torch.zeros(1, *shape))
        except Exception as exc:  # noqa: BLE001 - the user's forward
            what = str(exc).splitlines()[0] if str(exc) else ""
            raise BitsnnError(f"the model does not run on inputs of shape {shape}: "
                              f"{type(exc).__name__}: {what} (extra forward arguments go in "
                              "--forward-kwargs JSON)") from None
        if not isinstance(out, (tuple, list)):
            return model
    return ForwardAdapter(model, forward_kwargs)


def load_source(path: str | Path, args: argparse.Namespace, dataset: Any | None = None,
                relu: bool = False) -> ModelSource:
    """Load a model in any of the forms (a)–(c) with the metadata (d). ``relu``: a ReLU model
    for fine-tuning (MaxPool is then handled by ``relu_to_qcfs``, not here)."""
    path = Path(path)
    levels = check_levels(getattr(args, "levels", None))
    forward_kwargs = _json(getattr(args, "forward_kwargs", None), "--forward-kwargs")
    model_kwargs = _json(getattr(args, "model_kwargs", None), "--model-kwargs")
    imported = import_modules(list(getattr(args, "imports", []) or []))
    obj = _load_file(path, imported)
    spec = getattr(args, "model", None)
    checkpoint = factory = None
    from lava_bitsnn.ann.checkpoint import FORMAT, model_from_checkpoint, validate_checkpoint

    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        checkpoint = validate_checkpoint(obj, path)
        model = model_from_checkpoint(checkpoint)
        kind = "checkpoint"
        description = f"lava-bitsnn checkpoint ({checkpoint['arch']}, {checkpoint['dataset']})"
        norm = checkpoint["normalisation"]
        meta = {"input_shape": tuple(checkpoint["input_shape"]), "mean": norm["mean"],
                "std": norm["std"], "class_names": checkpoint["class_names"],
                "dataset": checkpoint["dataset"]}
    else:
        if isinstance(obj, nn.Module):
            model, kind = obj, "pickled module"
        elif isinstance(obj, dict) and not _is_state_dict(obj) and any(
                isinstance(obj.get(k), nn.Module) for k in ("model", "net")):
            model = next(obj[k] for k in ("model", "net") if isinstance(obj.get(k), nn.Module))
            kind = "pickled module"
        else:
            state = obj if _is_state_dict(obj) else next(
                (obj[k] for k in STATE_DICT_KEYS if isinstance(obj, dict) and
                 _is_state_dict(obj.get(k))), None)
            if state is None:
                raise BitsnnError(f"{path} is neither a lava-bitsnn checkpoint, a pickled "
                                  "nn.Module nor a state_dict")
            if not spec:
                raise BitsnnError(f"{path} holds a state_dict: name the architecture with "
                                  "--model PKG.MODULE:FACTORY [--model-kwargs JSON]")
            model = build_factory(spec, model_kwargs)
            _load_state(model, state, spec)
            kind = "state_dict + factory"
            factory = {"model": spec, "kwargs": model_kwargs}
        if kind == "pickled module" and spec:
            raise BitsnnError(f"{path} holds a whole pickled model: drop --model")
        description = f"{kind} ({type(model).__module__}.{type(model).__name__})"
        meta = _metadata(args, dataset)
    model = model.cpu().float().eval()
    if checkpoint is None:
        model = _wrap_forward(model, forward_kwargs, tuple(meta["input_shape"]))
    elif forward_kwargs:
        raise BitsnnError("--forward-kwargs does not apply to a lava-bitsnn checkpoint")
    model, found = adapt_activations(model, levels)
    swapped: list[str] = []
    policy = getattr(args, "maxpool", "refuse")
    if checkpoint is not None and maxpool_paths(model):
        # a checkpoint of ours that still max-pools was fine-tuned with --maxpool keep
        if policy == "avg":
            raise BitsnnError(f"{path} was fine-tuned with its MaxPool2d kept: --maxpool avg "
                              "does not apply to it")
        policy = "keep"
    if not relu and maxpool_paths(model) and policy != "keep":
        if policy != "avg":
            raise maxpool_refusal(maxpool_paths(model)[0])
        swapped = swap_maxpool(model)  # the CLIs print swap_warning()
    return ModelSource(model, kind, description, tuple(meta["input_shape"]),
                       [float(v) for v in meta["mean"]], [float(v) for v in meta["std"]],
                       list(meta.get("class_names") or []), meta["dataset"], found, swapped,
                       checkpoint, list(getattr(args, "imports", []) or []), factory, str(path))


def default_class_names(source: ModelSource) -> list[str]:
    """The source's class names, or ``0..N−1`` from the output size."""
    if source.class_names:
        return source.class_names
    with torch.no_grad():
        n = int(source.model(torch.zeros(1, *source.input_shape)).shape[-1])
    return [str(i) for i in range(n)]
