import pytest
import torch

from lava_bitsnn.ann.qcfs import QCFS


def make(bits=4, lam=1.5):
    return QCFS(bits, threshold=lam)


def test_values_at_bin_edges_below_zero_and_above_threshold():
    q = make(bits=4, lam=1.5)  # K = 15, Δ = 0.1
    delta = 0.1
    z = torch.tensor([-5.0, -0.049, 0.0, 0.049, 0.051, 0.149, 0.151, 1.449, 1.451, 1.5, 99.0],
                     dtype=torch.float64)
    q = q.double()
    codes = q.code(z)
    assert codes.tolist() == [0, 0, 0, 0, 1, 1, 2, 14, 15, 15, 15]
    assert torch.allclose(q(z), codes * delta)


def test_exact_half_step_rounds_up():
    q = QCFS(2, threshold=3.0).double()  # K = 3, Δ = 1: z = k − ½ is the edge to code k
    z = torch.tensor([0.5, 1.5, 2.5], dtype=torch.float64)
    assert q.code(z).tolist() == [1, 2, 3]


@pytest.mark.parametrize("bits", range(1, 9))
def test_every_level_reachable_and_top_level_is_2b_minus_1(bits):
    q = QCFS(bits, threshold=1.0).double()
    k = (1 << bits) - 1
    z = torch.arange(k + 1, dtype=torch.float64) / k  # bin centres
    assert q.code(z).tolist() == list(range(k + 1))
    assert q.code(torch.tensor([1e9], dtype=torch.float64)).item() == k


@pytest.mark.parametrize("bits", [0, 9, -1])
def test_bits_out_of_range_rejected(bits):
    with pytest.raises(ValueError):
        QCFS(bits)


def test_gradient_reaches_threshold_and_input():
    q = make(bits=3, lam=2.0)
    z = torch.linspace(-1, 3, 41, requires_grad=True)
    q(z).sum().backward()
    assert q.threshold.grad is not None and q.threshold.grad.abs() > 0
    inside = (z > 0) & (z < 2.0)
    assert torch.all(z.grad[inside] == 1)  # straight-through inside the range
    assert torch.all(z.grad[z < -0.2] == 0) and torch.all(z.grad[z > 2.2] == 0)


def test_record_codes():
    q = make()
    q.record_codes = True
    q(torch.tensor([0.0, 0.3, 2.0]))
    assert q.last_code.tolist() == [0, 3, 15]
