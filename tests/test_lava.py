"""Lava runtime: our synapse equals Lava's Dense/Conv; Lava fixed_pt spikes == integer
reference spikes and Lava floating_pt == float reference, every layer, on real data and random
networks (residual, depthwise); IF baseline; T < b; bad input; failure handling."""

import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from lava_bitsnn.core.fanout import fan_out
from lava_bitsnn.core.ir import Synapse
from lava_bitsnn.errors import BitsnnError
from lava_bitsnn.lava.procs.process import LinearSynapse
from lava_bitsnn.lava.runner import LavaRunner
from lava_bitsnn.reference import ReferenceEngine


def _run_pair(source_data, lava_conn, ours, out_shape_lava, out_shape_ours, steps, tag):
    """Drive Lava's connection and ours with the same spikes; return both output traces."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    traces = []
    for conn, data, shape in ((lava_conn, source_data[0], out_shape_lava),
                              (ours, source_data[1], out_shape_ours)):
        src = Source(data=data)
        sink = Sink(shape=shape, buffer=steps)
        src.s_out.connect(conn.s_in)
        conn.a_out.connect(sink.a_in)
        try:
            src.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag=tag))
            traces.append(sink.data.get())
        finally:
            src.stop()
    return traces


def test_bit_synapse_equals_lava_dense_fixed():
    from lava.proc.dense.process import Dense

    rng = np.random.default_rng(1)
    n_in, n_out, steps = 12, 5, 6
    for exp in (0, 2):
        m = rng.integers(-128, 128, (n_out, n_in))
        spikes = rng.integers(0, 2, (n_in, steps))
        lava_dense = Dense(weights=2 * m, weight_exp=exp - 1, num_message_bits=0)
        syn = Synapse(0, "dense", m.astype(float))
        ours = LinearSynapse(in_shape=(1, n_in), out_shape=(1, n_out), weight=m << exp,
                          fan_out=fan_out(syn, (n_in,)), kind="dense")
        a, b = _run_pair((spikes, spikes[None]), lava_dense, ours, (n_out,), (1, n_out), steps,
                         "fixed_pt")
        np.testing.assert_array_equal(a, b[0])
        # send-first: step 1 emits nothing, step t+1 emits W · s(t)
        np.testing.assert_array_equal(a[:, 0], 0)
        np.testing.assert_array_equal(a[:, 1:], (m << exp) @ spikes[:, :-1])


@pytest.mark.parametrize("groups,stride,padding", [(1, 1, 1), (1, 2, 1), (3, 1, 0)])
def test_bit_synapse_equals_lava_conv(groups, stride, padding):
    from lava.proc.conv.process import Conv

    rng = np.random.default_rng(groups + stride)
    c, h, w, out_ch, k, steps = 3, 6, 6, 6, 3, 4
    weight = rng.integers(-60, 60, (out_ch, c // groups, k, k))
    spikes = rng.integers(0, 2, (c, h, w, steps))
    syn = Synapse(0, "conv", weight.astype(float), stride, padding, groups)
    ho = (h + 2 * padding - k) // stride + 1
    lava_conv = Conv(weight=weight[:, :, ::-1, ::-1].transpose(0, 3, 2, 1), input_shape=(w, h, c),
                     padding=padding, stride=stride, groups=groups)
    ours = LinearSynapse(in_shape=(1, c, h, w), out_shape=(1, out_ch, ho, ho), weight=weight,
                      fan_out=fan_out(syn, (c, h, w)), kind="conv", stride=stride,
                      padding=padding, groups=groups)
    whc = spikes.transpose(2, 1, 0, 3)
    a, b = _run_pair((whc, spikes[None]), lava_conv, ours, (ho, ho, out_ch), (1, out_ch, ho, ho),
                     steps, "fixed_pt")
    np.testing.assert_array_equal(a.transpose(2, 1, 0, 3), b[0])
    assert np.abs(b).sum() > 0


def _assert_counts_equal(lava_counts, reference_counts) -> None:
    """Every counter of every layer: synaptic events, spikes, neuron ops, overflows."""
    for mine, theirs in zip(lava_counts[1:], reference_counts[1:], strict=True):
        assert mine.as_dict() == theirs.as_dict(), mine.name


@pytest.mark.parametrize("precision,neuron,time_steps,batch", [
    ("fixed", "bit-serial", None, 4), ("float", "bit-serial", None, 3),
    ("fixed", "bit-serial", 2, 3), ("fixed", "if", 5, 3), ("float", "if", 5, 2)])
def test_lava_counts_equal_the_reference(digits_net, digits_data, precision, neuron,
                                         time_steps, batch):
    """The op counts behind the energy report, Lava vs the step-wise reference (codes and
    logits against oracles: test_matrix.py)."""
    x = digits_data.test.images[:6]
    result = LavaRunner(digits_net, precision, neuron, time_steps, batch_size=batch
                        ).run_dataset(x)
    ref = ReferenceEngine(digits_net, precision, neuron, time_steps, fused=False).run_batch(x)
    _assert_counts_equal(result.counts, ref.counts)
    np.testing.assert_allclose(result.logits, ref.logits, rtol=0, atol=1e-9)


def test_network_process_between_lavas_own_ring_buffers(digits_net, digits_data):
    """BitSerialNetwork composes like lava-dl's netx Network: Lava's io.source.RingBuffer →
    the network → Lava's io.sink.RingBuffer, logits equal to the reference engine's, and the
    layer processes' Vars readable after the run."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    from lava_bitsnn.lava.network import BitSerialNetwork

    x = digits_data.test.images[:5]
    net = BitSerialNetwork(network=digits_net, precision="fixed", batch_size=2, periods=3,
                           record=True)
    frames = net.input_frames(x)
    steps = frames.shape[-1]
    assert steps == net.schedule.total_steps(5, 2)
    source, sink = Source(data=frames), Sink(shape=net.out.shape, buffer=steps)
    source.s_out.connect(net.inp)
    net.out.connect(sink.a_in)
    try:
        net.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        data = sink.data.get()
        spikes = net.layers[1].neurons.spikes.get()
        fifo = net.layers[-1].synapses[0].fifo.get()
        codes = net.layers[2].neurons.codes.get()  # recorded: one row per batch
    finally:
        net.stop()
    ref = ReferenceEngine(digits_net, "fixed").run_batch(x, record=True)
    np.testing.assert_array_equal(net.logits(data, 5), ref.logits)
    np.testing.assert_array_equal(codes.reshape(-1, *digits_net.layers[2].shape)[:5],
                                  ref.codes[2])
    # one counter row per batch, one column per slot; the 6th slot holds a blank image
    assert spikes.reshape(-1)[:5].sum() == ref.counts[1].spikes_out
    assert fifo.shape[0] == 1 + net.schedule.layers[-1].delays[0]
    # between logit steps the output port sends zeros
    quiet = np.ones(steps, dtype=bool)
    quiet[[net.schedule.logit_step(n) - 1 for n in range(3)]] = False
    assert not data[..., quiet].any()


