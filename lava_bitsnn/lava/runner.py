"""Build and run a netx network as connected Lava processes under ``Loihi2SimCfg``.

``LavaRunner(path, precision="fixed").run_dataset(images)`` streams batches of ``batch_size``
samples through the pipeline — one batch every ``period = max(input steps, T)`` steps in steady
state — and always stops the runtime, also on errors and Ctrl-C (hung children are killed).

Schedule (each synapse adds one step): the input sends batch n at steps ``1 + n·period …``;
a layer's accumulate window starts one step after the latest of its sources' first spikes;
shortcuts from earlier sources get an extra synapse delay so every input lands in the same
window. Bit-serial neurons fire after accumulating; IF neurons fire while integrating.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lava_bitsnn.core.counts import NEURON_OPS, LayerCounts
from lava_bitsnn.core.fanout import fan_out
from lava_bitsnn.core.ir import INPUT_BITS, Layer
from lava_bitsnn.core.ir import Network as IRNetwork
from lava_bitsnn.errors import BitsnnError
from lava_bitsnn.lava.procs.process import (
    BitSerialNeuron,
    BitSynapse,
    IFNeuron,
    ImageSource,
    OutputAccumulator,
)

STOP_TIMEOUT_S = 10.0
EXIT_GRACE_S = 5.0


@dataclass
class LavaResult:
    logits: np.ndarray
    codes: list[np.ndarray | None]  # per layer (recorded runs): codes / IF spike counts
    counts: list[LayerCounts]
    steps: int  # simulated time steps
    latency: int  # steps from a batch's first input to its logits
    period: int  # steps between consecutive batches
    wall_seconds: float
    extra: dict = field(default_factory=dict)

    @property
    def predictions(self) -> np.ndarray:
        return self.logits.argmax(axis=1)


@dataclass
class _Plan:
    start: list[int]  # first step of each layer's window (input: 1)
    first_spike: list[int]
    acc_steps: list[int]
    period: int


class LavaRunner:
    """A netx network on Lava's CPU simulator (``precision``: fixed | float).

    ``pipelined=False`` admits the next batch only after the previous one's logits (sequential
    processing, for comparison with the default streaming schedule)."""

    def __init__(self, network: str | Path | IRNetwork, precision: str = "fixed",
                 neuron: str = "bit-serial", time_steps: int | None = None,
                 batch_size: int = 1, pipelined: bool = True) -> None:
        if precision not in ("fixed", "float"):
            raise BitsnnError("precision must be fixed or float")
        if neuron not in ("bit-serial", "if"):
            raise BitsnnError("neuron must be bit-serial or if")
        if isinstance(network, IRNetwork):
            self.net = network
        else:
            from lava_bitsnn.netx import read_network

            self.net = read_network(network)
        self.precision = precision
        self.neuron = neuron
        self.time_steps = time_steps or self.net.time_steps
        if neuron == "bit-serial" and not 1 <= self.time_steps <= self.net.bits:
            raise BitsnnError(f"bit-serial time steps must be 1..{self.net.bits}")
        if self.time_steps < 1 or batch_size < 1:
            raise BitsnnError("time steps and batch size must be at least 1")
        self.batch_size = batch_size
        self.plan = self._plan()
        if not pipelined:  # one batch in flight at a time: the next enters after the logits
            p = self.plan
            p.period = p.start[-1] + p.acc_steps[-1] - 1
        self._fan_outs = [[fan_out(s, self.net.layers[s.source].shape) for s in layer.synapses]
                          for layer in self.net.layers]

    # ---- schedule ------------------------------------------------------------------------
    def _input_steps(self) -> int:
        if self.neuron == "if":
            return self.time_steps
        return INPUT_BITS if self.net.encoding == "bit-serial" else 1

    def _plan(self) -> _Plan:
        a_in = self._input_steps()
        period = self.time_steps if self.neuron == "if" else max(a_in, self.time_steps)
        start, first, acc = [1], [1], [a_in]
        for layer in self.net.layers[1:]:
            s = max(first[syn.source] + 1 for syn in layer.synapses)
            from_input = self.net.layers[layer.synapses[0].source].kind == "input"
            steps = a_in if (from_input and self.neuron == "bit-serial") else self.time_steps
            start.append(s)
            acc.append(steps)
            first.append(s if self.neuron == "if" else s + steps)
        return _Plan(start, first, acc, period)

    def _source_fire_steps(self, idx: int) -> int:
        """How many steps layer ``idx`` sends spikes for, per batch."""
        return self._input_steps() if idx == 0 else self.time_steps

    # ---- build ---------------------------------------------------------------------------
    def _synapse_weight(self, layer: Layer, k: int) -> np.ndarray:
        syn = layer.synapses[k]
        w = syn.weight_int if self.precision == "fixed" else syn.weight
        src = self.net.layers[syn.source]
        if self.neuron == "if" and src.kind != "input":
            w = w * src.max_code  # an IF spike carries λ_src = K·Δ_src
        return np.asarray(w)

    def _neuron(self, idx: int, layer: Layer, periods: int, record: bool):
        fixed = self.precision == "fixed"
        bias = layer.bias_full(fixed)
        unit = layer.threshold_unit if fixed else layer.step
        shape = (self.batch_size, *layer.shape)
        p = self.plan
        src = self.net.layers[layer.synapses[0].source]
        # the source's code is sent over src_bits steps MSB-first (a graded input: 1 step)
        src_bits = src.bits if src.kind != "input" else self._input_steps()
        if layer.kind == "output":
            return OutputAccumulator(shape=shape, bias=bias, src_bits=src_bits,
                                     acc_steps=p.acc_steps[idx],
                                     shifted=self.neuron == "bit-serial", start=p.start[idx],
                                     period=p.period, periods=periods, name=layer.name)
        if self.neuron == "if":
            return IFNeuron(shape=shape, bias=bias - unit / 2 if not fixed else bias - unit // 2,
                            threshold=unit * layer.max_code, steps=self.time_steps,
                            start=p.start[idx], period=p.period, periods=periods,
                            record=record, name=layer.name)
        return BitSerialNeuron(shape=shape, bias=bias, unit=unit, bits=layer.bits,
                               src_bits=src_bits, acc_steps=p.acc_steps[idx],
                               fire_steps=self.time_steps, start=p.start[idx],
                               period=p.period, periods=periods, record=record,
                               name=layer.name)

    def build(self, images: np.ndarray, record: bool = False):
        """(source, synapses per layer, neurons) for uint8 images (N, C, H, W)."""
        b = self.batch_size
        periods = -(-len(images) // b)
        padded = np.zeros((periods * b, *images.shape[1:]), dtype=np.int64)
        padded[:len(images)] = images
        encoding = "graded" if self.neuron == "if" else self.net.encoding
        source = ImageSource(images=padded.reshape(periods, b, *images.shape[1:]),
                             encoding=encoding, period=self.plan.period,
                             steps=self._input_steps())
        outs = [source.s_out]
        neurons: list = [source]
        synapses: list[list[BitSynapse]] = [[]]
        for idx, layer in enumerate(self.net.layers[1:], start=1):
            proc = self._neuron(idx, layer, periods, record)
            syns = []
            for k, syn in enumerate(layer.synapses):
                src = self.net.layers[syn.source]
                delay = self.plan.start[idx] - (self.plan.first_spike[syn.source] + 1)
                sp = BitSynapse(in_shape=(b, *src.shape), out_shape=(b, *layer.shape),
                                weight=self._synapse_weight(layer, k),
                                fan_out=self._fan_outs[idx][k], kind=syn.kind,
                                stride=syn.stride, padding=syn.padding, groups=syn.groups,
                                pool=syn.pool, flatten=syn.flatten, delay=delay,
                                graded=src.kind == "input" and encoding == "graded",
                                src_start=self.plan.first_spike[syn.source],
                                src_steps=self._source_fire_steps(syn.source),
                                period=self.plan.period, periods=periods,
                                name=f"{layer.name}/syn{k}")
                outs[syn.source].connect(sp.s_in)
                sp.a_out.connect(proc.a_in)
                syns.append(sp)
            synapses.append(syns)
            neurons.append(proc)
            outs.append(getattr(proc, "s_out", None))
        return source, synapses, neurons

    def total_steps(self, samples: int) -> int:
        periods = -(-samples // self.batch_size)
        p = self.plan
        return p.start[-1] + p.acc_steps[-1] - 1 + (periods - 1) * p.period

    # ---- run -----------------------------------------------------------------------------
    def run_dataset(self, images: np.ndarray, record: bool = False, progress: bool = False
                    ) -> LavaResult:
        """Run uint8 images (N, C, H, W) through the Lava network; always stops the runtime."""
        from lava.magma.core.run_conditions import RunSteps
        from lava.magma.core.run_configs import Loihi2SimCfg
        from tqdm import tqdm

        images = np.asarray(images)
        if images.ndim != 4 or tuple(images.shape[1:]) != tuple(self.net.input_shape):
            raise BitsnnError(f"input shape {tuple(images.shape[1:])} does not match the "
                              f"network's {tuple(self.net.input_shape)}")
        if len(images) == 0:
            raise BitsnnError("no images to run")
        before = {c.pid for c in multiprocessing.active_children()}
        source, synapses, neurons = self.build(images, record)
        error_log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
        error_log.close()
        for proc in [*neurons, *(sp for group in synapses for sp in group)]:
            proc.proc_params["error_log"] = error_log.name
        total = self.total_steps(len(images))
        cfg = Loihi2SimCfg(select_tag="fixed_pt" if self.precision == "fixed" else "floating_pt")
        chunk = max(self.plan.period * 4, 32)
        bar = tqdm(total=len(images), unit="img", disable=not progress, leave=False)
        t0 = time.perf_counter()
        started = False
        try:
            with _DeferredInterrupt() as interrupt:
                done = 0
                while done < total:
                    n = min(chunk, total - done)
                    source.run(condition=RunSteps(num_steps=n), run_cfg=cfg)
                    started = True
                    done += n
                    if interrupt.requested:  # the runtime is paused: stop cleanly
                        raise KeyboardInterrupt
                    bar.n = min(len(images), max(0, (done - self.plan.start[-1]) //
                                                    self.plan.period * self.batch_size))
                    bar.refresh()
                result = self._collect(images, synapses, neurons, record, total)
                if interrupt.requested:
                    raise KeyboardInterrupt
        except (KeyboardInterrupt, BitsnnError):
            _shutdown(source, started, before)
            raise
        except Exception as exc:
            _shutdown(source, started, before)
            raise BitsnnError(f"the Lava run failed: {_child_error(error_log.name) or exc}"
                              ) from None
        else:
            _shutdown(source, started, before)
        finally:
            bar.close()
            Path(error_log.name).unlink(missing_ok=True)
        result.wall_seconds = time.perf_counter() - t0
        return result

    def _collect(self, images, synapses, neurons, record: bool, total: int) -> LavaResult:
        n = len(images)
        fixed = self.precision == "fixed"
        out_layer = self.net.output
        logits = neurons[-1].logits.get().reshape(-1, *out_layer.shape)[:n].astype(np.float64)
        if fixed:
            logits = logits / out_layer.threshold_unit
        if self.neuron == "if":
            logits = logits / self.time_steps
        def real(var) -> int:
            """Sum of a (batch index, slot) counter over the real (non-padding) samples."""
            return int(var.get().reshape(-1)[:n].sum())

        codes: list[np.ndarray | None] = [images if record else None]
        counts = [LayerCounts(layer.name, layer.size) for layer in self.net.layers]
        for idx, layer in enumerate(self.net.layers[1:], start=1):
            c = counts[idx]
            c.samples = n
            c.accumulate_steps = self.plan.acc_steps[idx]
            for sp in synapses[idx]:
                ops = int(real(sp.synops))
                if sp.proc_params["graded"]:
                    c.input_macs += ops
                else:
                    c.synops += ops
                c.spikes_in += int(real(sp.spikes_in))
            c.connections = int(sum(f.sum() for f in self._fan_outs[idx]))
            c.overflows = int(neurons[idx].overflows.get()[0])
            ops = neurons[idx].ops.get().reshape(-1, len(NEURON_OPS))[:n].sum(axis=0)
            for op, value in zip(NEURON_OPS, ops, strict=True):
                setattr(c, op, int(value))
            if layer.kind == "output":
                codes.append(logits if record else None)
                continue
            c.fire_steps = self.time_steps
            c.spikes_out = int(real(neurons[idx].spikes))
            codes.append(neurons[idx].codes.get().reshape(-1, *layer.shape)[:n]
                         .astype(np.int64) if record else None)
        p = self.plan
        return LavaResult(logits, codes, counts, total, p.start[-1] + p.acc_steps[-1] - 1,
                          p.period, 0.0)


class _DeferredInterrupt:
    """While active (main thread only), Ctrl-C sets ``requested`` instead of raising: Lava's
    blocking wait for a run to finish swallows KeyboardInterrupt, and a runtime interrupted
    mid-step cannot be stopped. The run loop checks the flag between chunks of steps."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> _DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _child_error(path: str) -> str:
    """The first failing process and the last line of its traceback, from the error log."""
    text = Path(path).read_text() if Path(path).exists() else ""
    lines = [line for line in text.splitlines() if line.strip()]
    return f"{lines[0].rstrip(':')}: {lines[-1]}" if lines else ""


