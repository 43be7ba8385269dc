"""Lava runtime speed before and after a change, measured in one run (issue 13).

Checks out ``--before`` (a git revision) into a temporary worktree and runs the same Lava
throughput rows with the old and the new source tree, alternating old/new per row so that a
drifting machine load hits both alike. Adds the floor of Lava's runtime itself: a chain of as
many trivial Lava processes (source → pass-through … → sink, one small port each) as the
network has processes. Every Lava row is checked bit-exact against the reference engine.

    python benchmarks/lava_before_after.py --before cc6c1c5 [--network FILE.net]
        [--dataset fashion-mnist] [--rows "recorded"] [--out lava_before_after.json]

``--rows`` keeps the rows whose label contains one of the words given. Writes
benchmarks/results/OUT (default lava_before_after.json).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from checkpoints import DATA_ROOT, RESULTS

ROOT = Path(__file__).resolve().parents[1]
# label, neuron, input encoding, batch, pipelined, images, record every layer's codes
ROWS = [("sequential B=1", "bit-serial", "bit-serial", 1, False, 16, False),
        ("streaming B=1", "bit-serial", "bit-serial", 1, True, 32, False),
        ("batched B=16", "bit-serial", "bit-serial", 16, True, 256, False),
        ("batched B=64", "bit-serial", "bit-serial", 64, True, 512, False),
        ("batched B=64, graded input", "bit-serial", "graded", 64, True, 512, False),
        ("rate-coded IF T=8, batched B=16", "if", "bit-serial", 16, True, 256, False),
        ("recorded codes, batched B=16", "bit-serial", "bit-serial", 16, True, 32, True)]

# Runs inside a fresh interpreter with either source tree first on sys.path.
CHILD = r"""
import json, sys, copy
import numpy as np
from lava_bitsnn.ann.data import load_dataset
from lava_bitsnn.netx import read_network
from lava_bitsnn.reference import ReferenceEngine
try:
    from lava_bitsnn.lava.runner import LavaRunner as Runner
except ImportError:  # before the rename
    from lava_bitsnn.lava.network import Network as Runner
label, neuron, encoding, batch, pipelined, n, record, path, dataset, data_dir = \
    json.loads(sys.argv[1])
net = read_network(path)
if encoding == "graded":  # the same integers; biases are multiples of 8, hence of 1
    net = copy.deepcopy(net)
    net.encoding = "graded"
x = load_dataset(dataset, data_dir, image_size=net.input_shape[-1]).test.images[:n]
steps = 8 if neuron == "if" else None
result = Runner(net, "fixed", neuron, steps, batch_size=batch, pipelined=pipelined
                ).run_dataset(x, record=record)
ref = ReferenceEngine(net, "fixed", neuron, steps).run_batch(x, record=record)
exact = np.array_equal(result.logits, ref.logits) and (not record or all(
    np.array_equal(a, b) for a, b in zip(result.codes[1:-1], ref.codes[1:-1])))
print(json.dumps({"samples": n, "wall_seconds": result.wall_seconds,
                  "samples_per_second": n / result.wall_seconds, "steps": result.steps,
                  "ms_per_step": 1000 * result.wall_seconds / result.steps,
                  "exact": bool(exact)}))
"""

# The floor: a chain of trivial processes that only pass a small array on, step by step.
FLOOR = r"""
import json, sys, time
import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.io.source import RingBuffer as Source
from lava.proc.io.sink import RingBuffer as Sink

class Pass(AbstractProcess):
    def __init__(self, shape):
        super().__init__(shape=shape)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)

@implements(proc=Pass, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyPass(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32)
    def run_spk(self):
        self.s_out.send(self.a_in.recv())

def main():  # Lava imports this file to find PyPass: the run must not happen then
    processes, steps = int(sys.argv[1]), int(sys.argv[2])
    shape = (1, 8)
    source = Source(data=np.ones((*shape, steps), dtype=np.int32))
    chain = [Pass(shape) for _ in range(processes - 2)]
    sink = Sink(shape=shape, buffer=steps)
    ports = [source.s_out] + [p.s_out for p in chain]
    for out, proc in zip(ports, chain + [sink]):
        out.connect(proc.a_in)
    cfg = Loihi2SimCfg(select_tag="fixed_pt")
    source.run(condition=RunSteps(num_steps=10), run_cfg=cfg)  # compile and start
    t0 = time.perf_counter()
    source.run(condition=RunSteps(num_steps=steps), run_cfg=cfg)
    wall = time.perf_counter() - t0
    source.stop()
    print(json.dumps({"processes": processes, "steps": steps, "ms_per_step": 1000 * wall / steps}))

if __name__ == "__main__":
    main()
"""


def _child(tree: Path, script: str, *args: str) -> dict:
    """Run ``script`` in a fresh interpreter with ``tree``'s lava_bitsnn first on the path."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "child.py"
        path.write_text(f"import sys; sys.path.insert(0, {str(tree)!r})\n{script}")
        proc = subprocess.run([sys.executable, str(path), *args], capture_output=True,
                              text=True, cwd=tree, timeout=3600)
    if proc.returncode:
        raise SystemExit(f"child failed in {tree}:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _process_count(network: str) -> int:
    """Processes of a Lava run of the network: the source, one synapse per IR synapse and
    one neuron population per layer."""
    from lava_bitsnn.netx import read_network

    net = read_network(network)
    return 1 + sum(1 + len(layer.synapses) for layer in net.layers[1:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", required=True, help="git revision of the old code")
    p.add_argument("--network", default=str(ROOT / "netx_models" / "mnist-mnist-cnn.net"))
    p.add_argument("--data-root", default=str(DATA_ROOT))
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--rows", nargs="*", help="only the rows whose label contains a word given")
    p.add_argument("--out", default="lava_before_after.json")
    args = p.parse_args()
    data_dir = str(Path(args.data_root) / args.dataset)
    chosen = [r for r in ROWS if not args.rows or any(w in r[0] for w in args.rows)]
    network = str(Path(args.network).resolve())
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(old), args.before], cwd=ROOT,
                       check=True, capture_output=True)
        try:
            for row in chosen:
                spec = json.dumps([*row, network, args.dataset, data_dir])
                before = _child(old, CHILD, spec)
                after = _child(ROOT, CHILD, spec)
                rows[row[0]] = {"before": before, "after": after,
                                "after_over_before": after["samples_per_second"] /
                                before["samples_per_second"]}
                print(row[0], json.dumps(rows[row[0]]), flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT,
                           check=False, capture_output=True)
    count = _process_count(network)
    floor = _child(ROOT, FLOOR, str(count), "2000")
    print("floor", floor)
    RESULTS.mkdir(parents=True, exist_ok=True)
    summary = {"command": " ".join(["python benchmarks/lava_before_after.py", *sys.argv[1:]]),
               "network": args.network, "rows": rows, "lava_floor": floor}
    (RESULTS / args.out).write_text(json.dumps(summary, indent=1))
    print("\n| row | before samples/s | after samples/s | after / before | ms/step after | exact |"
          "\n|---|---:|---:|---:|---:|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['before']['samples_per_second']:.1f} | "
              f"{r['after']['samples_per_second']:.1f} | {r['after_over_before']:.2f} | "
              f"{r['after']['ms_per_step']:.1f} | "
              f"{r['before']['exact'] and r['after']['exact']} |")
    print(f"| Lava floor: {floor['processes']} trivial processes | | | | "
          f"{floor['ms_per_step']:.2f} | |")


if __name__ == "__main__":
    main()
