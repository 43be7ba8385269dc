"""Deep networks on Fashion-MNIST at 32×32 (issue 12): training, Lava bit-exactness and the
bit-serial vs QCFS-IF table (the shape of the paper's Table 1, with depth).

    python benchmarks/deep_networks.py --train [--only NAME ...]   # resumable, per epoch
    python benchmarks/fidelity.py --only NAME ...                   # full-test-set fidelity
    python benchmarks/accuracy_vs_t.py --only NAME ...              # accuracy vs T
    python benchmarks/deep_networks.py --measure [--only NAME ...]  # Lava + the neuron table

``--train`` writes runs/benchmarks/NAME.pt (after every epoch, so an interrupted run resumes
where it stopped) with ``bitsnn-train``'s own code path; a config with ``init`` starts from
another config's weights and thresholds (``bitsnn-train --init``). ``--measure`` runs the
fixed-point network as Lava processes on the first ``--lava-samples`` test images against the
reference engine, then, for each neuron at the first T where it reaches the ANN's accuracy to
within 0.1 pp on the IF images of accuracy_vs_t.json (or its largest T), its latency, steps per
sample when streaming, spikes and energy per inference on ``--energy-samples`` images.

Writes benchmarks/results/deep_networks.json and deep_accuracy_vs_t.png; prints markdown.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from accuracy_vs_t import plot
from checkpoints import (
    DATA_ROOT,
    MODELS,
    RESULTS,
    load_benchmark_model,
    model_path,
    previous_results,
    save_result,
)
from energy_honest import PRESET_NAMES, hidden_spike_rate

from lava_bitsnn.ann.checkpoint import load_checkpoint, model_from_checkpoint
from lava_bitsnn.ann.data import load_dataset
from lava_bitsnn.ann.train import TrainConfig, cpu_model, evaluate, train
from lava_bitsnn.core.schedule import build_schedule
from lava_bitsnn.energy import PRESETS, energy_report
from lava_bitsnn.reference import ReferenceEngine
from lava_bitsnn.verify import COUNTS

WITHIN = 0.001  # "reaches the ANN's accuracy": to within 0.1 pp
CONFIGS = {
    "fashion-mnist-resnet20-b4": dict(arch="resnet20", bits=4, epochs=20),
    "fashion-mnist-resnet20-b3": dict(arch="resnet20", bits=3, epochs=6,
                                      init="fashion-mnist-resnet20-b4"),
    "fashion-mnist-resnet20-b2": dict(arch="resnet20", bits=2, epochs=6,
                                      init="fashion-mnist-resnet20-b4"),
    "fashion-mnist-resnet20-b4-bitl1-1e-8": dict(arch="resnet20", bits=4, epochs=2, bit_l1=1e-8,
                                                 init="fashion-mnist-resnet20-b4"),
    "fashion-mnist-vgg11-b4": dict(arch="vgg11", bits=4, epochs=10),
    # a second cosine cycle from the b = 4 weights, aimed at the 95% target
    "fashion-mnist-resnet20-b4-long": dict(arch="resnet20", bits=4, epochs=16, lr=0.05,
                                           init="fashion-mnist-resnet20-b4"),
    # a third cycle with random erasing, from the second cycle's weights
    "fashion-mnist-resnet20-b4-erase": dict(arch="resnet20", bits=4, epochs=20, lr=0.05,
                                            erase=0.5, init="fashion-mnist-resnet20-b4-long"),
    # the third cycle's weights widened to twice the channels (function-preserving), fine-tuned
    "fashion-mnist-resnet20w2-b4": dict(arch="resnet20", arch_kwargs={"width": 2}, bits=4,
                                        epochs=6, lr=0.03, erase=0.5,
                                        init="fashion-mnist-resnet20-b4-erase"),
    # a second, gentler cycle of the twice-wide network
    "fashion-mnist-resnet20w2-b4-long": dict(arch="resnet20", arch_kwargs={"width": 2}, bits=4,
                                             epochs=8, lr=0.015, erase=0.5,
                                             init="fashion-mnist-resnet20w2-b4"),
    # a third, longer and gentler cycle
    "fashion-mnist-resnet20w2-b4-long2": dict(arch="resnet20", arch_kwargs={"width": 2}, bits=4,
                                              epochs=10, lr=0.01, erase=0.5,
                                              init="fashion-mnist-resnet20w2-b4-long"),
    # one long cycle of the twice-wide network straight from the committed b = 4 weights, in
    # bfloat16 (benchmarks/train_precision.py) to fit in fewer sessions; its partial checkpoint is
    # committed to benchmarks/deep/ between sessions and resumed from there
    "fashion-mnist-resnet20w2-b4-bf16": dict(arch="resnet20", arch_kwargs={"width": 2}, bits=4,
                                             epochs=32, lr=0.05, erase=0.5, bf16=True,
                                             init="fashion-mnist-resnet20-b4"),
    # a second long cycle of it, gentler and with another data order (seed 1), fixed before it
    # ran; resumed across sessions like the first, its partial checkpoint in benchmarks/deep/
    "fashion-mnist-resnet20w2-b4-c2": dict(arch="resnet20", arch_kwargs={"width": 2}, bits=4,
                                           epochs=16, lr=0.02, erase=0.5, seed=1,
                                           init="fashion-mnist-resnet20w2-b4-bf16"),
}


def _data():
    return load_dataset("fashion-mnist", DATA_ROOT / "fashion-mnist", image_size=32)


def train_config(name: str) -> TrainConfig:
    spec = {"lr": 0.1, "seed": 0, **CONFIGS[name]}
    init = spec.pop("init", None)
    if spec.get("bf16") and not cpu_model()["amx_bf16"]:
        print(f"{name}: this CPU has no AMX bfloat16 units, so it trains in float32 here (each "
              "epoch's precision is in its log)")
        spec["bf16"] = False
    return TrainConfig(dataset="fashion-mnist", batch_size=128, augment=True,
                       init=str(model_path(init)) if init else "", **spec)


def train_one(name: str, results: dict) -> None:
    cfg = train_config(name)
    out = model_path(name)
    resume = None
    if out.exists():
        saved = load_checkpoint(out)
        done = saved["epoch"]
        if done >= cfg.epochs:
            print(f"{name}: already trained ({done} epochs); its record refreshed")
            results.setdefault(name, {})["checkpoint"] = training_record(saved)
            return
        resume, cfg.init = str(out), ""  # the weights come from the checkpoint now
        print(f"{name}: resuming after epoch {done}")
    MODELS.mkdir(parents=True, exist_ok=True)
    ckpt = train(cfg, _data(), str(out), resume=resume, progress=True)
    results.setdefault(name, {})["training"] = {
        **training_record(ckpt), "command": f"python benchmarks/deep_networks.py --train "
        f"--only {name}", "config": CONFIGS[name], "threads": torch.get_num_threads()}


def training_record(ckpt: dict) -> dict:
    """What a checkpoint's log says about its training."""
    log = ckpt["log"]
    return {"train_args": ckpt["train_args"], "epochs": len(log),
            "test_accuracy": log[-1]["test_accuracy"],
            "test_accuracy_per_epoch": [e["test_accuracy"] for e in log],
            "bits_per_activation": log[-1]["bits_per_activation"],
            "seconds_per_epoch": [e["seconds"] for e in log],
            # epochs logged before a run could change precision on resume ran in its own
            "bf16_per_epoch": [e.get("bf16", ckpt["train_args"]["bf16"]) for e in log]}


