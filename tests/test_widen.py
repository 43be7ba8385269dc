"""Function-preserving widening (``--init`` a narrower checkpoint with ``--width K``)."""

import pytest
import torch

from lava_bitsnn.ann.checkpoint import load_checkpoint, model_from_checkpoint
from lava_bitsnn.ann.qcfs import QCFS
from lava_bitsnn.ann.train import TrainConfig, _load_init, train
from lava_bitsnn.ann.widen import widen_state_dict
from lava_bitsnn.ann.zoo import build_model
from lava_bitsnn.errors import BitsnnError

SMALL = dict(in_channels=1, image_size=8, num_classes=10, bits=4)


def _codes(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Every QCFS layer's output (the spike codes) and the logits."""
    out: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, o: out.append(o.detach()))
             for m in model.modules() if isinstance(m, QCFS)]
    out.append(model(x).detach())
    for h in hooks:
        h.remove()
    return out


def _trained_narrow(seed: int) -> torch.nn.Module:
    """A resnet20 whose BN statistics and thresholds are not at their initial values."""
    torch.manual_seed(seed)
    model = build_model("resnet20", **SMALL)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
        if isinstance(m, QCFS):
            m.threshold.data.uniform_(1.0, 3.0)
    return model.eval()


@pytest.mark.parametrize("k", [2, 3])
def test_widened_network_computes_the_same_codes_and_logits(k):
    narrow = _trained_narrow(k)
    wide = build_model("resnet20", **SMALL, width=k)
    wide.load_state_dict(widen_state_dict(narrow.state_dict(), wide.state_dict(),
                                          torch.Generator().manual_seed(0)))
    wide.eval()
    assert wide[0].out_channels == 16 * k
    x = torch.randn(64, 1, 8, 8)
    for a, b in zip(_codes(narrow, x), _codes(wide, x), strict=True):
        if a.dim() == 4:  # a QCFS map: channel j of the wide one is channel j mod C
            a = a.repeat(1, k, 1, 1)
        assert a.shape == b.shape
        mismatch = (a - b).abs() > 1e-4
        assert mismatch.float().mean() < 1e-3  # only at a bin edge, where rounding decides
    assert torch.allclose(narrow(x), wide(x), atol=1e-3)


def test_copies_get_different_gradients():
    """The shares break the symmetry: the two copies of a stem channel learn differently."""
    narrow = _trained_narrow(0)
    wide = build_model("resnet20", **SMALL, width=2)
    wide.load_state_dict(widen_state_dict(narrow.state_dict(), wide.state_dict(),
                                          torch.Generator().manual_seed(0)))
    wide(torch.randn(32, 1, 8, 8)).logsumexp(1).sum().backward()
    grad = wide[0].weight.grad
    assert torch.equal(wide[0].weight[:16], wide[0].weight[16:])
    assert not torch.allclose(grad[:16], grad[16:])


def test_shapes_that_are_not_one_widening_are_refused():
    narrow = build_model("resnet20", **SMALL).state_dict()
    with pytest.raises(ValueError, match="differ in their layers"):
        widen_state_dict(narrow, build_model("resnet18", **SMALL).state_dict(),
                         torch.Generator())
    with pytest.raises(ValueError, match="one integer factor"):
        widen_state_dict({"w": torch.ones(4, 2)}, {"w": torch.ones(6, 2)}, torch.Generator())
    with pytest.raises(ValueError, match="one integer factor"):
        widen_state_dict({"w": torch.ones(4, 2)}, {"w": torch.ones(8, 6)}, torch.Generator())


def test_init_widens_a_checkpoint_and_the_result_trains_and_reloads(tmp_path, digits_data):
    cfg = dict(arch="resnet20", dataset="digits", bits=4, batch_size=64, lr=0.02, seed=0)
    narrow_path = tmp_path / "narrow.pt"
    train(TrainConfig(epochs=1, **cfg), digits_data, str(narrow_path), progress=False)
    narrow = model_from_checkpoint(load_checkpoint(narrow_path)).eval()
    wide_cfg = TrainConfig(epochs=1, init=str(narrow_path), arch_kwargs={"width": 2}, **cfg)
    wide = build_model("resnet20", **SMALL, width=2)
    _load_init(wide, wide_cfg, digits_data)
    x = torch.randn(16, 1, 8, 8)
    assert torch.allclose(narrow(x), wide.eval()(x), atol=1e-3)

    ckpt = train(wide_cfg, digits_data, str(tmp_path / "wide.pt"), progress=False)
    assert ckpt["arch_kwargs"]["width"] == 2
    rebuilt = model_from_checkpoint(load_checkpoint(tmp_path / "wide.pt"))
    assert rebuilt[0].out_channels == 32
    with pytest.raises(BitsnnError, match="has width 2: give --width 2 or a multiple"):
        _load_init(build_model("resnet20", **SMALL, width=3),
                   TrainConfig(epochs=1, init=str(tmp_path / "wide.pt"),
                               arch_kwargs={"width": 3}, **cfg), digits_data)


def test_per_channel_thresholds_are_tiled_not_shared():
    """Only a ``*.weight`` input dimension is split into shares; a channel-wise λ of shape
    (1, C, 1, 1) is copied."""
    lam = torch.tensor([1.0, 2.0]).view(1, 2, 1, 1)
    out = widen_state_dict({"act.threshold": lam}, {"act.threshold": torch.ones(1, 4, 1, 1)},
                           torch.Generator().manual_seed(0))
    assert out["act.threshold"].flatten().tolist() == [1.0, 2.0, 1.0, 2.0]
    w = torch.arange(6.0).view(3, 2)
    split = widen_state_dict({"fc.weight": w}, {"fc.weight": torch.ones(3, 6)},
                             torch.Generator().manual_seed(0))["fc.weight"]
    assert torch.allclose(split.view(3, 3, 2).sum(1), w)  # the three shares add up to w
    assert not torch.allclose(split[:, :2], split[:, 2:4])


def test_resume_with_another_width_is_a_clear_error(tmp_path, digits_data):
    cfg = dict(arch="resnet20", dataset="digits", bits=4, batch_size=64, lr=0.02, seed=0,
               epochs=2)
    path = tmp_path / "w2.pt"
    train(TrainConfig(**{**cfg, "epochs": 1}, arch_kwargs={"width": 2}), digits_data,
          str(path), progress=False)
    with pytest.raises(BitsnnError, match="was built with --width 2"):
        train(TrainConfig(**cfg), digits_data, str(tmp_path / "x.pt"), resume=str(path),
              progress=False)


def test_width_validation():
    with pytest.raises(BitsnnError, match="--width applies to"):
        TrainConfig(arch="vgg11", dataset="digits", arch_kwargs={"width": 2}).validate()
    with pytest.raises(ValueError, match="width must be at least 1"):
        build_model("resnet20", **SMALL, width=0)