def test_parameters_built_for_fixed_refuse_the_floating_pt_models(digits_net, digits_data):
    """A network built with integer weights but run under the floating_pt tag would compute
    nonsense: its models refuse, and the run fails with one clear error."""
    runner = LavaRunner(digits_net, "float")
    fixed = LavaRunner(digits_net, "fixed")
    runner.build = fixed.build  # fixed-point parameters, while the run selects floating_pt
    with pytest.raises(BitsnnError, match="built for fixed precision"):
        runner.run_dataset(digits_data.test.images[:1])
    assert not [c for c in multiprocessing.active_children() if c.is_alive()]


def test_lava_package_imports_no_torch():
    """Lava forks its processes, and torch in a forked child can hang."""
    import subprocess
    import sys

    code = ("import sys, lava_bitsnn.lava.runner, lava_bitsnn.lava.network, "
            "lava_bitsnn.lava.procs.models, lava_bitsnn.netx, lava_bitsnn.core.schedule; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_shipped_mnist_model_on_lava_equals_the_file_oracle():
    """The shipped MNIST network on real MNIST test images: Lava fixed point == the integer
    QANN computed from the file alone, every layer, and the accuracy is the model's."""
    from lava_bitsnn.ann.data import load_dataset
    from lava_bitsnn.netx import read_network
    from tests.conftest import shared_dataset_dir
    from tests.oracles import file_qann

    path = Path(__file__).resolve().parents[1] / "netx_models" / "mnist-mnist-cnn.net"
    test = load_dataset("mnist", shared_dataset_dir("mnist")).test
    net = read_network(path)
    x = test.images[:8]
    result = LavaRunner(net, "fixed", batch_size=4).run_dataset(x, record=True)
    expected, logits = file_qann(path, x)
    for i in range(1, len(net.layers) - 1):
        np.testing.assert_array_equal(result.codes[i], expected[i - 1], err_msg=net.layers[i].name)
    np.testing.assert_array_equal(result.logits, logits)
    _, logits = file_qann(path, test.images[:200])
    assert (logits.argmax(1) == test.labels[:200]).mean() > 0.97


def test_overflow_is_counted_not_silent(digits_net, digits_data):
    import copy

    net = copy.deepcopy(digits_net)
    net.layers[1].bias_int = net.layers[1].bias_int + (1 << 23)  # forces saturation
    x = digits_data.test.images[:2]
    segments = _shared_memory_segments()
    result = LavaRunner(net, "fixed").run_dataset(x)
    assert _shared_memory_segments() <= segments
    ref = ReferenceEngine(net, "fixed", fused=False).run_batch(x)
    assert result.counts[1].overflows > 0
    assert result.counts[1].overflows == ref.counts[1].overflows


def test_bad_input(digits_net, tmp_path):
    with pytest.raises(BitsnnError, match="does not match"):
        LavaRunner(digits_net).run_dataset(np.zeros((2, 1, 28, 28), dtype=np.uint8))
    with pytest.raises(BitsnnError, match="time steps"):
        LavaRunner(digits_net, time_steps=9)


def _shared_memory_segments() -> set[str]:
    shm = Path("/dev/shm")
    if not shm.is_dir():
        pytest.skip("no /dev/shm to list shared memory segments in")
    return {p.name for p in shm.iterdir()}


def test_failed_run_stops_and_leaves_no_children(digits_net, digits_data):
    """A ProcessModel failing mid-run: one clear error, every child reaped and every shared
    memory segment of the run released (none left for the resource tracker to warn about)."""
    import copy

    net = copy.deepcopy(digits_net)
    syn = net.layers[2].synapses[0]
    syn.weight_int = syn.weight_int[:, :5]  # wrong shape: fails inside the Lava process
    segments = _shared_memory_segments()
    with pytest.raises(BitsnnError, match="Lava run failed: in 5/syn0 at step"):
        LavaRunner(net, "fixed").run_dataset(digits_data.test.images[:2])
    assert not [c for c in multiprocessing.active_children() if c.is_alive()]
    assert _shared_memory_segments() <= segments


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM", "SIGHUP", "SIGKILL"])
def test_signals_leave_no_process_and_no_shared_memory(digits_net, tmp_path, signum):
    """Ctrl-C (SIGINT to the process group), SIGTERM (what timeout and schedulers send) and
    SIGHUP (a closed terminal) stop the run cleanly with one line and exit 128 + signal;
    SIGKILL of the parent alone leaves it to the parent-death signal and the watchdog. Either
    way, within seconds no process of the run is left and no shared-memory segment of it
    stays in /dev/shm."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from lava_bitsnn.netx import write_network

    net = tmp_path / "d.net"
    write_network(digits_net, net)
    segments = _shared_memory_segments()
    # IF at T=32, one sample per batch: ~11,500 steps, far longer than the test
    proc = subprocess.Popen([sys.executable, "-m", "lava_bitsnn.cli.run", str(net), "--engine",
                             "lava", "--dataset", "digits", "--batch-size", "1", "--neuron",
                             "if", "--time-steps", "32", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)

    def session() -> list[str]:
        return subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True,
                              text=True).stdout.split()

    deadline = time.monotonic() + 120
    while len(session()) < 10 and time.monotonic() < deadline:  # Lava's children are up
        time.sleep(0.5)
    time.sleep(2)  # a few hundred steps
    assert proc.poll() is None, proc.communicate()
    sig = getattr(signal, signum)
    if signum == "SIGINT":
        os.killpg(proc.pid, sig)
    else:
        os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=90)
    if signum == "SIGKILL":
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 128 + sig, err
        last = err.strip().splitlines()[-1]
        assert "Traceback" not in err
        assert last == ("bitsnn-run: interrupted" if signum == "SIGINT" else
                        f"bitsnn-run: stopped by {signum}")
    for _ in range(20):  # helpers such as multiprocessing's resource tracker exit after it
        leftover = session()
        new_segments = _shared_memory_segments() - segments
        if not leftover and not new_segments:
            break
        time.sleep(0.5)
    assert leftover == [] and new_segments == set()
