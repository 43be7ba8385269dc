"""Run a netx network on Lava's CPU simulator: the convenience driver on top of
``BitSerialNetwork``.

``LavaRunner(path, precision="fixed").run_dataset(images)`` feeds the images from a preloaded
``ImageSource`` into a ``BitSerialNetwork`` process, streams batches of ``batch_size`` samples
(one batch every ``schedule.period`` steps in steady state), reads logits and op counts from the
layer processes' Vars, and always stops the runtime: also on errors, Ctrl-C, SIGTERM and
SIGHUP (hung children are killed), and, through ``lava_bitsnn.watchdog``, when this process
itself dies.
"""

# No ``from __future__ import annotations``: Lava's compiler executes this file under another
# module name when it looks for BitSerialNetwork's models, and a dataclass with string
# annotations cannot be built there.
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lava_bitsnn import watchdog
from lava_bitsnn.core import dynamics as dyn
from lava_bitsnn.core.counts import NEURON_OPS, LayerCounts
from lava_bitsnn.core.ir import Network
from lava_bitsnn.core.schedule import batch_count, build_schedule
from lava_bitsnn.errors import BitsnnError, Terminated
from lava_bitsnn.lava.network import BitSerialNetwork
from lava_bitsnn.lava.procs.process import ImageSource

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

    @property
    def predictions(self) -> np.ndarray:
        return self.logits.argmax(axis=1)


