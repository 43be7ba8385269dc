"""Look-alikes of other codes' QCFS activations and models, written from their published
descriptions (issue 11), for the adapter tests. Importable as ``tests.foreign_models`` so
pickled models and ``--model tests.foreign_models:FACTORY`` resolve."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MyFloor(nn.Module):
    """QCFS reference code v1 / "SNN meets ANN": Parameter ``up`` ([1] or channel-wise),
    int ``t`` = L. ``x/up → floor(x·t + ½)/t → clamp(0, 1) → ·up``."""

    def __init__(self, up: float = 8.0, t: int = 32, channels: int = 0, dims: int = 4) -> None:
        super().__init__()
        shape = [1] if not channels else ([1, channels, 1, 1] if dims == 4 else [1, channels])
        self.up = nn.Parameter(torch.full(shape, float(up)))
        self.t = t

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x / self.up
        x = torch.floor(x * self.t + 0.5) / self.t
        x = torch.clamp(x, 0, 1)
        return x * self.up


class IF(nn.Module):
    """QCFS reference code v2: Parameter ``thresh`` [1], attributes ``L`` and ``T`` (T == 0:
    ANN mode). ``clamp(x/thresh, 0, 1) → floor(·L + ½)/L → ·thresh``."""

    def __init__(self, T: int = 0, L: int = 8, thresh: float = 8.0) -> None:
        super().__init__()
        self.thresh = nn.Parameter(torch.tensor([thresh]))
        self.L = L
        self.T = T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.clamp(x / self.thresh, 0, 1)
        x = torch.floor(x * self.L + 0.5) / self.L
        return x * self.thresh


class LearnedClip(nn.Module):
    """Some other activation with a learnable threshold (PACT-like): not a known family."""

    def __init__(self) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.tensor(6.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x, min=torch.zeros_like(self.alpha), max=self.alpha)


def act(family: str, levels: int, channels: int, channelwise: bool, dims: int = 4,
        up: float = 2.0) -> nn.Module:
    if family == "if":
        return IF(0, levels, up)
    return MyFloor(up, levels, channels if channelwise else 0, dims)


class SnnMeetsAnnNet(nn.Module):
    """A model in the style of the "SNN meets ANN" code: ``forward(x, t, mode)`` returns
    ``(out, act_loss)``; functional ReLU-free, view-flatten, ``out += identity``."""

    def __init__(self, levels: int = 4, channelwise: bool = True, in_channels: int = 1,
                 size: int = 8, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(6)
        self.act1 = MyFloor(2.0, levels, 6 if channelwise else 0)
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(6)
        self.act2 = MyFloor(2.0, levels, 6 if channelwise else 0)
        self.dropout = nn.Dropout(0.1)
        self.fc1 = nn.Linear(6 * (size // 2) ** 2, 16)
        self.act3 = MyFloor(2.0, levels, 16 if channelwise else 0, dims=2)
        self.fc2 = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor, t: int = 0, mode: str = "ann"):
        if mode != "ann" or t != 0:
            raise ValueError("only the ANN mode (t=0, mode='ann') is modelled here")
        out = self.act1(self.bn1(self.conv1(x)))
        identity = out
        out = self.bn2(self.conv2(out))
        out += identity
        out = self.act2(out)
        out = F.avg_pool2d(out, 2)
        out = out.view(out.size(0), -1)
        out = self.act3(self.fc1(self.dropout(out)))
        act_loss = sum(m.up.abs().sum() for m in (self.act1, self.act2, self.act3))
        return self.fc2(out), act_loss


def snn_meets_ann(levels: int = 4, channelwise: bool = True) -> SnnMeetsAnnNet:
    return SnnMeetsAnnNet(levels, channelwise)


class ReluCnn(nn.Module):
    """A plain ReLU + MaxPool CNN for 8×8 digits, written the way users write it (functional
    ReLU, torch.flatten)."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(16 * 16, 32)
        self.drop = nn.Dropout(0.2)
        self.out = nn.Linear(32, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        return self.out(self.drop(F.relu(self.fc(x))))


def relu_cnn(classes: int = 10) -> ReluCnn:
    return ReluCnn(classes)


def if_cnn(levels: int = 8, in_channels: int = 1, classes: int = 10) -> nn.Sequential:
    """QCFS v2 style Sequential with IF activations, a nn.Flatten and an AdaptiveAvgPool2d."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 8, 3, padding=1), nn.BatchNorm2d(8), IF(0, levels, 2.0),
        nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), IF(0, levels, 2.0),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, classes))
