"""Per-layer energy from counted operations: energy = counts × the preset's constants.

Everything is reported per inference (counts summed over the run divided by its samples),
next to the raw counts it came from. The report is a plain dict (see ``SCHEMA_VERSION`` and
docs/energy-report.md) so that JSON, CSV, the terminal table and the plot share one source.
"""

from __future__ import annotations

import csv
import io

from lava_bitsnn.core.counts import LayerCounts
from lava_bitsnn.energy.presets import ANN_OPS, SNN_OPS, Preset
from lava_bitsnn.errors import BitsnnError

SCHEMA_VERSION = "lava-bitsnn/energy-report/1"
LAYER_KEYS = ("name", "neurons", "spike_rate", "bits_per_activation", "counts",
              "energy_pj", "snn_pj", "ann_pj", "qann_pj", "share")
TOTAL_KEYS = ("snn_pj", "ann_pj", "qann_pj", "snn_vs_ann", "snn_vs_qann", "spikes",
              "synops")


def _ann_counts(c: LayerCounts) -> dict[str, float]:
    return {"macs": c.connections, "neurons": c.neurons}


def layer_energy(c: LayerCounts, preset: Preset) -> dict:
    """One layer's row: per-inference counts and picojoules."""
    if not c.samples:
        raise BitsnnError(f"layer {c.name} has no counted samples")
    per = {op: getattr(c, op) / c.samples for op in SNN_OPS}
    energy = {op: per[op] * preset.snn[op] for op in SNN_OPS}
    ann = _ann_counts(c)
    return {
        "name": c.name, "neurons": c.neurons, "spike_rate": c.spike_rate,
        "bits_per_activation": c.bits_per_activation,
        "counts": {**per, "ann_macs": float(c.connections)},
        "energy_pj": energy,
        "snn_pj": sum(energy.values()),
        "ann_pj": sum(ann[op] * preset.ann[op] for op in ANN_OPS),
        "qann_pj": sum(ann[op] * preset.qann[op] for op in ANN_OPS),
    }


def energy_report(counts: list[LayerCounts], preset: Preset, meta: dict) -> dict:
    """The report of a run's per-layer counts (the input layer, index 0, has none)."""
    layers = [layer_energy(c, preset) for c in counts[1:]]
    totals = {key: sum(row[key] for row in layers) for key in ("snn_pj", "ann_pj", "qann_pj")}
    for row in layers:
        row["share"] = row["snn_pj"] / totals["snn_pj"] if totals["snn_pj"] else 0.0
    totals["snn_vs_ann"] = totals["snn_pj"] / totals["ann_pj"] if totals["ann_pj"] else None
    totals["snn_vs_qann"] = totals["snn_pj"] / totals["qann_pj"] if totals["qann_pj"] else None
    totals["spikes"] = sum(row["counts"]["spikes_out"] for row in layers)
    totals["synops"] = sum(row["counts"]["synops"] for row in layers)
    return {"schema": SCHEMA_VERSION, **meta, "samples": counts[1].samples,
            "preset": preset.as_dict(), "layers": layers, "totals": totals}


def validate_report(report: dict) -> None:
    """Raise BitsnnError unless ``report`` has the documented structure."""
    def need(mapping: dict, keys, where: str) -> None:
        missing = [k for k in keys if k not in mapping]
        if missing:
            raise BitsnnError(f"energy report: {where} lacks {', '.join(missing)}")

    need(report, ("schema", "samples", "preset", "layers", "totals"), "the report")
    if report["schema"] != SCHEMA_VERSION:
        raise BitsnnError(f"energy report: schema {report['schema']!r}, expected "
                          f"{SCHEMA_VERSION!r}")
    need(report["totals"], TOTAL_KEYS, "totals")
    for row in report["layers"]:
        need(row, LAYER_KEYS, f"layer {row.get('name', '?')}")
        need(row["counts"], SNN_OPS + ("ann_macs",), f"layer {row['name']} counts")
        need(row["energy_pj"], SNN_OPS, f"layer {row['name']} energy_pj")


def _pj(value: float) -> str:
    for unit, scale in (("mJ", 1e9), ("µJ", 1e6), ("nJ", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.3g} pJ"


def format_table(report: dict) -> str:
    """The terminal table: per layer, per inference."""
    head = (f"{'layer':<10}{'neurons':>9}{'rate':>8}{'bits/act':>9}{'synops':>13}"
            f"{'neuron ops':>12}{'SNN':>11}{'share':>7}{'ANN fp32':>11}{'QANN':>11}")
    lines = [f"energy per inference, preset {report['preset']['name']} "
             f"({report['samples']} samples)", head, "-" * len(head)]
    neuron_ops = ("neuron_updates", "shifts", "bias_adds", "comparisons", "subtractions")
    for row in report["layers"]:
        ops = sum(row["counts"][op] for op in neuron_ops)
        lines.append(f"{row['name']:<10}{row['neurons']:>9,}{row['spike_rate']:>8.4f}"
                     f"{row['bits_per_activation']:>9.3f}{row['counts']['synops']:>13,.0f}"
                     f"{ops:>12,.0f}{_pj(row['snn_pj']):>11}{100 * row['share']:>6.1f}%"
                     f"{_pj(row['ann_pj']):>11}{_pj(row['qann_pj']):>11}")
    t = report["totals"]
    lines.append("-" * len(head))
    lines.append(f"{'total':<10}{'':>9}{'':>8}{'':>9}{t['synops']:>13,.0f}{'':>12}"
                 f"{_pj(t['snn_pj']):>11}{'100.0%':>7}{_pj(t['ann_pj']):>11}"
                 f"{_pj(t['qann_pj']):>11}")
    for key, label in (("snn_vs_ann", "fp32 ANN"), ("snn_vs_qann", "int QANN")):
        if t[key] is not None:
            lines.append(f"SNN / {label}: {t[key]:.3f} ({1 / t[key]:.1f}x less energy)"
                         if t[key] else f"SNN / {label}: 0")
    return "\n".join(lines)


def spike_rate_listing(report: dict) -> str:
    """``[layer] spike_rate=0.0622`` lines for the spiking layers."""
    return "\n".join(f"[{row['name']}] spike_rate={row['spike_rate']:.4f}"
                     for row in report["layers"] if row["counts"]["comparisons"])


def to_csv(report: dict) -> str:
    """One row per layer and a total row; counts and energies per inference."""
    fields = (["layer", "neurons", "spike_rate", "bits_per_activation"] + list(SNN_OPS)
              + ["ann_macs"] + [f"{op}_pj" for op in SNN_OPS]
              + ["snn_pj", "ann_pj", "qann_pj", "share"])
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(fields)
    for row in report["layers"]:
        writer.writerow([row["name"], row["neurons"], row["spike_rate"],
                         row["bits_per_activation"]]
                        + [row["counts"][op] for op in SNN_OPS] + [row["counts"]["ann_macs"]]
                        + [row["energy_pj"][op] for op in SNN_OPS]
                        + [row["snn_pj"], row["ann_pj"], row["qann_pj"], row["share"]])
    t = report["totals"]
    writer.writerow(["total", "", "", ""] + [""] * (2 * len(SNN_OPS) + 1)
                    + [t["snn_pj"], t["ann_pj"], t["qann_pj"], 1.0])
    return out.getvalue()
