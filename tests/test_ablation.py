"""The ablation switches of the reference engine (the paper's Table 4), each checked against
an independent integer recomputation of one layer from its (ablated) inputs."""

import numpy as np
import pytest
import torch

from lava_bitsnn.convert.synapse_ops import apply_synapse
from lava_bitsnn.reference import ReferenceEngine


def _current(net, idx, inputs):
    """Σ_syn W_int · input for layer ``idx``; ``inputs`` indexed like its synapses."""
    layer = net.layers[idx]
    total = sum(apply_synapse(s, torch.from_numpy(x.astype(np.float64)),
                              torch.from_numpy(s.weight_int.astype(np.float64)))
                for s, x in zip(layer.synapses, inputs, strict=True))
    return total.reshape(total.shape[0], *layer.shape).numpy()


def _code(u, layer):
    return np.clip(np.floor(u / layer.threshold_unit), 0, layer.max_code).astype(np.int64)


def _bits(code, bits, t):
    return (code >> (bits - t)) & 1


def _hidden(net):
    """Firing layers with their sources' (bits, accumulate steps); the shipped digits model
    takes its 8-bit pixels bit-serially, so the first layer is ablated too."""
    assert net.encoding == "bit-serial"
    rows = []
    for i, layer in enumerate(net.layers):
        if layer.kind == "neuron":
            src = net.layers[layer.synapses[0].source]
            rows.append((i, (8, 8) if src.kind == "input" else (src.bits, net.time_steps)))
    return rows


@pytest.fixture(scope="module")
def images(digits_data):
    return digits_data.test.images[:40]


def test_full_method_is_unchanged(digits_net, images):
    """No switch: the step-wise path with the ablation plumbing still equals the fused one."""
    a = ReferenceEngine(digits_net, "fixed", fused=False).run_batch(images)
    b = ReferenceEngine(digits_net, "fixed").run_batch(images)
    for x, y in zip(a.codes, b.codes, strict=True):
        np.testing.assert_array_equal(x, y)


def test_without_left_shift_inputs_count_unweighted(digits_net, images):
    net = digits_net
    result = ReferenceEngine(net, "fixed", ablate=("left-shift",)).run_batch(images)
    for i, (bits, steps) in _hidden(net):
        layer = net.layers[i]
        popcounts = [sum(_bits(result.codes[s.source], bits, t) for t in range(1, steps + 1))
                     for s in layer.synapses]
        u = _current(net, i, popcounts) + layer.bias_full(True)
        np.testing.assert_array_equal(result.codes[i], _code(u, layer))


def test_without_bias_shift_the_bias_is_added_every_step(digits_net, images):
    net = digits_net
    result = ReferenceEngine(net, "fixed", ablate=("bias-shift",)).run_batch(images)
    for i, (_, steps) in _hidden(net):
        layer = net.layers[i]
        u = _current(net, i, [result.codes[s.source] for s in layer.synapses]) \
            + steps * layer.bias_full(True)
        np.testing.assert_array_equal(result.codes[i], _code(u, layer))


def test_without_deferred_firing_bit_t_fires_after_step_t(digits_net, images):
    net = digits_net
    result = ReferenceEngine(net, "fixed", ablate=("deferred-firing",)).run_batch(images,
                                                                                  record=True)
    full = ReferenceEngine(net, "fixed").run_batch(images)
    differs = 0
    for i, (bits, steps) in _hidden(net):
        layer = net.layers[i]
        bias = layer.bias_full(True)
        step_bias = bias // steps
        u = np.zeros((len(images), *layer.shape)) + (bias - step_bias * steps)
        spikes = []
        for t in range(1, steps + 1):  # inputs after the last fire step are lost
            src = [_bits(result.codes[s.source], bits, t) for s in layer.synapses]
            u = u + _current(net, i, src) * 2 ** (bits - t) + step_bias
            if t > net.time_steps:
                continue
            theta = layer.threshold_unit * 2 ** (layer.bits - t)
            spikes.append(u >= theta)
            u = u - spikes[-1] * theta
        np.testing.assert_array_equal(result.spikes[i], np.stack(spikes, axis=1))
        differs += int((result.codes[i] != full.codes[i]).sum())
    assert differs > 0  # firing before the low bits arrive changes codes on real data


def test_ablation_is_refused_where_it_has_no_meaning(digits_net):
    with pytest.raises(ValueError, match="ablate"):
        ReferenceEngine(digits_net, "fixed", ablate=("reset",))
    with pytest.raises(ValueError, match="ablate"):
        ReferenceEngine(digits_net, "float", neuron="if", time_steps=4, ablate=("left-shift",))
    with pytest.raises(ValueError, match="fused"):
        ReferenceEngine(digits_net, "fixed", fused=True, ablate=("left-shift",))
