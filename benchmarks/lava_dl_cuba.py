"""Throughput of a plain lava-dl netx network with CUBA neurons (Lava's own Dense/Conv and
neuron models) of mnist-cnn's neuron counts, run rate-coded for T steps per sample: the
comparison point for our Lava runtime in benchmarks/lava_throughput.py.

lava-dl's netx cannot load pools, so the pool-free twin replaces the first pool by a stride-2
conv and keeps the second feature map (the fc layer sees 64·14·14 inputs): every layer has
mnist-cnn's neuron count. Weights are random (seeded): this measures simulation speed, not
accuracy; Lava's Conv does the same work every step whatever the spikes.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lava_bitsnn.ann.qcfs import QCFS
from lava_bitsnn.ann.zoo import conv_bn_act
from lava_bitsnn.convert.model import convert_model
from lava_bitsnn.core.ir import Network
from lava_bitsnn.netx import write_lava_dl_cuba


def pool_free_twin(bits: int = 4, seed: int = 0) -> Network:
    """mnist-cnn's neuron counts (32·28², 32·28², 64·14², 64·14², 256, 10) without pools."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        *conv_bn_act(1, 32, bits), *conv_bn_act(32, 32, bits),
        *conv_bn_act(32, 64, bits, stride=2), *conv_bn_act(64, 64, bits),
        nn.Flatten(), nn.Linear(64 * 14 * 14, 256, bias=False), nn.BatchNorm1d(256),
        QCFS(bits), nn.Linear(256, 10)).eval()
    return convert_model(model, (1, 28, 28), [0.1307], [0.3081], [str(i) for i in range(10)])


def cuba_throughput(images: np.ndarray, steps: int) -> dict:
    """Run ``images`` (N, 1, 28, 28) one after the other, ``steps`` steps each, on the lava-dl
    netx CUBA twin under Loihi2SimCfg (fixed point); the wall time includes compiling,
    starting and stopping the runtime, as our Network.run_dataset's does."""
    from lava.lib.dl import netx
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    total = len(images) * steps
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cuba.net"
        write_lava_dl_cuba(pool_free_twin(), path)
        cuba = netx.hdf5.Network(net_config=str(path))
        # constant input current per sample (WHC), repeated for its steps
        frames = np.repeat(images.transpose(0, 3, 2, 1).astype(np.int32), steps, axis=0)
        source = Source(data=np.moveaxis(frames, 0, -1))
        sink = Sink(shape=cuba.out.shape, buffer=total)
        source.s_out.connect(cuba.inp)
        cuba.out.connect(sink.a_in)
        t0 = time.perf_counter()  # like Network.run_dataset: compile, run, read, stop
        try:
            cuba.run(condition=RunSteps(num_steps=total),
                     run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
            spikes = int(np.count_nonzero(sink.data.get()))
        finally:
            cuba.stop()
        wall = time.perf_counter() - t0
    return {"samples": len(images), "steps_per_sample": steps, "simulated_steps": total,
            "wall_seconds": wall, "samples_per_second": len(images) / wall,
            "ms_per_step": 1000 * wall / total, "output_spikes": spikes}


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    print(cuba_throughput(rng.integers(0, 256, (2, 1, 28, 28)), 8))