def first_reaching(accuracy: dict[str, float], target: float) -> int:
    """The smallest T whose accuracy is within WITHIN of ``target``, else the largest T."""
    steps = sorted(int(k[2:]) for k in accuracy)
    return next((t for t in steps if accuracy[f"T={t}"] >= target - WITHIN), steps[-1])


def lava_check(net, images: np.ndarray) -> dict:
    """Lava fixed_pt (Loihi2SimCfg) against the fixed-point reference: mismatching codes per
    hidden layer and mismatching logits (all must be 0)."""
    from lava_bitsnn.lava.runner import LavaRunner

    t0 = time.perf_counter()
    lava = LavaRunner(net, "fixed", batch_size=16).run_dataset(images, record=True)
    seconds = time.perf_counter() - t0
    ref = ReferenceEngine(net, "fixed").run_batch(images)
    codes = {layer.name: int((lava.codes[i] != ref.codes[i]).sum())
             for i, layer in enumerate(net.layers) if layer.kind == "neuron"}
    return {"samples": len(images), "code_mismatches": sum(codes.values()),
            "logit_mismatches": int((lava.logits != ref.logits).sum()),
            "per_layer": codes, "seconds": seconds}


def neuron_row(net, images, labels, neuron: str, steps: int) -> dict:
    """Latency and streaming period of the schedule; accuracy, spikes and energy per inference
    of a reference run in batches of 16 (an IF run holds every layer's spike trains)."""
    precision = "fixed" if neuron == "bit-serial" else "float"
    engine = ReferenceEngine(net, precision, neuron, steps)
    t0 = time.perf_counter()
    preds, counts = engine.evaluate(images, batch_size=16)
    totals = {p: energy_report(counts, PRESETS[p], {}, net, {}, neuron)["totals"]
              for p in PRESET_NAMES}
    sched = build_schedule(net, neuron, steps)
    return {"time_steps": steps, "latency_steps": sched.latency,
            "streaming_steps_per_sample": sched.period,
            "accuracy_on_energy_samples": float((preds == labels).mean()),
            "spikes_per_inference": totals["cmos45nm"]["spikes"],
            "hidden_spike_rate": hidden_spike_rate(counts), "samples": len(labels),
            "energy_per_inference_pj": {p: t["snn_pj"] for p, t in totals.items()},
            "ann_energy_per_inference_pj": {p: {k: t[k] for k in ("qann_b_pj", "ann_pj")}
                                            for p, t in totals.items()},
            "seconds": time.perf_counter() - t0}


