"""Activation adapters (issue 11): other codes' QCFS modules become our QCFS with a bit-for-bit
identical forward, and convert exactly for any L ≥ 1, layer- and channel-wise, mixed levels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from lava_bitsnn.ann.adapters import adapt_activations
from lava_bitsnn.ann.qcfs import QCFS, bits_for_levels
from lava_bitsnn.convert.model import convert_model
from lava_bitsnn.errors import BitsnnError
from lava_bitsnn.verify import ann_trace, verify_batch
from tests import foreign_models as fm
from tests.random_nets import random_qcfs_net

LEVELS = (1, 3, 4, 8, 15, 16)


@pytest.mark.parametrize("levels", LEVELS)
@pytest.mark.parametrize("kind", ["myfloor", "myfloor-c4", "myfloor-c2", "if"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_adapted_forward_is_bit_identical(kind, levels, dtype):
    gen = torch.Generator().manual_seed(levels)
    dims = 2 if kind == "myfloor-c2" else 4
    shape = (64, 5) if dims == 2 else (16, 5, 3, 3)
    if kind == "if":
        orig = fm.IF(0, levels, 1.7)
    else:
        orig = fm.MyFloor(1.7, levels, 5 if kind != "myfloor" else 0, dims)
        with torch.no_grad():
            orig.up.mul_(torch.rand(orig.up.shape, generator=gen) + 0.5)
    orig = orig.to(dtype)
    x = (torch.randn(shape, generator=gen, dtype=dtype) * 2)
    # inputs exactly on the bin edges and far outside the range too
    edges = (torch.arange(-2, levels + 3, dtype=dtype) - 0.5) / levels
    x.view(-1)[:edges.numel()] = edges * float(orig.state_dict()[next(iter(
        orig.state_dict()))].flatten()[0])
    model, found = adapt_activations(nn.Sequential(orig))
    new = model[0]
    assert isinstance(new, QCFS) and found[0].levels == levels and new.max_code == levels
    assert new.bits == bits_for_levels(levels)
    out_new, out_orig = new(x), orig(x)
    assert out_new.dtype == out_orig.dtype
    assert torch.equal(out_new, out_orig)  # bit for bit
    # the codes against the formula, independently: k = clip(round-half-up(z/λ·L), 0, L)
    # (numpy, in the input's dtype: IEEE division and multiplication round alike)
    lam = new.threshold.detach().numpy()
    npdt = np.float32 if dtype == torch.float32 else np.float64
    k = np.clip(np.floor(x.numpy() / lam * npdt(levels) + npdt(0.5)), 0, levels)
    code = new.code(x).detach().numpy()
    assert np.array_equal(code, k)
    assert np.array_equal(np.round(code), code) and code.max() <= levels


def test_levels_disagreeing_or_missing_and_unknown_activation():
    with pytest.raises(BitsnnError, match="--levels 4 disagrees with 0 .*t is 8"):
        adapt_activations(nn.Sequential(fm.MyFloor(1.0, 8)), levels=4)
    with pytest.raises(BitsnnError, match="disagrees with 0 .*L is 8"):
        adapt_activations(nn.Sequential(fm.IF(0, 8)), levels=3)
    m = fm.MyFloor(1.0, 8)
    del m.t
    with pytest.raises(BitsnnError, match="does not store its number of levels L: add --levels"):
        adapt_activations(nn.Sequential(m))
    model, found = adapt_activations(nn.Sequential(m), levels=5)
    assert found[0].levels == 5 and model[0].max_code == 5
    with pytest.raises(BitsnnError, match=r"unknown activation module 1 \(LearnedClip\)"):
        adapt_activations(nn.Sequential(nn.Conv2d(1, 1, 1), fm.LearnedClip()))
    with pytest.raises(BitsnnError, match="levels L must be an integer from 1"):
        adapt_activations(nn.Sequential(fm.IF(0, 0)))


def test_if_in_snn_mode_is_refused():
    """IF with T > 0 is the reference code's SNN mode (a different forward): never converted as
    if it were the ANN."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sequential(fm.IF(4, 8)))
    with pytest.raises(BitsnnError, match=r"^1\.0 \(IF\) has T=4, its SNN mode.*set T = 0"):
        adapt_activations(model)
    model[1][0].T = torch.tensor(2)
    with pytest.raises(BitsnnError, match=r"^1\.0 \(IF\) has T=2"):
        adapt_activations(model)
    model[1][0].T = 0
    _, found = adapt_activations(model)
    assert [(a.path, a.family, a.levels) for a in found] == [("1.0", "if", 8)]


def _foreign_net(seed: int, levels: list[int], channelwise: bool, family: str,
                 blocks: tuple[str, ...]) -> nn.Module:
    """A random QCFS net whose every activation is replaced by a foreign module with its own
    L (cycling through ``levels``) and a random threshold (per channel if asked)."""
    net = random_qcfs_net(seed, 4, blocks=blocks)
    gen = torch.Generator().manual_seed(seed)
    acts = []  # in execution order (depth-first registration order)
    for path, child in net.named_modules():
        if isinstance(child, QCFS):
            head, _, name = path.rpartition(".")
            acts.append((net.get_submodule(head) if head else net, name, child))
    x = torch.zeros(1, 1, 8, 8)
    channels: dict[int, tuple[int, int]] = {}
    hooks = [child.register_forward_hook(lambda m, i, o: channels.__setitem__(
        id(m), (o.shape[1], o.dim()))) for _, _, child in acts]
    net(x)
    for h in hooks:
        h.remove()
    for i, (parent, name, child) in enumerate(acts):
        c, dims = channels[id(child)]
        new = fm.act(family, levels[i % len(levels)], c, channelwise and family != "if", dims)
        with torch.no_grad():
            lam = float(child.threshold)
            new_p = new.thresh if family == "if" else new.up
            new_p.copy_(lam * (torch.rand(new_p.shape, generator=gen) + 0.5))
        setattr(parent, name, new)
    return net.eval()


