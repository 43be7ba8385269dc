"""netx HDF5: lossless round trip, validation errors, lava-dl compatibility of CUBA files."""

import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

from lava_bitsnn.convert.model import convert_model
from lava_bitsnn.errors import BitsnnError
from lava_bitsnn.netx import read_network, write_lava_dl_cuba, write_network
from tests.random_nets import random_qcfs_net


def _assert_same(a, b):
    assert (a.bits, a.time_steps, a.encoding, a.class_names, a.normalisation, a.meta) == \
        (b.bits, b.time_steps, b.encoding, b.class_names, b.normalisation, b.meta)
    assert len(a.layers) == len(b.layers)
    for x, y in zip(a.layers, b.layers, strict=True):
        assert (x.name, x.kind, x.shape, x.bits, x.step, x.threshold_unit, x.acc_bound) == \
            (y.name, y.kind, y.shape, y.bits, y.step, y.threshold_unit, y.acc_bound)
        if x.kind == "input":
            continue
        np.testing.assert_array_equal(x.bias, y.bias)
        np.testing.assert_array_equal(x.bias_int, y.bias_int)
        assert len(x.synapses) == len(y.synapses)
        for s, t in zip(x.synapses, y.synapses, strict=True):
            assert (s.source, s.kind, s.stride, s.padding, s.groups, s.pool, s.flatten,
                    s.weight_exp, s.pool_step, s.pool_padding, s.pool_kind) == \
                (t.source, t.kind, t.stride, t.padding, t.groups, t.pool, t.flatten,
                 t.weight_exp, t.pool_step, t.pool_padding, t.pool_kind)
            assert (s.pool_scale is None) == (t.pool_scale is None)
            if s.pool_scale is not None:
                np.testing.assert_array_equal(s.pool_scale, t.pool_scale)
            np.testing.assert_array_equal(s.weight, t.weight)
            np.testing.assert_array_equal(s.weight_int, t.weight_int)


def test_round_trip_is_lossless(digits_net, tmp_path):
    path = tmp_path / "d.net"
    write_network(digits_net, path)
    _assert_same(digits_net, read_network(path))


def test_round_trip_with_skip_edges_and_depthwise(tmp_path):
    model = random_qcfs_net(5, 3, 3, 8, ("depthwise", "residual", "pool"))
    net = convert_model(model, (3, 8, 8), [0.4] * 3, [0.3] * 3, list("abcde"), encoding="graded")
    write_network(net, tmp_path / "r.net")
    back = read_network(tmp_path / "r.net")
    _assert_same(net, back)
    assert any(len(layer.synapses) == 2 for layer in back.layers)


def _pooled_net():
    """Pools of every kind the IR has: a 2×2 average pool that does not tile its 7×7 map, a
    padded 3×3 pool without the padding in the divisor, one with a divisor_override, and a
    padded stride-2 max-pool."""
    from lava_bitsnn.ann.qcfs import QCFS

    torch.manual_seed(3)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3, padding=1), QCFS(3, 1.0), torch.nn.AvgPool2d(2),
        torch.nn.Conv2d(3, 3, 3, padding=1), QCFS(3, 0.5),
        torch.nn.AvgPool2d(3, 1, 1, count_include_pad=False),
        torch.nn.Conv2d(3, 3, 3, padding=1), QCFS(3, 0.5),
        torch.nn.AvgPool2d(3, 2, 1, divisor_override=5),
        torch.nn.Conv2d(3, 4, 3, padding=1), QCFS(3, 0.5), torch.nn.MaxPool2d(3, 2, 1),
        torch.nn.Flatten(), torch.nn.Linear(16, 3)).eval()
    with torch.no_grad():
        for m in model:
            if isinstance(m, torch.nn.Conv2d):
                m.bias.fill_(0.3)
    return model, convert_model(model, (1, 14, 14), [0.4], [0.3], list("abc"))


def test_round_trip_of_every_pool_kind_against_the_oracle(tmp_path):
    from lava_bitsnn.reference import ReferenceEngine
    from tests.oracles import file_qann

    _, net = _pooled_net()
    pooled = [(s.pool, s.pool_step, s.pool_padding, s.pool_scale is not None, s.pool_kind)
              for layer in net.layers for s in layer.synapses if s.pooled]
    assert pooled == [(2, 2, 0, False, "sum"), (3, 1, 1, True, "sum"), (3, 2, 1, False, "sum"),
                      (3, 2, 1, False, "max")]
    path = tmp_path / "p.net"
    write_network(net, path)
    with h5py.File(path) as f:
        assert int(f.attrs["format_version"]) == 3
    back = read_network(path)
    _assert_same(net, back)
    x = np.random.default_rng(0).integers(0, 256, (6, 1, 14, 14), dtype=np.uint8)
    codes, logits = file_qann(path, x)
    assert all(c.any() for c in codes)
    for fused in (True, False):
        result = ReferenceEngine(back, "fixed", fused=fused).run_batch(x)
        np.testing.assert_array_equal(result.logits, logits)