def measure(name: str, results: dict, lava_samples: int, energy_samples: int) -> None:
    bench = load_benchmark_model(name)
    if bench is None:
        return
    net, x, y = bench.net, bench.data.test.images, bench.data.test.labels
    entry = results.setdefault(name, {})
    entry["layers"] = len(net.layers) - 1
    entry["checkpoint"] = training_record(bench.checkpoint)
    if lava_samples:
        entry["lava"] = lava_check(net, x[:lava_samples])
        save_result("deep_networks.json", name, entry)  # a long run: keep what is done
    acc = json.loads((RESULTS / "accuracy_vs_t.json").read_text()).get(name)
    if acc is None or acc.get("if") is None:
        print(f"no neuron table for {name}: run python benchmarks/accuracy_vs_t.py --only "
              f"{name} --if-samples 1000 first (the table needs the IF baseline)")
        return
    model = model_from_checkpoint(bench.checkpoint)
    norm = bench.checkpoint["normalisation"]
    n_if = acc["if_samples"]
    ann_if = evaluate(model, x[:n_if], y[:n_if], norm["mean"], norm["std"])["accuracy"]
    t_bs = first_reaching(acc["bit_serial_on_if_samples"], ann_if)
    t_if = first_reaching(acc["if"], ann_if)
    xe, ye = x[:energy_samples], y[:energy_samples]
    entry["neurons"] = {
        "command": f"python benchmarks/deep_networks.py --measure --only {name}",
        "ann_accuracy_on_if_samples": ann_if, "if_samples": n_if,
        "bit-serial": {**neuron_row(net, xe, ye, "bit-serial", t_bs),
                       "reaches_ann": acc["bit_serial_on_if_samples"][f"T={t_bs}"]
                       >= ann_if - WITHIN},
        "if": {**neuron_row(net, xe, ye, "if", t_if),
               "reaches_ann": acc["if"][f"T={t_if}"] >= ann_if - WITHIN}}


def fixed_point_key(lr: float, epochs: int, erase: float) -> str:
    """The run's key in deep_fixed_point.json and its checkpoint's suffix: ``lrLR`` for the
    one-epoch schedule without erasing, ``lrLR-eE-eraseP`` otherwise."""
    return f"lr{lr:g}" + (f"-e{epochs}-erase{erase:g}" if (epochs, erase) != (1, 0.0) else "")


def fixed_point(name: str, lr: float, epochs: int, erase: float,
                verify_samples: int) -> dict | None:
    """``bitsnn-train --from NAME --fixed-point`` for ``epochs`` (a cosine cycle from ``lr``,
    random crops and flips, erasing with probability ``erase``), then ``bitsnn-export`` and
    ``bitsnn-verify`` of the result, through the CLIs' own code; the fine-tuned checkpoint is
    kept (runs/benchmarks/NAME-fixed-KEY.pt), so a second run only exports and verifies
    again."""
    from lava_bitsnn.cli import export, verify
    from lava_bitsnn.cli import train as train_cli

    source = model_path(name)
    if not source.exists():
        print(f"skip {name}: train it first (--train)")
        return None
    out = MODELS / f"{name}-fixed-{fixed_point_key(lr, epochs, erase)}.pt"
    net, report = out.with_suffix(".net"), out.with_suffix(".verify.json")
    data = ["--dataset", "fashion-mnist", "--data-dir", str(DATA_ROOT / "fashion-mnist")]
    erasing = ["--erase", f"{erase:g}"] if erase else []
    steps = [["--from", str(source), "--fixed-point", *data, "--image-size", "32", "--epochs",
              str(epochs), "--lr", f"{lr:g}", "--augment", *erasing, "-o", str(out)],
             [str(out), "-o", str(net)],
             [str(out), str(net), *data, "--samples", str(verify_samples), "--lava-samples", "8",
              "--json", str(report)]]
    if not out.exists() and train_cli.main(steps[0]):
        raise SystemExit(f"bitsnn-train failed on {name}")
    if export.main(steps[1]):
        raise SystemExit(f"bitsnn-export failed on {name}")
    report.unlink(missing_ok=True)
    started = time.perf_counter()
    if verify.main(steps[2]) not in (0, 1):  # 1: mismatches, which the report records
        raise SystemExit(f"bitsnn-verify failed on {name}")
    verify_seconds = time.perf_counter() - started
    tuned, checked = load_checkpoint(out), json.loads(report.read_text())
    return {"command": "; ".join(f"bitsnn-{tool} " + " ".join(argv) for tool, argv in
                                 zip(("train", "export", "verify"), steps, strict=True)),
            "float_model_accuracy": tuned["source"]["float_accuracy"],
            "exported_fixed_snn_accuracy": tuned["source"]["exported_fixed_snn_accuracy"],
            "fine_tuned_accuracy": tuned["test_accuracy"],
            "test_accuracy_per_epoch": [e["test_accuracy"] for e in tuned["log"]],
            "seconds_per_epoch": [e["seconds"] for e in tuned["log"]],
            "verify": verify_record(checked), "verify_seconds": verify_seconds}


