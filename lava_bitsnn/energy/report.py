"""Per-layer energy from counted operations: energy = counts × the preset's constants.

Everything is reported per inference (counts summed over the run divided by its samples),
next to the raw counts it came from, for four models of the same layers: the SNN, the fp32
ANN, the int8 QANN and the b-bit QANN. The report is a plain dict (see ``SCHEMA_VERSION`` and
docs/energy-report.md) so that JSON, CSV, the terminal table and the plot share one source.
"""

from __future__ import annotations

import csv
import io

from lava_bitsnn.core.counts import LayerCounts
from lava_bitsnn.core.ir import Network
from lava_bitsnn.energy.memory import MODELS, LayerArrays, layer_arrays, model_streams, stream_pj
from lava_bitsnn.energy.presets import SNN_OPS, Preset
from lava_bitsnn.errors import BitsnnError

SCHEMA_VERSION = "lava-bitsnn/energy-report/2"
MODEL_KEYS = tuple(f"{m}_pj" for m in MODELS)  # snn_pj, ann_pj, qann_pj, qann_b_pj
LAYER_KEYS = ("name", "neurons", "spike_rate", "bits_per_activation", "qann_b_bits", "counts",
              "energy_pj", "memory", "memory_pj", "share") + MODEL_KEYS
RATIOS = {"snn_vs_ann": "ann_pj", "snn_vs_qann": "qann_pj", "snn_vs_qann_b": "qann_b_pj"}
TOTAL_KEYS = MODEL_KEYS + tuple(RATIOS) + ("memory_pj", "spikes", "synops")
MODEL_LABELS = {"snn": "SNN", "ann": "fp32 ANN", "qann": "int8 QANN", "qann_b": "b-bit QANN"}
NEUROBENCH_KEYS = ("footprint", "connection_sparsity", "activation_sparsity",
                   "synaptic_operations")
SYNOP_KEYS = ("Dense", "Effective_MACs", "Effective_ACs")


def _compute_pj(c: LayerCounts, a: LayerArrays, preset: Preset) -> dict[str, float]:
    """The three ANNs' compute per inference (the SNN's is per operation in ``energy_pj``)."""
    def priced(table: dict[str, float], mac: float) -> float:
        return c.connections * mac + c.neurons * table["neurons"]

    return {"ann": priced(preset.ann, preset.ann["macs"]),
            "qann": priced(preset.qann, preset.qann["macs"]),
            "qann_b": priced(preset.qann_b, preset.qann_b_mac(a.source_bits))}


def _memory(c: LayerCounts, a: LayerArrays, preset: Preset) -> dict:
    """Every model's streams with their price; empty for a compute-only preset."""
    if preset.memory is None:
        return {}
    mem = preset.memory
    return {model: {name: {"accesses": s.accesses, "bits": s.bits, "bytes": s.array_bytes,
                           "pj": stream_pj(mem, s)} for name, s in streams.items()}
            for model, streams in model_streams(c, a, mem).items()}


def layer_energy(c: LayerCounts, a: LayerArrays, preset: Preset) -> dict:
    """One layer's row: per-inference counts and picojoules."""
    if not c.samples:
        raise BitsnnError(f"layer {c.name} has no counted samples")
    per = {op: getattr(c, op) / c.samples for op in SNN_OPS}
    energy = {op: per[op] * preset.snn[op] for op in SNN_OPS}
    memory = _memory(c, a, preset)
    memory_pj = {m: sum(s["pj"] for s in memory.get(m, {}).values()) for m in MODELS}
    compute = {"snn": sum(energy.values()), **_compute_pj(c, a, preset)}
    return {
        "name": c.name, "neurons": c.neurons, "spike_rate": c.spike_rate,
        "bits_per_activation": c.bits_per_activation, "qann_b_bits": a.source_bits,
        "counts": {**per, "ann_macs": float(c.connections)},
        "energy_pj": energy, "memory": memory, "memory_pj": memory_pj,
        **{f"{m}_pj": compute[m] + memory_pj[m] for m in MODELS},
    }


def energy_report(counts: list[LayerCounts], preset: Preset, meta: dict, net: Network,
                  neurobench: dict, neuron: str) -> dict:
    """The report of a run's per-layer counts (the input layer, index 0, has none) of an SNN of
    ``neuron``s (``bit-serial`` or ``if``: its membranes are sized by it);
    ``neurobench``: lava_bitsnn.energy.neurobench.neurobench_metrics of the same run."""
    layers = [layer_energy(c, a, preset)
              for c, a in zip(counts[1:], layer_arrays(net, neuron), strict=True)]
    totals = {key: sum(row[key] for row in layers) for key in MODEL_KEYS}
    for row in layers:
        row["share"] = row["snn_pj"] / totals["snn_pj"] if totals["snn_pj"] else 0.0
    for ratio, key in RATIOS.items():
        totals[ratio] = totals["snn_pj"] / totals[key] if totals[key] else None
    totals["memory_pj"] = {m: sum(row["memory_pj"][m] for row in layers) for m in MODELS}
    totals["spikes"] = sum(row["counts"]["spikes_out"] for row in layers)
    totals["synops"] = sum(row["counts"]["synops"] for row in layers)
    return {"schema": SCHEMA_VERSION, **meta, "samples": counts[1].samples,
            "preset": preset.as_dict(), "layers": layers, "totals": totals,
            "neurobench": neurobench}


