"""Energy presets: picojoules per counted operation, every constant with its source.

A preset prices four models over the same data:

* ``snn``: the operations counted in the simulation (lava_bitsnn.core.counts), per event;
* ``ann``: the fp32 ANN of the same layers, per MAC (``macs`` = the layer's connections) and
  per activation (``neurons``);
* ``qann``: the int8 quantised ANN, priced the same way;
* ``qann_b``: the b-bit-activation QANN (8-bit weights): a MAC costs ``mult8 · b / 8 + add``,
  an 8 × 8-bit multiply scaled by its partial products, plus the accumulator's add.

An optional ``memory`` section also prices data movement (lava_bitsnn.energy.memory): the
capacity and the 64-bit access energy of each memory level, and each array's width.

User presets are JSON or TOML files of the same shape (``name``, ``description``, ``snn``,
``ann``, ``qann``, ``qann_b``, optional ``memory`` and ``sources``); every constant must be
present and ≥ 0.
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
QANN_B_OPS = ("mult8", "add", "neurons")
SECTIONS = {"snn": SNN_OPS, "ann": ANN_OPS, "qann": ANN_OPS, "qann_b": QANN_B_OPS}
LEVELS = ("l1", "l2", "l3")  # SRAM levels, smallest first; anything larger is in DRAM
WIDTHS = ("snn_weight_bits", "membrane_bits", "spike_bits", "ann_weight_bits", "ann_act_bits",
          "qann_weight_bits", "qann_act_bits", "logit_bits")
MEMORY_KEYS = (("word_bits",) + tuple(f"{lv}_{unit}" for lv in LEVELS for unit in ("bytes", "pj"))
               + ("dram_pj",) + WIDTHS)

HOROWITZ = "Horowitz, 'Computing's energy problem', ISSCC 2014, 45 nm"
PAPER = "Datta et al., TMLR 2025 (45 nm shift figures)"
DAVIES = "Davies et al., 'Loihi', IEEE Micro 2018, Table 2 (pre-silicon)"
HOROWITZ_MEM = "Horowitz, ISSCC 2014, 45 nm memory"
KERAS = "KerasSpiking ModelEnergy device presets (keras_spiking/model_energy.py)"


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    snn: dict[str, float]
    ann: dict[str, float]
    qann: dict[str, float]
    qann_b: dict[str, float]
    sources: dict[str, str] = field(default_factory=dict)
    memory: dict[str, float] | None = None  # None: compute only

    def qann_b_mac(self, bits: float) -> float:
        """pJ of one b-bit-activation × 8-bit-weight MAC."""
        return self.qann_b["mult8"] * bits / 8 + self.qann_b["add"]

    def as_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "snn": dict(self.snn),
                "ann": dict(self.ann), "qann": dict(self.qann), "qann_b": dict(self.qann_b),
                "memory": None if self.memory is None else dict(self.memory),
                "sources": dict(self.sources)}


def _snn(**costs: float) -> dict[str, float]:
    """An SNN price list; operations not named cost 0 (they are part of a priced one)."""
    return {op: float(costs.get(op, 0.0)) for op in SNN_OPS}


# 45 nm integer figures: 32-bit add 0.1 pJ (the 24-bit accumulator), 8-bit mult 0.2 pJ
_INT_MAC = 0.2 + 0.1  # an int8 × int8 multiply into a 32-bit add
_CMOS_ANN = {"macs": 4.6, "neurons": 0.0}  # fp32 MAC 4.6 pJ
_CMOS_QANN = {"macs": _INT_MAC, "neurons": 0.0}
_CMOS_QANN_B = {"mult8": 0.2, "add": 0.1, "neurons": 0.0}  # b = 8: the int8 MAC
# Horowitz's 45 nm memory figures, per 64-bit access, and the widths of the arrays
MEMORY_45NM = {"word_bits": 64.0, "l1_bytes": 8192.0, "l1_pj": 10.0, "l2_bytes": 32768.0,
               "l2_pj": 20.0, "l3_bytes": 1048576.0, "l3_pj": 100.0, "dram_pj": 1300.0,
               "snn_weight_bits": 8.0, "membrane_bits": 24.0, "spike_bits": 32.0,
               "ann_weight_bits": 32.0, "ann_act_bits": 32.0, "qann_weight_bits": 8.0,
               "qann_act_bits": 8.0, "logit_bits": 32.0}
_MEMORY_SOURCES = {
    "sram": f"{HOROWITZ_MEM}: 64-bit SRAM access 10 / 20 / 100 pJ at 8 KB / 32 KB / 1 MB",
    "dram": f"{HOROWITZ_MEM}: DRAM 1.3-2.6 nJ per 64-bit access (the low end taken)",
    "model": "an array sits in the smallest level that holds it; an access of w bits costs "
             "w / 64 of a 64-bit access; no reuse (every synaptic op and every MAC reads its "
             "weight; every MAC reads its input, every neuron writes its output once)",
}
_CMOS_SOURCES = {
    "add": f"{HOROWITZ}: int add 0.03 / 0.1 pJ (8 / 32 bit), fp32 add 0.9 pJ",
    "mult": f"{HOROWITZ}: int mult 0.2 / 3.1 pJ (8 / 32 bit), fp32 mult 3.7 pJ",
    "mac": f"{HOROWITZ}: fp32 MAC 4.6 pJ; int8 MAC = 0.2 (mult) + 0.1 (32-bit add) pJ",
    "qann_b": f"{HOROWITZ}: int mult 0.2 / 3.1 pJ at 8x8 / 32x32 bit, i.e. about linear in "
              "the partial products; a b x 8-bit MAC = 0.2 * b / 8 + 0.1 (32-bit add) pJ",
    "shift": f"{PAPER}: shift 0.024 / 0.13 pJ (8 / 32 bit)",
    "memory": "compute only: membrane reads/writes, weights and spikes are priced by "
              "cmos45nm-mem, not here (the paper prices compute only)",
}


def _keras(name: str, synop: float, neuron: float, what: str) -> Preset:
    ann = {"macs": synop, "neurons": neuron}
    return Preset(
        f"keras-{name}", f"KerasSpiking's '{name}' device ({what}): {synop} pJ per synaptic "
        f"op or MAC, {neuron} pJ per neuron update",
        _snn(synops=synop, input_macs=synop, neuron_updates=neuron), ann, dict(ann),
        {"mult8": 0.0, "add": synop, "neurons": neuron}, {"all": KERAS})


_CMOS_SNN = _snn(synops=0.1, input_macs=_INT_MAC, shifts=0.13, bias_adds=0.1, comparisons=0.1,
                 subtractions=0.1)
PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("cmos45nm", "fixed-point SNN on 45 nm CMOS: a synaptic op is a 32-bit integer add",
           _CMOS_SNN, _CMOS_ANN, _CMOS_QANN, _CMOS_QANN_B, _CMOS_SOURCES),
    Preset("cmos45nm-mem", "cmos45nm's compute plus memory traffic: weights, membranes, spikes "
           "and activations priced at Horowitz's 45 nm SRAM / DRAM access energies",
           _CMOS_SNN, _CMOS_ANN, _CMOS_QANN, _CMOS_QANN_B,
           {**_CMOS_SOURCES, **_MEMORY_SOURCES,
            "memory": "priced: see 'sram', 'dram' and 'model'"}, MEMORY_45NM),
    Preset("cmos45nm-ac", "the SNN literature's convention on 45 nm CMOS: a synaptic op is an "
           "fp32 accumulate (AC, 0.9 pJ), neuron adds/compares fp32 adds",
           _snn(synops=0.9, input_macs=4.6, shifts=0.13, bias_adds=0.9, comparisons=0.9,
                subtractions=0.9),
           _CMOS_ANN, _CMOS_QANN, _CMOS_QANN_B, _CMOS_SOURCES),
    Preset("loihi", "Loihi: 23.6 pJ per synaptic op (minimum), 81 pJ per active neuron "
           "update, 1.7 pJ per in-tile spike; the ANNs priced on 45 nm CMOS",
           _snn(synops=23.6, input_macs=23.6, neuron_updates=81.0, spikes_out=1.7),
           _CMOS_ANN, _CMOS_QANN, _CMOS_QANN_B,
           {"snn": f"{DAVIES}: synaptic op 23.6 pJ (min), neuron update 81 / 52 pJ "
                   "(active / inactive: every update of ours is active), spike 1.7 pJ "
                   "(within a tile)", "mac": _CMOS_SOURCES["mac"],
            "qann_b": _CMOS_SOURCES["qann_b"]}),
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
    memory = None if data.get("memory") is None else _memory(data, where)
    return Preset(name, str(data.get("description", "")), sections["snn"], sections["ann"],
                  sections["qann"], sections["qann_b"],
                  {str(k): str(v) for k, v in sources.items()}, memory)


def _memory(data: dict, where: str) -> dict[str, float]:
    """The ``memory`` section: every constant ≥ 0, a word of > 0 bits, levels by size."""
    memory = _section(data, "memory", MEMORY_KEYS, where)
    if memory["word_bits"] <= 0:
        raise BitsnnError(f"{where}: 'memory.word_bits' must be > 0")
    sizes = [memory[f"{lv}_bytes"] for lv in LEVELS]
    if sizes != sorted(sizes):
        raise BitsnnError(f"{where}: memory levels must grow: "
                          f"{' <= '.join(f'{lv}_bytes' for lv in LEVELS)}")
    return memory


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