def verify_record(report: dict) -> dict:
    """What a ``bitsnn-verify --json`` report says, with its per-layer counts summed."""
    return ({k: report[k] for k in ("samples", "accuracy", "ok", "lava_samples",
                                    "logit_mismatches")}
            | {key: sum(layer[key] for layer in report["layers"]) for key in COUNTS})


def print_tables(results: dict) -> None:
    print("| network | layers | epochs | ANN | Lava fixed vs reference |\n|---|---:|---:|---:|---|")
    for name, r in results.items():
        t, lava = r.get("checkpoint") or r.get("training", {}), r.get("lava")
        check = "–" if lava is None else (
            f"{lava['code_mismatches']} code / {lava['logit_mismatches']} logit mismatches on "
            f"{lava['samples']} images")
        ann = f"{100 * t['test_accuracy']:.2f}%" if t else "–"
        print(f"| {name} | {r.get('layers', '–')} | {t.get('epochs', '–')} | {ann} | {check} |")
    print("\n| network | neuron | T | reaches ANN (±0.1 pp) | latency (steps) | steps/sample "
          "streaming | spikes/inference | energy/inference cmos45nm | loihi |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        for neuron, row in r.get("neurons", {}).items():
            if not isinstance(row, dict) or "latency_steps" not in row:
                continue
            e = row["energy_per_inference_pj"]
            print(f"| {name} | {neuron} | {row['time_steps']} | "
                  f"{'yes' if row['reaches_ann'] else 'no'} | {row['latency_steps']} | "
                  f"{row['streaming_steps_per_sample']} | {row['spikes_per_inference']:.0f} | "
                  f"{e['cmos45nm'] / 1e6:.3g} µJ | {e['loihi'] / 1e6:.3g} µJ |")


def _save(name: str, step) -> None:
    """Run ``step(name, entries)`` and merge its entry for ``name`` into the results file."""
    entries: dict = {}
    step(name, entries)
    if name in entries:
        save_result("deep_networks.json", name, entries[name])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", action="store_true")
    p.add_argument("--measure", action="store_true")
    p.add_argument("--only", nargs="*", choices=list(CONFIGS), default=list(CONFIGS))
    p.add_argument("--lava-samples", type=int, default=256)
    p.add_argument("--energy-samples", type=int, default=256)
    p.add_argument("--fixed-point", type=float, metavar="LR",
                   help="fine-tune the fixed-point grid from this learning rate, export and "
                        "verify (benchmarks/results/deep_fixed_point.json)")
    p.add_argument("--fixed-point-epochs", type=int, default=1, metavar="E",
                   help="epochs of that fine-tuning, one cosine cycle (default 1)")
    p.add_argument("--fixed-point-erase", type=float, default=0.0, metavar="P",
                   help="its random-erasing probability (default 0)")
    p.add_argument("--verify-samples", type=int, default=2000)
    args = p.parse_args()
    for name in args.only:
        if args.train:
            _save(name, train_one)
        if args.fixed_point is not None:
            schedule = (args.fixed_point, args.fixed_point_epochs, args.fixed_point_erase)
            if row := fixed_point(name, *schedule, args.verify_samples):
                save_result("deep_fixed_point.json", name, {fixed_point_key(*schedule): row})
        if args.measure:
            _save(name, lambda n, r: measure(n, r, args.lava_samples, args.energy_samples))
    _, results = previous_results("deep_networks.json")
    acc = json.loads((RESULTS / "accuracy_vs_t.json").read_text()) \
        if (RESULTS / "accuracy_vs_t.json").exists() else {}
    deep = {k: v for k, v in acc.items() if k in CONFIGS}
    if deep:
        plot(deep, str(RESULTS / "deep_accuracy_vs_t.png"))
    print_tables(results)


if __name__ == "__main__":
    main()
