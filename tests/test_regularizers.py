import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lava_bitsnn.ann.qcfs import QCFS
from lava_bitsnn.ann.regularizers import bit_l1, count_ones, qcfs_reg


def test_count_ones_hand_computed():
    codes = torch.tensor([0, 1, 2, 3, 4, 7, 8, 15, 255]).float()
    assert count_ones(codes, 8) == 0 + 1 + 1 + 2 + 1 + 3 + 1 + 4 + 8


@settings(max_examples=30, deadline=None)
@given(bits=st.integers(1, 8), seed=st.integers(0, 2**31 - 1))
def test_count_ones_equals_bit_by_bit_shifts(bits, seed):
    codes = torch.randint(0, 1 << bits, (3, 5, 7), generator=torch.Generator().manual_seed(seed))
    shifted = sum(int(((codes >> j) & 1).sum()) for j in range(bits))
    assert count_ones(codes.float(), bits) == shifted


def test_bit_l1_counts_bits_of_rounded_code_not_value():
    layer = QCFS(4, threshold=1.5)  # Δ = 0.1
    # codes 4 (100b: one bit, not three), 3 (2 bits), 15 (4 bits), 0; float noise must not
    # truncate 0.4 to code 3.
    a = torch.tensor([0.4 * (1 - 1e-7), 0.3, 1.5, 0.0], requires_grad=True)
    value = bit_l1([(layer, a)])
    assert value.item() == 1 + 2 + 4 + 0


def test_bit_l1_surrogate_gradient_eq11():
    layer = QCFS(4, threshold=1.5)
    a = torch.tensor([0.0, 0.4, 1.4, 1.5], requires_grad=True)
    bit_l1([(layer, a)]).backward()
    # ∂/∂a = Σ_t 1 = b inside (0, λ), 0 at 0 and at λ.
    assert a.grad.tolist() == [0.0, 4.0, 4.0, 0.0]


def test_bit_l1_through_qcfs_reaches_preactivation():
    layer = QCFS(2, threshold=3.0)
    z = torch.tensor([-1.0, 1.2, 5.0], requires_grad=True)
    bit_l1([(layer, layer(z))]).backward()
    assert z.grad.tolist() == [0.0, 2.0, 0.0]


def test_qcfs_regulariser_value_and_gradient():
    layer = QCFS(2, threshold=3.0)  # Δ = 1
    z = torch.tensor([0.2, 1.0, 2.7, -0.4], requires_grad=True)
    a = layer(z)  # 0, 1, 3, 0
    value = qcfs_reg([(z, a)])
    expected = (0.2**2 + 0.0 + 0.3**2 + 0.4**2) / 4
    assert abs(value.item() - expected) < 1e-6
    value.backward()
    # Target held constant: gradient 2(z − q)/N pulls z to its bin centre.
    assert torch.allclose(z.grad, torch.tensor([0.1, 0.0, -0.15, -0.2]), atol=1e-6)
