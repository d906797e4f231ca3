"""The paper's building blocks (Fig. 2 and Fig. 5) and its three shortcut options (Sec. 3.3).

A block is residual when it has a `shortcut` module and plain when `shortcut is None`; the plain
nets of Table 2 are the same stacks with the shortcut removed.
"""

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .errors import check_choice
from .norm import make_norm

SHORTCUTS = ("A", "B", "C")


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=dilation, dilation=dilation,
                     bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class PaddedIdentity(nn.Module):
    """Option A: identity with stride-`stride` subsampling and zero-padded extra channels.

    Parameter-free, so a ResNet with option A has exactly the parameters of its plain net.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.extra_channels = out_channels - in_channels
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))


def projection(in_channels: int, out_channels: int, stride: int, norm: str) -> nn.Sequential:
    """Options B and C: a 1x1 convolution (Eqn. 2's W_s) followed by BN."""
    return nn.Sequential(
        OrderedDict(
            conv=conv1x1(in_channels, out_channels, stride),
            bn=make_norm(norm, out_channels),
        )
    )


def make_shortcut(option: str | None, in_channels: int, out_channels: int, stride: int, norm: str):
    """The shortcut of one block: None (plain), identity, zero-padding (A) or projection (B, C)."""
    if option is None:
        return None
    check_choice("shortcut", option, SHORTCUTS)
    changes_shape = stride != 1 or in_channels != out_channels
    if option == "C" or (option == "B" and changes_shape):
        return projection(in_channels, out_channels, stride, norm)
    if changes_shape:
        return PaddedIdentity(in_channels, out_channels, stride)
    return nn.Identity()


class BasicBlock(nn.Module):
    """Two 3x3 convs (Fig. 5 left); used by the 18/34-layer nets and the CIFAR nets.

    In a dilated stage the first conv keeps the dilation of the stage before (`first_dilation`),
    as timm's BasicBlock does; torchvision's has no dilated form."""

    expansion = 1

    def __init__(self, in_channels, width, stride=1, shortcut="B", norm="bn", stride_in_1x1=False,
                 dilation=1, first_dilation=None):
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = conv3x3(in_channels, width, stride, first_dilation or dilation)
        self.bn1 = make_norm(norm, width)
        self.conv2 = conv3x3(width, out_channels, dilation=dilation)
        self.bn2 = make_norm(norm, out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = make_shortcut(shortcut, in_channels, out_channels, stride, norm)

    @property
    def last_norm(self) -> nn.Module:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.shortcut is not None:
            out += self.shortcut(x)  # in place, as torchvision: one tensor less per block
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 restore (Fig. 5 right), 4x expansion; the 50/101/152-layer nets.

    `stride_in_1x1=True` is the paper's original design (Table 1's FLOPs); False puts the stride
    on the 3x3 as torchvision's "v1.5" does, which its weights assume. In a dilated stage the 3x3
    of the first block keeps the dilation of the stage before, as torchvision's.
    """

    expansion = 4

    def __init__(self, in_channels, width, stride=1, shortcut="B", norm="bn", stride_in_1x1=False,
                 dilation=1, first_dilation=None):
        super().__init__()
        out_channels = width * self.expansion
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = conv1x1(in_channels, width, stride_1x1)
        self.bn1 = make_norm(norm, width)
        self.conv2 = conv3x3(width, width, stride_3x3, first_dilation or dilation)
        self.bn2 = make_norm(norm, width)
        self.conv3 = conv1x1(width, out_channels)
        self.bn3 = make_norm(norm, out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = make_shortcut(shortcut, in_channels, out_channels, stride, norm)

    @property
    def last_norm(self) -> nn.Module:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.shortcut is not None:
            out += self.shortcut(x)  # in place, as torchvision: one tensor less per block
        return self.relu(out)


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}