def _check_exact(model: nn.Module, seed: int, n: int = 6):
    original = model
    pixels = np.random.default_rng(seed).integers(0, 256, (n, 1, 8, 8)).astype(np.uint8)
    from lava_bitsnn.ann.data import normalise

    with torch.no_grad():
        reference = original(normalise(pixels, [0.4], [0.3]))
    model, found = adapt_activations(model)
    with torch.no_grad():
        assert torch.equal(model(normalise(pixels, [0.4], [0.3])), reference)
    net = convert_model(model, (1, 8, 8), [0.4], [0.3], [str(i) for i in range(5)])
    hidden = [x for x in net.layers if x.kind == "neuron"]
    assert len(found) <= len(hidden)  # a shared module is one entry, several layers
    for layer in hidden:
        assert 1 <= layer.max_code <= (1 << layer.bits) - 1 and layer.bits == bits_for_levels(
            layer.max_code)
    report = verify_batch(model, net, pixels, np.zeros(n, dtype=np.int64))
    for r in report.layers:
        assert r.qann_vs_fixed == 0, r
        assert r.ann_vs_float_unexplained == 0, r
    assert report.logit_mismatches == 0
    codes = ann_trace(model, pixels, [0.4], [0.3]).codes
    for layer in net.layers:
        if layer.kind == "neuron":
            assert codes[layer.name].max() <= layer.max_code
    return net, codes


@pytest.mark.parametrize("family", ["myfloor", "if"])
@pytest.mark.parametrize("channelwise", [False, True])
@pytest.mark.parametrize("levels", [[1], [3], [4], [8], [15], [16], [3, 16, 1, 8]])
def test_foreign_nets_convert_exactly(family, channelwise, levels):
    if family == "if" and channelwise:
        pytest.skip("IF thresholds are one value per layer")
    model = _foreign_net(8, levels, channelwise, family, ("conv", "pool", "residual"))
    net, codes = _check_exact(model, 3)
    hidden = [layer for layer in net.layers if layer.kind == "neuron"]
    assert [layer.max_code for layer in hidden] == [levels[i % len(levels)]
                                                     for i in range(len(hidden))]
    assert any(c.max() > 0 for c in codes.values())  # not a dead network


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), levels=st.lists(st.sampled_from(LEVELS), min_size=1,
                                                     max_size=4),
       channelwise=st.booleans(), family=st.sampled_from(["myfloor", "if"]),
       blocks=st.lists(st.sampled_from(["conv", "stride2", "depthwise", "pool", "residual"]),
                       max_size=3))
def test_random_foreign_nets_are_exact(seed, levels, channelwise, family, blocks):
    _check_exact(_foreign_net(seed, levels, channelwise, family, tuple(blocks)), seed)


def test_shared_activation_module_is_two_layers():
    act = fm.MyFloor(2.0, 4)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), act, nn.Conv2d(3, 3, 3, padding=1), act,
                          nn.Flatten(), nn.Linear(3 * 64, 5)).eval()
    net, codes = _check_exact(model, 1)
    assert [layer.name for layer in net.layers if layer.kind == "neuron"] == ["1", "1#2"]


@pytest.mark.parametrize("size", [(1, None), (None, 1), (1, 2), 1])
def test_adaptive_pool_other_than_global_is_exact(size):
    """Only output size 1 / (1, 1) is a global pool; (1, None), (None, 1), ... are general
    pools folded into the next Linear (not a k×k pool of the whole map)."""
    gen = torch.Generator().manual_seed(1)
    pool = nn.AdaptiveAvgPool2d(size)
    out = pool(torch.zeros(1, 3, 8, 8))[0].numel()
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), QCFS(3, threshold=2.0), pool,
                          nn.Flatten(), nn.Linear(out, 5)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    net, codes = _check_exact(model, 5)
    syn = net.layers[-1].synapses[0]
    if size == 1:
        assert syn.pool == 8 and syn.weight.shape == (5, 3)
    else:
        assert syn.pool == 1 and syn.flatten and syn.weight.shape == (5, 3 * 8 * 8)
    assert codes["1"].max() > 0


def test_conv_after_non_global_adaptive_pool_is_refused():
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), QCFS(3), nn.AdaptiveAvgPool2d((1, None)),
                          nn.Conv2d(3, 4, 1), nn.Flatten(), nn.Linear(32, 5)).eval()
    with pytest.raises(BitsnnError, match=r"^3: a convolution after two average pools in a "
                                          r"row, or after a non-global adaptive pool, is not "
                                          r"supported"):
        convert_model(model, (1, 8, 8), [0.4], [0.3], [str(i) for i in range(5)])