def _as_version(f, version):
    """Relabel a file as an older version, writing out the keys that version requires."""
    f.attrs["format_version"] = version
    for i in range(1, len(f["layer"])):
        layer = f["layer"][str(i)]
        for group in [layer, *layer.get("skip", {}).values()]:
            for key, default in (("pool", 1), ("flatten", 0)):
                if key not in group:
                    group[key] = default


def _pooled_file(tmp_path):
    path = tmp_path / "pooled.net"
    write_network(_pooled_net()[1], path)
    return path


@pytest.mark.parametrize("mutation,message", [
    (lambda f: _replace(f["layer/5"], "pool_kind", "median"), "'pool_kind' must be one of"),
    (lambda f: _replace(f["layer/3"], "pool_padding", 2), "exceeds half the window"),
    (lambda f: _replace(f["layer/3"], "pool_scale", np.ones((3, 3), dtype=np.int64)),
     "does not fit the pooled map"),
    (lambda f: _replace(f["layer/3"], "pool_scale", np.zeros((7, 7), dtype=np.int64)),
     "integers >= 1"),
    (lambda f: _replace(f["layer/3"], "pool_scale", np.ones((0, 0), dtype=np.int64)),
     "integers >= 1"),
    (lambda f: f["layer/5"].__setitem__("pool_scale", np.ones((2, 2), dtype=np.int64)),
     "max without pool_scale"),
    (lambda f: _as_version(f, 1), "version 2 in a version 1 file"),
    (lambda f: f.attrs.__setitem__("format_version", 2), "missing required key 'pool'"),
    (lambda f: (_as_version(f, 2), f["layer/1"].__delitem__("flatten")),
     "missing required key 'flatten'"),
    (lambda f: f.attrs.__setitem__("format_version", 0), "unknown format version 0"),
    (lambda f: f.attrs.__setitem__("format_version", "3"), "must be an integer"),
    (lambda f: f.attrs.__setitem__("format_version", 4), "newer than this reader"),
])
def test_reader_rejects_broken_pools(tmp_path, mutation, message):
    bad = tmp_path / "bad.net"
    _mutate(_pooled_file(tmp_path), bad, mutation)
    with pytest.raises(BitsnnError, match=message):
        read_network(bad)


def _replace(group, key, value):
    if key in group:
        del group[key]
    group[key] = value


def _mutate(src, dst, fn):
    dst.write_bytes(src.read_bytes())
    with h5py.File(dst, "a") as f:
        fn(f)


def _scale(dataset, factor):
    data = dataset[()] * factor
    del dataset.parent[dataset.name.rsplit("/", 1)[1]]
    return data


def _times(group, key, factor):
    group[key] = _scale(group[key], factor)


@pytest.mark.parametrize("mutation,message", [
    (lambda f: f["layer/2"].__delitem__("weight"), "missing required key 'weight'"),
    (lambda f: f["layer/1/neuron"].__delitem__("threshold_unit"), "threshold_unit"),
    (lambda f: f.attrs.__delitem__("bits"), "missing attribute"),
    (lambda f: f["layer/3"].__delitem__("source"), "'source'"),
    (lambda f: f.__delitem__("layer/6"), "last layer must be the output"),
    (lambda f: _replace(f["layer/1/neuron"], "type", "MYSTERY"), "unknown neuron"),
    (lambda f: _replace(f["layer/2"], "weight_float", np.full((32, 32, 3, 3), np.nan)),
     "NaN or Inf"),
    # weights × 100,000: no longer 8-bit mantissas on the stored exponent
    (lambda f: _times(f["layer/2"], "weight", 100_000), "not 8-bit mantissas"),
    # a mantissa off the 2^weight_exp grid
    (lambda f: _replace(f["layer/2"], "weight_exp", int(f["layer/2/weight_exp"][()]) + 3),
     "not 8-bit mantissas"),
    # a bias pushed up: the recomputed bound no longer matches the stored one
    (lambda f: _times(f["layer/5"], "bias", 50), "acc_bound"),
    (lambda f: _replace(f["layer/1/neuron"], "acc_bound", 12), "acc_bound"),
    (lambda f: _replace(f["layer/1/neuron"], "threshold_unit", 96), "not a power of two"),
    (lambda f: _replace(f["layer/1/neuron"], "max_code", 16), "does not fit 4 bits"),
    (lambda f: _replace(f["layer/1/neuron"], "bits", 70), "bits must be 1..8"),
    (lambda f: f.attrs.__setitem__("time_steps", 9), "time_steps 9 must be"),
    (lambda f: f.attrs.__setitem__("meta", "{not json"), "'meta' is not valid JSON"),
])
def test_reader_rejects_broken_and_tampered_files(digits_net, tmp_path, mutation, message):
    """Missing keys, and files whose values break what the schema promises: weights × 100,000
    (no longer 8-bit mantissas), a bias pushed up (the recomputed bound differs from the
    stored one), a threshold unit that is not a power of two, a code that does not fit."""
    good = tmp_path / "good.net"
    write_network(digits_net, good)
    bad = tmp_path / "bad.net"
    _mutate(good, bad, mutation)
    with pytest.raises(BitsnnError, match=message):
        read_network(bad)


