"""CIFAR ResNet checkpoints in the layout the community shares (akamaster/pytorch_resnet_cifar10
and its forks): stem `conv1`/`bn1`, stages `layer1..3` of blocks `conv1/bn1/conv2/bn2`, the
classifier `linear`, and option-A shortcuts that zero-pad the new channels *symmetrically*
(a quarter of the output channels before the identity and a quarter after), where ours pads
after it. Projection shortcuts (`shortcut.0` conv, `shortcut.1` BN) are renamed too.

Loading such weights into our option-A net with the names alone would put the identity on the
wrong channels. Instead each stage's residual stream is permuted: our channel i holds the
community's channel P[i], with P chosen so that the identity lands where our padding puts it.
Every tensor that reads or writes the stream is permuted with it (a block's first convolution on
its input side, its last convolution and BN on the output side, the classifier on its input
side), so the network computes the same function: the same predictions.
"""

import re

import torch
from torch import nn

from .blocks import PaddedIdentity

_RENAMES = [
    (re.compile(r"^conv1\."), "stem.conv."),
    (re.compile(r"^bn1\."), "stem.bn."),
    (re.compile(r"^layer(\d)\."), lambda m: f"stages.{int(m.group(1)) - 1}."),
    (re.compile(r"\.shortcut\.0\."), ".shortcut.conv."),
    (re.compile(r"\.shortcut\.1\."), ".shortcut.bn."),
    (re.compile(r"^linear\."), "fc."),
]
STREAM_OUTPUTS = ("conv2.weight", "bn2.weight", "bn2.bias", "bn2.running_mean", "bn2.running_var")


def is_community_cifar(state_dict: dict) -> bool:
    """The community CIFAR layout: a `linear` classifier over `layer1..3` (torchvision's is `fc`)."""
    return "linear.weight" in state_dict and any(k.startswith("layer3.") for k in state_dict)


def _rename(key: str) -> str:
    for pattern, replacement in _RENAMES:
        key = pattern.sub(replacement, key)
    return key


def _padded_stream(previous: torch.Tensor, shortcut: PaddedIdentity) -> torch.Tensor:
    """The stream permutation after a symmetric-padding shortcut widens `previous`: ours keeps
    the identity first and the zero channels after; theirs has it between `before` zeros and
    the rest."""
    before = shortcut.extra_channels // 2
    width = len(previous) + shortcut.extra_channels
    pads = [c for c in range(width) if not before <= c < before + len(previous)]
    return torch.cat([previous + before, torch.tensor(pads, dtype=torch.long)])


def remap_community_cifar(state_dict: dict, model) -> dict:
    """A community CIFAR ResNet state dict in our names, with option-A streams permuted."""
    state = {_rename(key): value for key, value in state_dict.items()}
    stream = torch.arange(model.stem.conv.out_channels)
    for s, stage in enumerate(model.stages):
        for b, block in enumerate(stage):
            prefix = f"stages.{s}.{b}."
            _permute(state, prefix + "conv1.weight", 1, stream)
            if isinstance(block.shortcut, PaddedIdentity):
                stream = _padded_stream(stream, block.shortcut)
            elif isinstance(block.shortcut, nn.Sequential):  # a projection starts a fresh order
                _permute(state, prefix + "shortcut.conv.weight", 1, stream)
                stream = torch.arange(block.shortcut.conv.out_channels)
            for name in STREAM_OUTPUTS:
                _permute(state, prefix + name, 0, stream)
    _permute(state, "fc.weight", 1, stream)
    return state


def _permute(state: dict, key: str, dim: int, order: torch.Tensor) -> None:
    if key in state and not torch.equal(order, torch.arange(len(order))):
        state[key] = state[key].index_select(dim, order)