def validate_report(report: dict) -> None:
    """Raise BitsnnError unless ``report`` has the documented structure."""
    def need(mapping: dict, keys, where: str) -> None:
        missing = [k for k in keys if k not in mapping]
        if missing:
            raise BitsnnError(f"energy report: {where} lacks {', '.join(missing)}")

    need(report, ("schema", "samples", "preset", "layers", "totals", "neurobench"), "the report")
    if report["schema"] != SCHEMA_VERSION:
        raise BitsnnError(f"energy report: schema {report['schema']!r}, expected "
                          f"{SCHEMA_VERSION!r}")
    need(report["totals"], TOTAL_KEYS, "totals")
    need(report["neurobench"], NEUROBENCH_KEYS, "neurobench")
    need(report["neurobench"]["synaptic_operations"], SYNOP_KEYS,
         "neurobench.synaptic_operations")
    for row in report["layers"]:
        need(row, LAYER_KEYS, f"layer {row.get('name', '?')}")
        need(row["counts"], SNN_OPS + ("ann_macs",), f"layer {row['name']} counts")
        need(row["energy_pj"], SNN_OPS, f"layer {row['name']} energy_pj")
        need(row["memory_pj"], MODELS, f"layer {row['name']} memory_pj")
        if row["memory"]:
            need(row["memory"], MODELS, f"layer {row['name']} memory")


def _pj(value: float) -> str:
    for unit, scale in (("mJ", 1e9), ("µJ", 1e6), ("nJ", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.3g} pJ"


def format_table(report: dict) -> str:
    """The terminal table: per layer, per inference, and the NeuroBench metrics."""
    head = (f"{'layer':<10}{'neurons':>9}{'rate':>8}{'bits/act':>9}{'synops':>13}"
            f"{'neuron ops':>12}{'SNN':>11}{'share':>7}{'ANN fp32':>11}{'QANN int8':>11}"
            f"{'QANN b':>11}")
    memory = " (memory included)" if report["preset"]["memory"] else " (compute only)"
    lines = [f"energy per inference, preset {report['preset']['name']}{memory} "
             f"({report['samples']} samples)", head, "-" * len(head)]
    neuron_ops = ("neuron_updates", "shifts", "bias_adds", "comparisons", "subtractions")
    for row in report["layers"]:
        ops = sum(row["counts"][op] for op in neuron_ops)
        qann_b = f"{_pj(row['qann_b_pj'])} ({row['qann_b_bits']}b)"
        lines.append(f"{row['name']:<10}{row['neurons']:>9,}{row['spike_rate']:>8.4f}"
                     f"{row['bits_per_activation']:>9.3f}{row['counts']['synops']:>13,.0f}"
                     f"{ops:>12,.0f}{_pj(row['snn_pj']):>11}{100 * row['share']:>6.1f}%"
                     f"{_pj(row['ann_pj']):>11}{_pj(row['qann_pj']):>11}{qann_b:>16}")
    t = report["totals"]
    lines.append("-" * len(head))
    lines.append(f"{'total':<10}{'':>9}{'':>8}{'':>9}{t['synops']:>13,.0f}{'':>12}"
                 f"{_pj(t['snn_pj']):>11}{'100.0%':>7}{_pj(t['ann_pj']):>11}"
                 f"{_pj(t['qann_pj']):>11}{_pj(t['qann_b_pj']):>11}")
    if report["preset"]["memory"]:
        lines.append("of which memory: " + ", ".join(
            f"{label} {_pj(t['memory_pj'][m])}" for m, label in MODEL_LABELS.items()))
    for key, label in zip(RATIOS, list(MODEL_LABELS.values())[1:], strict=True):
        if t[key] is not None:
            lines.append(f"SNN / {label}: {t[key]:.3f} ({1 / t[key]:.1f}x less energy)"
                         if t[key] else f"SNN / {label}: 0")
    nb = report["neurobench"]
    ops = nb["synaptic_operations"]
    lines.append(f"NeuroBench: footprint {nb['footprint']:,} B, connection sparsity "
                 f"{nb['connection_sparsity']:.4f}, activation sparsity "
                 f"{nb['activation_sparsity']:.4f}, synaptic operations: Dense "
                 f"{ops['Dense']:,.0f}, Effective_MACs {ops['Effective_MACs']:,.0f}, "
                 f"Effective_ACs {ops['Effective_ACs']:,.0f}")
    return "\n".join(lines)


def spike_rate_listing(report: dict) -> str:
    """``[layer] spike_rate=0.0622`` lines for the spiking layers."""
    return "\n".join(f"[{row['name']}] spike_rate={row['spike_rate']:.4f}"
                     for row in report["layers"] if row["counts"]["comparisons"])


def to_csv(report: dict) -> str:
    """One row per layer and a total row; counts and energies per inference."""
    fields = (["layer", "neurons", "spike_rate", "bits_per_activation", "qann_b_bits"]
              + list(SNN_OPS) + ["ann_macs"] + [f"{op}_pj" for op in SNN_OPS]
              + [f"{m}_memory_pj" for m in MODELS] + list(MODEL_KEYS) + ["share"])
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(fields)
    for row in report["layers"]:
        writer.writerow([row["name"], row["neurons"], row["spike_rate"],
                         row["bits_per_activation"], row["qann_b_bits"]]
                        + [row["counts"][op] for op in SNN_OPS] + [row["counts"]["ann_macs"]]
                        + [row["energy_pj"][op] for op in SNN_OPS]
                        + [row["memory_pj"][m] for m in MODELS]
                        + [row[key] for key in MODEL_KEYS] + [row["share"]])
    t = report["totals"]
    writer.writerow(["total"] + [""] * (4 + 2 * len(SNN_OPS) + 1)
                    + [t["memory_pj"][m] for m in MODELS] + [t[key] for key in MODEL_KEYS]
                    + [1.0])
    return out.getvalue()
