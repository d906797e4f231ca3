"""Normalisation layers by name, so every family offers the same `norm=` option."""

import math

from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from .errors import check_choice

NORMS = ("bn", "frozen_bn", "gn", "syncbn")


def make_norm(norm: str, channels: int) -> nn.Module:
    """BN after every conv, as the paper; frozen BN for detection; GN and SyncBN for small batches."""
    check_choice("norm", norm, NORMS)
    if norm == "bn":
        return nn.BatchNorm2d(channels)
    if norm == "frozen_bn":
        return FrozenBatchNorm2d(channels)
    if norm == "syncbn":
        return nn.SyncBatchNorm(channels)
    # 32 groups (Wu & He, 2018) where the width allows; CIFAR's 16-channel stage gets 16.
    return nn.GroupNorm(math.gcd(32, channels), channels)


def is_norm(module: nn.Module) -> bool:
    return isinstance(module, (nn.modules.batchnorm._NormBase, nn.GroupNorm, FrozenBatchNorm2d))