def test_files_of_older_versions_read_the_same(digits_net, tmp_path):
    """Version 3 leaves out pool = 1 and flatten = 0; files of versions 1 and 2 spell them out
    and read as the same network (residual shortcuts included)."""
    from tests.random_nets import random_qcfs_net

    residual = convert_model(random_qcfs_net(3, 4, 1, 8, ("conv", "residual", "pool")),
                             (1, 8, 8), [0.5], [0.3], list("abcde"))
    assert any(len(layer.synapses) == 2 for layer in residual.layers)
    new, old = tmp_path / "new.net", tmp_path / "old.net"
    write_network(digits_net, new)
    with h5py.File(new) as f:
        assert "pool" not in f["layer/1"] and "flatten" not in f["layer/1"]
        assert int(f["layer/5/flatten"][()]) == 1 and int(f["layer/5/pool"][()]) == 2
    for net in (digits_net, residual):
        write_network(net, new)
        for version in (1, 2):
            _mutate(new, old, lambda f, v=version: _as_version(f, v))
            with h5py.File(old) as f:
                layers = [f[f"layer/{i}"] for i in range(1, len(f["layer"]))]
                groups = layers + [g for layer in layers for g in layer.get("skip", {}).values()]
                assert all("pool" in g and "flatten" in g for g in groups)
                assert len(groups) > len(layers) or net is digits_net
            _assert_same(net, read_network(old))


def test_max_code_round_trip_and_old_files_default_to_full_range(digits_net, tmp_path):
    import copy

    from lava_bitsnn.convert.fixed import quantise_network

    net = copy.deepcopy(digits_net)
    net.layers[1].max_code = 9
    quantise_network(net)  # the bound follows the largest code
    write_network(net, tmp_path / "k.net")
    assert read_network(tmp_path / "k.net").layers[1].max_code == 9
    write_network(digits_net, tmp_path / "d.net")  # the full range is written as no max_code
    with h5py.File(tmp_path / "d.net") as f:
        assert "max_code" not in f["layer/1/neuron"]
    assert read_network(tmp_path / "d.net").layers[1].max_code == 15


def test_reader_rejects_shape_mismatch(digits_net, tmp_path):
    good = tmp_path / "good.net"
    write_network(digits_net, good)
    bad = tmp_path / "bad.net"

    def shrink(f):
        f["layer/3/shape"][...] = np.asarray([64, 3, 3])

    _mutate(good, bad, shrink)
    with pytest.raises(BitsnnError, match="gives shape"):
        read_network(bad)


def test_reader_rejects_non_hdf5_and_truncated(digits_net, tmp_path):
    (tmp_path / "text.net").write_text("hello")
    with pytest.raises(BitsnnError, match="not an HDF5 file"):
        read_network(tmp_path / "text.net")
    good = tmp_path / "good.net"
    write_network(digits_net, good)
    (tmp_path / "cut.net").write_bytes(good.read_bytes()[:4000])
    with pytest.raises(BitsnnError):
        read_network(tmp_path / "cut.net")


