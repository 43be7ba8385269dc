"""Energy presets: picojoules per counted operation, every constant with its source.

A preset prices three things over the same data:

* ``snn``: the operations counted in the simulation (lava_bitsnn.core.counts), per event;
* ``ann``: the fp32 ANN of the same layers, per MAC (``macs`` = the layer's connections) and
  per activation (``neurons``);
* ``qann``: the integer quantised ANN, priced the same way.

User presets are JSON or TOML files of the same shape (``name``, ``description``, ``snn``,
``ann``, ``qann``, optional ``sources``); every constant must be present and ≥ 0.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from lava_bitsnn.errors import BitsnnError

SNN_OPS = ("synops", "input_macs", "spikes_out", "neuron_updates", "shifts", "bias_adds",
           "comparisons", "subtractions", "mem_reads", "mem_writes")
ANN_OPS = ("macs", "neurons")
SECTIONS = {"snn": SNN_OPS, "ann": ANN_OPS, "qann": ANN_OPS}

HOROWITZ = "Horowitz, 'Computing's energy problem', ISSCC 2014, 45 nm"
PAPER = "Datta et al., TMLR 2025 (45 nm shift figures)"
DAVIES = "Davies et al., 'Loihi', IEEE Micro 2018, Table 2 (pre-silicon)"
KERAS = "KerasSpiking ModelEnergy device presets (keras_spiking/model_energy.py)"


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    snn: dict[str, float]
    ann: dict[str, float]
    qann: dict[str, float]
    sources: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "snn": dict(self.snn),
                "ann": dict(self.ann), "qann": dict(self.qann), "sources": dict(self.sources)}


def _snn(**costs: float) -> dict[str, float]:
    """An SNN price list; operations not named cost 0 (they are part of a priced one)."""
    return {op: float(costs.get(op, 0.0)) for op in SNN_OPS}


# 45 nm integer figures: 32-bit add 0.1 pJ (the 24-bit accumulator), 8-bit mult 0.2 pJ
_INT_MAC = 0.2 + 0.1  # an int8 × int8 multiply into a 32-bit add
_CMOS_ANN = {"macs": 4.6, "neurons": 0.0}  # fp32 MAC 4.6 pJ
_CMOS_QANN = {"macs": _INT_MAC, "neurons": 0.0}
_CMOS_SOURCES = {
    "add": f"{HOROWITZ}: int add 0.03 / 0.1 pJ (8 / 32 bit), fp32 add 0.9 pJ",
    "mult": f"{HOROWITZ}: int mult 0.2 / 3.1 pJ (8 / 32 bit), fp32 mult 3.7 pJ",
    "mac": f"{HOROWITZ}: fp32 MAC 4.6 pJ; int8 MAC = 0.2 (mult) + 0.1 (32-bit add) pJ",
    "shift": f"{PAPER}: shift 0.024 / 0.13 pJ (8 / 32 bit)",
    "memory": "membrane reads/writes and spikes are not priced by the 45 nm presets "
              "(compute only, as in the paper)",
}


def _keras(name: str, synop: float, neuron: float, what: str) -> Preset:
    ann = {"macs": synop, "neurons": neuron}
    return Preset(
        f"keras-{name}", f"KerasSpiking's '{name}' device ({what}): {synop} pJ per synaptic "
        f"op or MAC, {neuron} pJ per neuron update",
        _snn(synops=synop, input_macs=synop, neuron_updates=neuron), ann, dict(ann),
        {"all": KERAS})


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("cmos45nm", "fixed-point SNN on 45 nm CMOS: a synaptic op is a 32-bit integer add",
           _snn(synops=0.1, input_macs=_INT_MAC, shifts=0.13, bias_adds=0.1, comparisons=0.1,
                subtractions=0.1),
           _CMOS_ANN, _CMOS_QANN, _CMOS_SOURCES),
    Preset("cmos45nm-ac", "the SNN literature's convention on 45 nm CMOS: a synaptic op is an "
           "fp32 accumulate (AC, 0.9 pJ), neuron adds/compares fp32 adds",
           _snn(synops=0.9, input_macs=4.6, shifts=0.13, bias_adds=0.9, comparisons=0.9,
                subtractions=0.9),
           _CMOS_ANN, _CMOS_QANN, _CMOS_SOURCES),
    Preset("loihi", "Loihi: 23.6 pJ per synaptic op (minimum), 81 pJ per active neuron "
           "update, 1.7 pJ per in-tile spike; the ANNs priced on 45 nm CMOS",
           _snn(synops=23.6, input_macs=23.6, neuron_updates=81.0, spikes_out=1.7),
           _CMOS_ANN, _CMOS_QANN,
           {"snn": f"{DAVIES}: synaptic op 23.6 pJ (min), neuron update 81 / 52 pJ "
                   "(active / inactive: every update of ours is active), spike 1.7 pJ "
                   "(within a tile)", "mac": _CMOS_SOURCES["mac"]}),
    _keras("cpu", 8600.0, 8600.0, "Intel i7-4960X"),
    _keras("gpu", 300.0, 300.0, "Nvidia GTX Titan Black"),
    _keras("arm", 900.0, 900.0, "ARM Cortex-A"),
    _keras("loihi", 27.1, 81.0, "23.6 + 3.5 pJ per synop"),
    _keras("spinnaker", 13300.0, 26000.0, "SpiNNaker"),
    _keras("spinnaker2", 450.0, 2190.0, "SpiNNaker 2"),
)}
DEFAULT_PRESET = "cmos45nm"


def _section(data: dict, key: str, ops: tuple[str, ...], where: str) -> dict[str, float]:
    table = data.get(key)
    if not isinstance(table, dict):
        raise BitsnnError(f"{where}: missing section '{key}' (needs {', '.join(ops)})")
    unknown = sorted(set(table) - set(ops))
    if unknown:
        raise BitsnnError(f"{where}: unknown constants in '{key}': {', '.join(unknown)}")
    out = {}
    for op in ops:
        if op not in table:
            raise BitsnnError(f"{where}: '{key}.{op}' is missing (pJ per operation)")
        value = table[op]
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value) or value < 0:
            raise BitsnnError(f"{where}: '{key}.{op}' must be a number ≥ 0, got {value!r}")
        out[op] = float(value)
    return out


def preset_from_dict(data: dict, where: str) -> Preset:
    """Validate a preset mapping (as read from JSON or TOML)."""
    if not isinstance(data, dict):
        raise BitsnnError(f"{where}: a preset is a table of sections")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise BitsnnError(f"{where}: missing 'name'")
    sources = data.get("sources", {})
    if not isinstance(sources, dict):
        raise BitsnnError(f"{where}: 'sources' must map constants to their sources")
    sections = {key: _section(data, key, ops, where) for key, ops in SECTIONS.items()}
    return Preset(name, str(data.get("description", "")), sections["snn"], sections["ann"],
                  sections["qann"], {str(k): str(v) for k, v in sources.items()})


def load_preset(name_or_path: str) -> Preset:
    """A built-in preset by name, or a user preset from a .json or .toml file."""
    if name_or_path in PRESETS:
        return PRESETS[name_or_path]
    path = Path(name_or_path)
    if path.suffix not in (".json", ".toml"):
        raise BitsnnError(f"unknown preset '{name_or_path}' (built in: {', '.join(PRESETS)}; "
                          "or a .json / .toml file)")
    if not path.is_file():
        raise BitsnnError(f"preset file {path} does not exist")
    try:
        if path.suffix == ".json":
            data = json.loads(path.read_text())
        else:
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib
            data = tomllib.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise BitsnnError(f"preset file {path} is not valid {path.suffix[1:].upper()}: "
                          f"{str(exc).splitlines()[0]}") from None
    return preset_from_dict(data, str(path))
