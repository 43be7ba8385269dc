"""PNG of an energy report: per-layer stacked SNN energy (by operation group, and memory where
priced) against the three ANNs, and per-layer spike rates."""

from __future__ import annotations

GROUPS = {  # plotted group → the SNN operations in it
    "synaptic ops": ("synops",),
    "input MACs": ("input_macs",),
    "neuron updates": ("neuron_updates",),
    "shifts, adds, compares": ("shifts", "bias_adds", "comparisons", "subtractions"),
    "spikes and membrane I/O": ("spikes_out", "mem_reads", "mem_writes"),
}  # plus "memory traffic" under a preset that prices it


def plot_report(report: dict, path: str) -> None:
    """Write the two-panel figure to ``path`` (atomically)."""
    from lava_bitsnn.files import atomic_write

    png = render_png(report)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(png)

    atomic_write(path, write)


def render_png(report: dict) -> bytes:
    """The two-panel figure as PNG bytes (nothing is written)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    layers = report["layers"]
    names = [row["name"] for row in layers]
    x = np.arange(len(layers))
    fig, (ax_e, ax_r) = plt.subplots(1, 2, figsize=(12, 4.2),
                                     gridspec_kw={"width_ratios": [3, 2]})
    bottom = np.zeros(len(layers))
    stacks = {label: [sum(row["energy_pj"][op] for op in ops) for row in layers]
              for label, ops in GROUPS.items()}
    stacks["memory traffic"] = [row["memory_pj"]["snn"] for row in layers]
    for label, column in stacks.items():
        values = np.array(column)
        if values.any():
            ax_e.bar(x, values, bottom=bottom, label=label, width=0.6)
            bottom += values
    ax_e.plot(x, [row["ann_pj"] for row in layers], "k_", markersize=22, mew=2,
              label="fp32 ANN")
    ax_e.plot(x, [row["qann_pj"] for row in layers], "r_", markersize=22, mew=2,
              label="int8 QANN")
    ax_e.plot(x, [row["qann_b_pj"] for row in layers], "g_", markersize=22, mew=2,
              label="b-bit QANN")
    ax_e.set_yscale("log")
    low, high = ax_e.get_ylim()
    ax_e.set_ylim(low, high * 30)  # room for the legend
    ax_e.set_xticks(x, names)
    ax_e.set_xlabel("layer")
    ax_e.set_ylabel("energy per inference (pJ)")
    t = report["totals"]
    ax_e.set_title(f"preset {report['preset']['name']}: SNN {t['snn_pj'] / 1e6:.3g} µJ, "
                   f"ANN {t['ann_pj'] / 1e6:.3g}, int8 QANN {t['qann_pj'] / 1e6:.3g}, "
                   f"b-bit QANN {t['qann_b_pj'] / 1e6:.3g} µJ", fontsize=9)
    ax_e.legend(fontsize=8, ncol=3, loc="upper center")
    spiking = [i for i, row in enumerate(layers) if row["counts"]["comparisons"]]
    ax_r.bar([names[i] for i in spiking], [layers[i]["spike_rate"] for i in spiking],
             color="tab:purple", width=0.6)
    ax_r.set_xlabel("layer")
    ax_r.set_ylabel("spike rate (spikes / neuron / step)")
    ax_r.set_title(f"{report['samples']} samples", fontsize=10)
    try:
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, dpi=110, format="png")
        return buffer.getvalue()
    finally:
        plt.close(fig)