def _shutdown(source, started: bool, before: set[int]) -> None:
    """Stop the runtime and make sure the children it started (those not in ``before``) are
    gone. After a failure inside a ProcessModel, Lava has already joined every actor, and its
    ``stop()`` would wait forever for their answers: then only the shared memory is released.
    If ``stop()`` hangs anyway, the children are killed at once; helpers a finished ``stop()``
    leaves behind get a few seconds to exit before they are killed too. Returns only when
    every one has been reaped."""
    from lava.magma.runtime.message_infrastructure.multiprocessing import SystemProcess

    if not started and getattr(source, "runtime", None) is None:
        return
    actors_alive = any(isinstance(c, SystemProcess) and c.pid not in before
                       for c in multiprocessing.active_children())
    stopper = threading.Thread(target=_quiet_stop, args=(source, actors_alive), daemon=True)
    stopper.start()
    stopper.join(STOP_TIMEOUT_S)
    ours = [c for c in multiprocessing.active_children() if c.pid not in before]
    if _reap(ours, 0.0 if stopper.is_alive() else EXIT_GRACE_S):
        return
    for child in ours:
        if child.is_alive():
            child.kill()
    _reap(ours, EXIT_GRACE_S)


def _reap(children: list, timeout: float) -> bool:
    """Wait until every child has exited (or ``timeout`` s passed); True if all are gone.
    Lava's SystemProcess.join takes no timeout, so this waits on the sentinels instead."""
    deadline = time.monotonic() + timeout
    while alive := [c for c in children if c.is_alive()]:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        multiprocessing.connection.wait([c.sentinel for c in alive], timeout=left)
    return True


def _quiet_stop(source, actors_alive: bool) -> None:
    try:
        if actors_alive:
            source.stop()
        else:  # lava-nc 0.10: what Runtime.stop() does last, minus the wait on dead actors
            source.runtime._messaging_infrastructure.stop()
    except Exception:  # noqa: BLE001 - a broken runtime may raise anything on stop
        pass
