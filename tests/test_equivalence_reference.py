"""The reference engine's own promises: bitsnn-verify's report on real data and random
networks, fused == step-wise (codes, spikes, counts), graded == bit-serial input, float on the
integer grid == fixed, the IF read-out. Engine-vs-oracle equivalence is in test_matrix.py."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lava_bitsnn.ann.checkpoint import load_checkpoint, model_from_checkpoint
from lava_bitsnn.convert.fixed import float_from_fixed
from lava_bitsnn.convert.model import convert_model
from lava_bitsnn.reference import ReferenceEngine
from lava_bitsnn.verify import verify_batch
from tests.random_nets import random_qcfs_net


def test_digits_every_layer_equal(digits_checkpoint, digits_net, digits_data):
    model = model_from_checkpoint(load_checkpoint(digits_checkpoint))
    x, y = digits_data.test.images, digits_data.test.labels
    report = verify_batch(model, digits_net, x, y)
    assert report.ok
    # float64 ANN and float SNN agree on every code of every layer here (none at a bin edge)
    assert all(r.ann_vs_float == 0 for r in report.layers)
    assert all(r.qann_vs_fixed == 0 for r in report.layers)
    assert report.accuracy["ann"] == report.accuracy["float_snn"]
    assert report.accuracy["int_qann"] == report.accuracy["fixed_snn"]
    assert report.logit_mismatches == 0
    assert report.accuracy["ann"] > 0.9


def _assert_same_run(a, b) -> None:
    """Two BatchResults: equal codes, logits, recorded spikes and op counts."""
    for x, y in zip(a.codes, b.codes, strict=True):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(a.spikes, b.spikes, strict=True):
        assert (x is None) == (y is None)
        if x is not None:
            np.testing.assert_array_equal(x, y)
    assert [c.as_dict() for c in a.counts] == [c.as_dict() for c in b.counts]


@pytest.mark.parametrize("time_steps", [4, 3, 1])
def test_fused_path_equals_stepwise(digits_net, digits_data, time_steps):
    x = digits_data.test.images[:60]
    fused = ReferenceEngine(digits_net, "fixed", time_steps=time_steps, fused=True)
    steps = ReferenceEngine(digits_net, "fixed", time_steps=time_steps, fused=False)
    _assert_same_run(fused.run_batch(x, record=True), steps.run_batch(x, record=True))


def test_fused_path_refuses_networks_that_may_clip(digits_net):
    import copy

    net = copy.deepcopy(digits_net)
    net.layers[2].bias_int = net.layers[2].bias_int + (1 << 23)
    assert ReferenceEngine(net, "fixed").fused is False  # the default falls back
    with pytest.raises(ValueError, match="clip"):
        ReferenceEngine(net, "fixed", fused=True)


def _at_the_edge(digits_net, bias_for_room):
    """A copy of the digits net whose layer 2 gets, on its neuron with the largest positive
    current bound, the bias ``bias_for_room(room, steps)`` for ``room = 2^23 − 1 − bound``;
    (net, layer, the layer's accumulate steps, the bias)."""
    import copy

    from lava_bitsnn.convert.fixed import signed_bounds
    from lava_bitsnn.core.dynamics import ACC_MAX

    net = copy.deepcopy(digits_net)
    steps = ReferenceEngine(net, "fixed").schedule.layers[2].acc_steps
    layer = net.layers[2]
    positive, _ = signed_bounds(net, layer)
    c = int(positive.argmax())
    layer.bias_int = layer.bias_int.copy()
    layer.bias_int[c] = bias = bias_for_room(int(ACC_MAX - positive[c]), steps)
    return net, layer, steps, bias


def test_fused_path_runs_a_grid_bias_at_the_24_bit_edge(digits_net, digits_data):
    """A bias on its layer's grid (as ``bitsnn-export`` writes them) that brings the bound to
    within one grid step of 2^23 − 1 cannot clip: the fused path takes it, equal to the
    step-wise loops."""
    from lava_bitsnn.convert.fixed import accumulator_bound
    from lava_bitsnn.core.dynamics import ACC_MAX

    net, layer, steps, _ = _at_the_edge(digits_net, lambda room, steps: room // steps * steps)
    assert ACC_MAX - steps < accumulator_bound(net, layer) <= ACC_MAX
    fused = ReferenceEngine(net, "fixed")
    assert fused.fused
    x = digits_data.test.images[:20]
    _assert_same_run(fused.run_batch(x, record=True),
                     ReferenceEngine(net, "fixed", fused=False).run_batch(x, record=True))


def test_an_off_grid_bias_within_its_remainder_of_the_edge_is_not_fused(digits_net):
    """Off the grid the bias's remainder enters at step 1, so the bound may be passed by it:
    a layer within that remainder of 2^23 − 1 runs step-wise, where clips are counted."""
    from lava_bitsnn.convert.fixed import accumulator_bound
    from lava_bitsnn.core.dynamics import ACC_MAX

    net, layer, steps, bias = _at_the_edge(
        digits_net, lambda room, steps: room if room % steps else room - 1)  # off the grid
    remainder = bias % steps
    assert remainder >= 1 and accumulator_bound(net, layer) <= ACC_MAX
    assert accumulator_bound(net, layer) + remainder > ACC_MAX
    assert not ReferenceEngine(net, "fixed").fused
    with pytest.raises(ValueError, match="fused path is exact only"):
        ReferenceEngine(net, "fixed", fused=True)


def test_graded_input_equals_bit_serial_in_fixed_point(digits_net, digits_data):
    """The same integer network, its input sent as 8 bit-planes or as graded pixels in one
    step, gives the same codes and logits: the left shift weighs each input bit exactly."""
    import copy

    graded = copy.deepcopy(digits_net)  # biases are multiples of 8, hence of 1 too
    graded.encoding = "graded"
    x = digits_data.test.images[:50]
    a = ReferenceEngine(digits_net, "fixed", fused=False).run_batch(x)
    b = ReferenceEngine(graded, "fixed", fused=False).run_batch(x)
    for i in range(1, len(a.codes) - 1):
        np.testing.assert_array_equal(a.codes[i], b.codes[i])
    np.testing.assert_array_equal(a.logits, b.logits)
    assert a.counts[1].accumulate_steps == 8 and b.counts[1].accumulate_steps == 1
    assert b.counts[1].input_macs > 0 and a.counts[1].synops > 0 and b.counts[1].synops == 0


def test_weights_on_the_grid_make_float_equal_fixed(digits_net, digits_data):
    """Weight rounding is the only cause of the float/fixed gap: a float network that already
    sits on the integer grid gives the fixed-point spikes exactly."""
    x = digits_data.test.images[:100]
    snapped = float_from_fixed(digits_net)
    f = ReferenceEngine(snapped, "float").run_batch(x)
    q = ReferenceEngine(digits_net, "fixed").run_batch(x)
    for a, b in zip(f.codes[1:-1], q.codes[1:-1], strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(f.logits, q.logits)


def test_if_baseline_improves_with_time_steps(digits_net, digits_data):
    x, y = digits_data.test.images, digits_data.test.labels
    acc = {}
    for t in (1, 4, 32):
        result = ReferenceEngine(digits_net, "float", neuron="if", time_steps=t).run_batch(x)
        acc[t] = float((result.predictions == y).mean())
    # the rate code needs steps to carry the values (measured on this net: 97.5% at T = 4), and
    # by T = 32 it reaches the quantised ANN's accuracy (99.2%, the bit-serial SNN's)
    exact = ReferenceEngine(digits_net, "fixed").run_batch(x)
    assert acc[4] > acc[1] + 0.3
    assert acc[32] >= acc[4] - 0.01
    assert abs(acc[32] - float((exact.predictions == y).mean())) < 0.02


def test_fixed_point_if_follows_float_until_its_accumulators_saturate(digits_net, digits_data):
    """The IF membrane integrates a whole pre-activation every step, so over a long window the
    24-bit accumulators saturate, the hidden membranes first (the bit-serial neuron's cannot:
    the export bounds them). The engine counts every clip, which ``bitsnn-run`` refuses without
    ``--allow-saturation``; on this net fixed-point IF falls from 98.9% at T = 16 to 80.8% at
    T = 64 while float IF stays at 99.2%, which is why the benchmarks' IF curves run in float."""
    x, y = digits_data.test.images, digits_data.test.labels
    short = ReferenceEngine(digits_net, "fixed", neuron="if", time_steps=6).run_batch(x)
    assert sum(c.overflows for c in short.counts) == 0
    float_short = ReferenceEngine(digits_net, "float", neuron="if", time_steps=6).run_batch(x)
    assert (short.predictions == float_short.predictions).mean() >= 0.98
    long = ReferenceEngine(digits_net, "fixed", neuron="if", time_steps=64).run_batch(x)
    float_long = ReferenceEngine(digits_net, "float", neuron="if", time_steps=64).run_batch(x)
    assert long.counts[1].overflows > 0 and long.counts[-1].overflows > 0
    assert (long.predictions == y).mean() < (float_long.predictions == y).mean() - 0.05


def test_if_read_out_after_step_t_equals_a_run_of_t_steps(digits_net, digits_data):
    """One long IF run gives the accuracy at every shorter T (the benchmark relies on it)."""
    x = digits_data.test.images[:30]
    long = ReferenceEngine(digits_net, "fixed", neuron="if", time_steps=16).run_batch(x)
    assert long.logits_by_step.shape == (30, 16, 10)
    np.testing.assert_array_equal(long.logits_by_step[:, -1], long.logits)
    for t in (1, 3, 8):
        short = ReferenceEngine(digits_net, "fixed", neuron="if", time_steps=t).run_batch(x)
        np.testing.assert_array_equal(long.logits_by_step[:, t - 1], short.logits)


BLOCKS = st.lists(st.sampled_from(["conv", "stride2", "depthwise", "pool", "residual"]),
                  min_size=1, max_size=4)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), bits=st.integers(1, 8), blocks=BLOCKS,
       channels=st.sampled_from([1, 3]), encoding=st.sampled_from(["bit-serial", "graded"]))
def test_random_networks_are_exact(seed, bits, blocks, channels, encoding):
    model = random_qcfs_net(seed, bits, channels, 8, tuple(blocks))
    gen = np.random.default_rng(seed)
    mean = list(gen.uniform(0.1, 0.6, channels))
    std = list(gen.uniform(0.2, 0.5, channels))
    net = convert_model(model, (channels, 8, 8), mean, std, [str(i) for i in range(5)],
                        encoding=encoding)
    x = gen.integers(0, 256, (16, channels, 8, 8), dtype=np.uint8)
    labels = np.zeros(16, dtype=np.int64)
    report = verify_batch(model, net, x, labels)
    assert report.ok, [vars(r) for r in report.layers]
    assert report.logit_mismatches == 0
    # bin-edge float differences are allowed but must be rare on random data
    total = sum(r.ann_vs_float for r in report.layers)
    assert total <= 0.001 * sum(r.neurons for r in report.layers) * 16
    snapped = float_from_fixed(net)
    f = ReferenceEngine(snapped, "float").run_batch(x)
    q = ReferenceEngine(net, "fixed", fused=False).run_batch(x, record=True)
    for a, b in zip(f.codes[1:-1], q.codes[1:-1], strict=True):
        np.testing.assert_array_equal(a, b)
    fast = ReferenceEngine(net, "fixed")  # fused unless some accumulator may clip
    if fast.fused:
        _assert_same_run(fast.run_batch(x, record=True), q)


def test_residual_and_depthwise_are_in_the_ir():
    model = random_qcfs_net(3, 4, 1, 8, ("depthwise", "residual"))
    net = convert_model(model, (1, 8, 8), [0.5], [0.3], list("abcde"))
    assert any(len(layer.synapses) == 2 for layer in net.layers)  # residual: two synapses
    assert any(s.groups > 1 for layer in net.layers for s in layer.synapses)
    with torch.no_grad():
        assert net.output.shape == (5,)
