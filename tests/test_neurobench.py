"""Our NeuroBench-named metrics against NeuroBench's own (neurobench 2.3.0, the optional
``neurobench`` extra; skipped where it is not installed, except under ``make test``, which
installs it and sets BITSNN_REQUIRE_NEUROBENCH).

NeuroBench measures a PyTorch model through hooks: connection layers (Conv2d, Linear) and
activation modules. ``BitSerialTorch`` is the same bit-serial SNN as a PyTorch model: every
accumulate step feeds one bit plane of spikes through each synapse's Conv2d / Linear (a folded
sum-pool folded into the kernel, as in our synapses), every fire step emits one bit plane
through a ``Spikes`` activation module. Footprint is compared on ``Storage``, a module that
holds the deployed arrays at their stored widths (int8 weights, int32 biases and membranes:
``u_acc`` and ``u_fire`` per hidden bit-serial neuron, as ``BitSerialNeuron`` keeps them, one
accumulator per output neuron),
connection sparsity on the synapses' kernels as stored (a pooled kernel once, not per window
position as in the folded Conv2d / Linear).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch import nn

from lava_bitsnn.convert.synapse_ops import apply_synapse
from lava_bitsnn.core.ir import INPUT_BITS, Network, Synapse
from lava_bitsnn.energy.neurobench import evaluate_with_events, neurobench_metrics
from lava_bitsnn.reference import ReferenceEngine
from tests.test_energy import CASES, _image, mixed_bits_net

if os.environ.get("BITSNN_REQUIRE_NEUROBENCH"):  # make test (and so CI): it must run
    import neurobench
else:
    neurobench = pytest.importorskip(
        "neurobench", reason="neurobench is an optional extra: pip install -e '.[neurobench]'")


class Spikes(nn.Module):
    """A spiking layer's output at one fire step (NeuroBench's activation module)."""

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        return spikes


def _connection(net: Network, syn: Synapse) -> nn.Module:
    """The synapse as one Conv2d / Linear on the unpooled source, integer weights."""
    w = torch.from_numpy(syn.weight_int.astype(np.float64))
    src = net.layers[syn.source].shape
    if syn.kind == "conv":
        p = syn.pool
        kernel = w.repeat_interleave(p, dim=2).repeat_interleave(p, dim=3)
        conv = nn.Conv2d(src[0], w.shape[0], kernel.shape[2:], stride=syn.stride * p,
                         padding=syn.padding * p, groups=syn.groups, bias=False).double()
        conv.weight.data = kernel
        return conv
    n_in = int(np.prod(src))
    basis = torch.eye(n_in, dtype=torch.float64).reshape(n_in, *src)
    linear = nn.Linear(n_in, w.shape[0], bias=False).double()
    linear.weight.data = apply_synapse(syn, basis, w).T.contiguous()
    return linear


def _bits(code: torch.Tensor, bits: int) -> list[torch.Tensor]:
    return [torch.bitwise_and(code >> (bits - t), 1).double() for t in range(1, bits + 1)]


class BitSerialTorch(nn.Module):
    def __init__(self, net: Network) -> None:
        super().__init__()
        self.net = net
        self.maps = nn.ModuleList(nn.ModuleList(_connection(net, s) for s in layer.synapses)
                                  for layer in net.layers[1:])
        self.spikes = nn.ModuleList(Spikes() for _ in net.layers[1:-1])

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        trains = [_bits(pixels.long(), INPUT_BITS)]
        for idx, layer in enumerate(self.net.layers[1:], start=1):
            u = torch.from_numpy(layer.bias_full(True).astype(np.float64)).expand(
                pixels.shape[0], *layer.shape).clone()
            for syn, conv in zip(layer.synapses, self.maps[idx - 1], strict=True):
                steps = len(trains[syn.source])
                for t, s in enumerate(trains[syn.source], start=1):
                    u += 2.0 ** (steps - t) * conv(s.reshape(s.shape[0], *conv_input(conv, s)))\
                        .reshape(u.shape)
            if layer.kind == "output":
                return u / layer.threshold_unit
            code = torch.clamp(torch.floor(u / layer.threshold_unit), 0, layer.max_code).long()
            trains.append([self.spikes[idx - 1](s) for s in _bits(code, layer.bits)])
        raise AssertionError("no output layer")


def conv_input(module: nn.Module, s: torch.Tensor) -> tuple[int, ...]:
    """A Linear reads the flattened source, a Conv2d the image."""
    return (int(np.prod(s.shape[1:])),) if isinstance(module, nn.Linear) else tuple(s.shape[1:])


def _kernels(net: Network) -> nn.Module:
    """The synapses as Conv2d / Linear modules of the stored shape (a pooled synapse's kernel
    is not repeated over the window, as in ``BitSerialTorch``)."""
    layers = nn.ModuleList()
    for syn in (s for layer in net.layers[1:] for s in layer.synapses):
        w = torch.from_numpy(syn.weight_int.astype(np.float64))
        module = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2:]) if syn.kind == "conv" \
            else nn.Linear(w.shape[1], w.shape[0])
        module.weight.data = w
        layers.append(module)
    return layers


class Storage(nn.Module):
    """The deployed arrays as buffers at their stored widths."""

    def __init__(self, net: Network) -> None:
        super().__init__()
        for i, layer in enumerate(net.layers[1:]):
            for j, syn in enumerate(layer.synapses):
                self.register_buffer(f"w{i}_{j}", torch.from_numpy(syn.mantissa.astype(np.int8)))
            self.register_buffer(f"b{i}", torch.from_numpy(layer.bias_int.astype(np.int32)))
            self.register_buffer(f"v{i}", torch.zeros(layer.shape, dtype=torch.int32))
            if layer.kind == "neuron":  # double-buffered: u_acc and u_fire
                self.register_buffer(f"f{i}", torch.zeros(layer.shape, dtype=torch.int32))


def _neurobench_run(net: Network, images: np.ndarray) -> dict:
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.static import ConnectionSparsity, Footprint
    from neurobench.metrics.workload import ActivationSparsity, SynapticOperations
    from neurobench.models import TorchModel

    model = TorchModel(BitSerialTorch(net))
    model.add_activation_module(Spikes)
    x = torch.from_numpy(images.astype(np.float64))
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, torch.zeros(len(x), dtype=torch.long)), batch_size=8)
    results = Benchmark(model, loader, [], [], [[], [ActivationSparsity, SynapticOperations]]
                        ).run(quiet=True)
    return {**results, "footprint": Footprint()(TorchModel(Storage(net))),
            "ConnectionSparsity": ConnectionSparsity()(TorchModel(_kernels(net)))}


def _ours(net: Network, images: np.ndarray) -> dict:
    engine = ReferenceEngine(net, "fixed")
    _, counts, events = evaluate_with_events(engine, images)
    return neurobench_metrics(net, counts, events, False, True)


def _compare(net: Network, images: np.ndarray) -> None:
    theirs, ours = _neurobench_run(net, images), _ours(net, images)
    assert theirs["footprint"] == ours["footprint"]
    assert theirs["ConnectionSparsity"] == round(ours["connection_sparsity"], 4)
    assert theirs["ActivationSparsity"] == pytest.approx(ours["activation_sparsity"],
                                                         abs=1e-12)
    assert theirs["SynapticOperations"] == pytest.approx(ours["synaptic_operations"],
                                                         rel=1e-12)


@pytest.mark.parametrize("make,shape,pixels", [case[:3] for case in CASES] + [
    (mixed_bits_net, (1, 2, 2), {(0, 0, 0): 255, (0, 1, 1): 200})])
def test_neurobench_agrees_on_hand_computed_nets(make, shape, pixels):
    _compare(make(), _image(shape, pixels))


def test_neurobench_agrees_on_digits(digits_net, digits_data):
    images = digits_data.test.images[:16]
    with torch.no_grad():
        logits = BitSerialTorch(digits_net)(torch.from_numpy(images.astype(np.float64))).numpy()
    reference = ReferenceEngine(digits_net, "fixed").run_batch(images).logits
    np.testing.assert_array_equal(logits, reference)  # the same network, bit for bit
    _compare(digits_net, images)