def test_cuba_file_loads_in_lava_dl_netx(digits_net, tmp_path):
    path = tmp_path / "cuba.net"
    # lava-dl cannot express pools: the digits net has them, a pool-free net does not
    with pytest.raises(BitsnnError, match="lava-dl's netx cannot load"):
        write_lava_dl_cuba(digits_net, path)
    model = random_qcfs_net(1, 4, 1, 8, ("conv", "stride2"))
    net = convert_model(model, (1, 8, 8), [0.5], [0.3], list("abcde"))
    write_lava_dl_cuba(net, path)
    with pytest.raises(BitsnnError, match="not written by lava-bitsnn"):
        read_network(path)
    code = (
        "import sys; from lava.lib.dl import netx; "
        f"n = netx.hdf5.Network(net_config={str(path)!r}); "
        "print(len(n.layers), n.inp.shape, n.out.shape)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1].split()[0] == str(len(net.layers) - 1)


def test_tampered_file_is_refused_by_bitsnn_run_in_one_line(digits_net, tmp_path):
    from tests.cli_helpers import cli, one_line_error

    good, bad = tmp_path / "good.net", tmp_path / "bad.net"
    write_network(digits_net, good)
    _mutate(good, bad, lambda f: _times(f["layer/2"], "weight", 100_000))
    out = tmp_path / "run.json"
    proc = cli("run", str(bad), "--engine", "lava", "--dataset", "digits", "--json", str(out))
    one_line_error(proc, "not 8-bit mantissas", out)


def test_saturation_is_an_error_unless_allowed(digits_net, digits_data):
    """Exported files cannot saturate; a network that does (here: a bias pushed past 24 bits
    in memory) gives no accuracy unless --allow-saturation."""
    import argparse
    import copy

    from lava_bitsnn.cli.common import simulate

    net = copy.deepcopy(digits_net)
    net.layers[1].bias_int = net.layers[1].bias_int + (1 << 23)
    args = argparse.Namespace(engine="reference", precision="fixed", neuron="bit-serial",
                              time_steps=None, batch_size=None, allow_saturation=False)
    x = digits_data.test.images[:4]
    with pytest.raises(BitsnnError, match="accumulator saturation events in layers 2"):
        simulate(net, args, x, progress=False)
    args.allow_saturation = True
    _, counts, _, _ = simulate(net, args, x, progress=False)
    assert counts[1].overflows > 0


def test_a_saturating_if_run_names_the_long_window(digits_net, digits_data):
    """The exported network itself saturates as fixed-point IF over a long window; the error
    says why and what to do instead."""
    import argparse

    from lava_bitsnn.cli.common import simulate

    args = argparse.Namespace(engine="reference", precision="fixed", neuron="if",
                              time_steps=64, batch_size=None, allow_saturation=False)
    with pytest.raises(BitsnnError, match="fewer --time-steps or --precision float"):
        simulate(digits_net, args, digits_data.test.images[:16], progress=False)


def test_compact_file_without_float_weights(digits_net, digits_data, tmp_path):
    """--no-float-weights: the float64 copies go, the fixed-point network stays bit-identical,
    the float engines refuse in one line, and the file is about 1.5 bytes per weight."""
    import os

    from lava_bitsnn.lava.runner import LavaRunner
    from lava_bitsnn.reference import ReferenceEngine
    from tests.cli_helpers import cli, one_line_error

    full, compact = tmp_path / "full.net", tmp_path / "compact.net"
    write_network(digits_net, full)
    write_network(digits_net, compact, float_weights=False)
    with h5py.File(compact) as f:
        assert f.attrs["float_weights"] == 0 and "weight_float" not in f["layer/2"]
        assert np.issubdtype(f["layer/2/weight"].dtype, np.integer)  # lava-dl's field, as ints
    back = read_network(compact)
    assert not back.has_float_weights
    x = digits_data.test.images[:20]
    a = ReferenceEngine(read_network(full), "fixed").run_batch(x)
    b = ReferenceEngine(back, "fixed").run_batch(x)
    np.testing.assert_array_equal(a.logits, b.logits)
    weights = sum(s.weight_int.size for layer in back.layers for s in layer.synapses)
    assert os.path.getsize(compact) < os.path.getsize(full) / 3
    print(f"bytes per weight: {os.path.getsize(full) / weights:.2f} with float weights, "
          f"{os.path.getsize(compact) / weights:.2f} without")
    with pytest.raises(ValueError, match="no-float-weights"):
        ReferenceEngine(back, "float")
    with pytest.raises(BitsnnError, match="no-float-weights"):
        LavaRunner(back, "float")
    proc = cli("run", str(compact), "--precision", "float", "--dataset", "digits")
    one_line_error(proc, "fixed point only")