class LavaRunner:
    """A netx network on Lava's CPU simulator (``precision``: fixed | float).

    ``pipelined=False`` admits the next batch only after the previous one's logits (sequential
    processing, for comparison with the default streaming schedule)."""

    def __init__(self, network: str | Path | Network, precision: str = "fixed",
                 neuron: str = "bit-serial", time_steps: int | None = None,
                 batch_size: int = 1, pipelined: bool = True) -> None:
        if precision not in ("fixed", "float"):
            raise BitsnnError("precision must be fixed or float")
        if isinstance(network, Network):
            self.net = network
        else:
            from lava_bitsnn.netx import read_network

            self.net = read_network(network)
        if batch_size < 1:
            raise BitsnnError("batch size must be at least 1")
        try:
            if precision == "float":
                self.net.require_float_weights()
            self.schedule = build_schedule(self.net, neuron, time_steps, pipelined)
        except ValueError as exc:
            raise BitsnnError(str(exc)) from None
        self.precision = precision
        self.neuron = neuron
        self.time_steps = self.schedule.time_steps
        self._time_steps_asked = time_steps
        self.batch_size = batch_size
        self.pipelined = pipelined

    def build(self, images: np.ndarray, record: bool = False
              ) -> tuple[ImageSource, BitSerialNetwork]:
        """The image source and the network process, connected, for uint8 images."""
        b = self.batch_size
        periods = batch_count(len(images), b)
        padded = np.zeros((periods * b, *images.shape[1:]), dtype=np.int64)
        padded[:len(images)] = images
        timing = self.schedule.layers[0]
        source = ImageSource(images=padded.reshape(periods, b, *images.shape[1:]),
                             encoding="graded" if timing.graded else "bit-serial",
                             period=self.schedule.period, steps=timing.send_steps)
        net = BitSerialNetwork(network=self.net, precision=self.precision, neuron=self.neuron,
                               time_steps=self._time_steps_asked, batch_size=b, periods=periods,
                               record=record, pipelined=self.pipelined)
        source.s_out.connect(net.inp)
        return source, net

    def total_steps(self, samples: int) -> int:
        return self.schedule.total_steps(samples, self.batch_size)

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
        source, net = self.build(images, record)
        error_log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
        error_log.close()
        for proc in _processes(net):
            proc.proc_params["error_log"] = error_log.name
        codes_dir = Path(tempfile.mkdtemp(prefix="bitsnn-codes-")) if record else None
        if codes_dir:  # the recorded codes come back as files (Var.get() is element-wise)
            for idx, layer in enumerate(net.layers[1:-1], start=1):
                layer.neurons.proc_params["codes_file"] = str(codes_dir / f"{idx}.npy")
        total = self.total_steps(len(images))
        cfg = Loihi2SimCfg(select_tag="fixed_pt" if self.precision == "fixed" else "floating_pt")
        chunk = max(self.schedule.period * 4, 32)
        bar = tqdm(total=len(images), unit="img", disable=not progress, leave=False)
        guard = watchdog.Watchdog()  # starts while Lava compiles
        t0 = time.perf_counter()
        started = False
        try:
            with _DeferredSignals() as signals:
                segments = watchdog.shm_segments()
                watchdog.arm(True)
                done = 0
                while done < total:
                    n = min(chunk, total - done)
                    source.run(condition=RunSteps(num_steps=n), run_cfg=cfg)
                    if not started:  # the runtime is up: tell the watchdog what it made
                        watchdog.arm(False)
                        guard.tell([c.pid for c in multiprocessing.active_children()
                                    if c.pid not in before],
                                   watchdog.shm_segments() - segments)
                        started = True
                    done += n
                    signals.raise_if_requested()  # the runtime is paused: stop cleanly
                    bar.n = min(len(images), max(0, (done - self.schedule.latency) //
                                                    self.schedule.period * self.batch_size
                                                    + self.batch_size))
                    bar.refresh()
                result = self._collect(images, net, codes_dir, total)
                signals.raise_if_requested()
        except (KeyboardInterrupt, Terminated, BitsnnError):
            _shutdown(source, started, before)
            raise
        except Exception as exc:
            _shutdown(source, started, before)
            raise BitsnnError(f"the Lava run failed: {_child_error(error_log.name) or exc}"
                              ) from None
        else:
            _shutdown(source, started, before)
        finally:
            watchdog.arm(False)
            guard.close()
            bar.close()
            Path(error_log.name).unlink(missing_ok=True)
            if codes_dir:
                shutil.rmtree(codes_dir, ignore_errors=True)
        result.wall_seconds = time.perf_counter() - t0
        return result

    def _collect(self, images, net: BitSerialNetwork, codes_dir: Path | None, total: int
                 ) -> LavaResult:
        n = len(images)
        record = codes_dir is not None
        out_layer = self.net.output
        out = net.layers[-1].neurons
        steps_averaged = self.schedule.layers[0].send_steps if self.neuron == "if" else 1
        logits = dyn.logits(out.logits.get().reshape(-1, *out_layer.shape)[:n],
                            out_layer.threshold_unit, self.precision == "fixed", steps_averaged)

        def real(var) -> int:
            """Sum of a (batch index, slot) counter over the real (non-padding) samples."""
            return int(var.get().reshape(-1)[:n].sum())

        codes: list[np.ndarray | None] = [images if record else None]
        counts = [LayerCounts(layer.name, layer.size) for layer in self.net.layers]
        for idx, layer in enumerate(self.net.layers[1:], start=1):
            c, procs, timing = counts[idx], net.layers[idx], self.schedule.layers[idx]
            c.samples = n
            c.accumulate_steps = timing.acc_steps
            for sp in procs.synapses:
                ops = real(sp.synops)
                if sp.proc_params["graded"]:
                    c.input_macs += ops
                else:
                    c.synops += ops
                c.spikes_in += real(sp.spikes_in)
            c.connections = int(sum(f.sum() for f in net.fan_outs[idx]))
            c.overflows = int(procs.neurons.overflows.get()[0])
            ops = procs.neurons.ops.get().reshape(-1, len(NEURON_OPS))[:n].sum(axis=0)
            for op, value in zip(NEURON_OPS, ops, strict=True):
                setattr(c, op, int(value))
            if layer.kind == "output":
                codes.append(logits if record else None)
                continue
            c.fire_steps = timing.send_steps
            c.spikes_out = real(procs.neurons.spikes)
            codes.append(np.load(codes_dir / f"{idx}.npy").reshape(-1, *layer.shape)[:n]
                         .astype(np.int64) if record else None)
        return LavaResult(logits, codes, counts, total, self.schedule.latency,
                          self.schedule.period, 0.0)


def _processes(net: BitSerialNetwork) -> list:
    return [p for layer in net.layers[1:] for p in (*layer.synapses, layer.neurons)]


class _DeferredSignals:
    """While active (main thread only), SIGINT, SIGTERM and SIGHUP set a flag instead of
    acting: Lava's blocking wait for a run to finish swallows KeyboardInterrupt, and a runtime
    interrupted mid-step cannot be stopped. The run loop checks the flag between chunks of
    steps and then stops the runtime before it raises. A second signal (the run is stuck)
    exits at once; the parent-death signal and the watchdog then remove the rest."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.requested: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "_DeferredSignals":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:  # a second signal: a step hangs; end now, the watchdog cleans up
            print(f"stopped by {signal.Signals(signum).name} (forced)", file=sys.stderr)
            os._exit(128 + signum)
        self.requested = signum

    def raise_if_requested(self) -> None:
        if self.requested == signal.SIGINT:
            raise KeyboardInterrupt
        if self.requested:
            raise Terminated(self.requested)

    def __exit__(self, *exc) -> None:
        for s, previous in self._previous.items():
            signal.signal(s, previous)


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
