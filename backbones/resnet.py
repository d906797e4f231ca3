"""ResNets and their plain counterparts: Table 1 (ImageNet) and Section 4.2 (CIFAR-10) as data.

One `ResNet` class builds every net of the paper: a stem, then stages of blocks given by
(blocks per stage, width, stride), global average pooling and a fully connected classifier.
A plain net is the same stack built with `shortcut=None`.
"""

import re
from collections import OrderedDict

import torch
from torch import nn

from .base import Backbone
from .blocks import BLOCKS, BasicBlock, Bottleneck
from .community import is_community_cifar, remap_community_cifar
from .errors import InvalidOptionError
from .norm import is_norm, make_norm


def imagenet_stem(norm: str) -> nn.Sequential:
    """7x7/2 conv 64, BN, ReLU, 3x3/2 max pool: stride 4."""
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False),
            bn=make_norm(norm, 64),
            relu=nn.ReLU(inplace=True),
            pool=nn.MaxPool2d(3, stride=2, padding=1),
        )
    )


def cifar_stem(norm: str) -> nn.Sequential:
    """The CIFAR nets' first layer: 3x3 conv with 16 filters, BN, ReLU; stride 1."""
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(3, 16, 3, padding=1, bias=False),
            bn=make_norm(norm, 16),
            relu=nn.ReLU(inplace=True),
        )
    )


def make_stage(block, in_channels, width, num_blocks, stride, dilation=1, previous_dilation=1,
               **block_options) -> nn.Sequential:
    """A stage: the first block changes stride and width, the others keep them. A dilated stage
    (stride 1 where the paper strides) enters with the previous stage's dilation."""
    blocks = []
    for index in range(num_blocks):
        first = index == 0
        blocks.append(block(in_channels, width, stride if first else 1, dilation=dilation,
                            first_dilation=previous_dilation if first else dilation, **block_options))
        in_channels = width * block.expansion
    return nn.Sequential(*blocks)


def stage_strides(stem_stride: int, strides: list[int], output_stride: int | None) -> list[tuple]:
    """(stride, dilation) of each stage: the paper's strides, with those that would take the
    feature stride past `output_stride` replaced by dilation (torchvision's
    `replace_stride_with_dilation`). output_stride: None, or the stride of a stage after the first."""
    natural, total = [], stem_stride
    for stride in strides:
        total *= stride
        natural.append(total)
    if output_stride is not None and output_stride not in natural[1:]:
        raise InvalidOptionError(f"output_stride={output_stride} is not one of this net's stage "
                                 f"strides {natural[1:]} (or None)")
    plan, total, dilation = [], stem_stride, 1
    for stride in strides:
        if output_stride is not None and total * stride > output_stride:
            dilation *= stride
            plan.append((1, dilation))
        else:
            total *= stride
            plan.append((stride, dilation))
    return plan


class ResNet(Backbone):
    """Stem, stages of residual (or plain) blocks, global average pool, fc.

    `stages` is given as (blocks, width, stride) per stage, so Table 1 and the 6n+2 CIFAR nets
    are rows of data, not code paths.
    """

    def __init__(
        self,
        block: str,
        stages: list[tuple[int, int, int]],
        *,
        stem: str = "imagenet",
        num_classes: int = 1000,
        shortcut: str | None = "B",
        norm: str = "bn",
        stride_in_1x1: bool = False,
        zero_init_residual: bool = False,
        output_stride: int | None = None,
    ):
        super().__init__()
        if zero_init_residual and shortcut is None:
            raise InvalidOptionError("zero_init_residual=True zeroes the last BN of each residual "
                                     "branch; a plain net (shortcut=None) has no residual branch: its "
                                     "blocks would output zero")
        block_cls = BLOCKS[block]
        self.stem = imagenet_stem(norm) if stem == "imagenet" else cifar_stem(norm)
        in_channels, stride = self.stem.conv.out_channels, 4 if stem == "imagenet" else 1
        plan = stage_strides(stride, [s for _, _, s in stages], output_stride)
        self.stages = nn.ModuleList()
        self.feature_info = []
        dilation = 1
        for index, ((num_blocks, width, _), (stage_stride, stage_dilation)) in enumerate(zip(stages, plan)):
            self.stages.append(
                make_stage(
                    block_cls, in_channels, width, num_blocks, stage_stride, stage_dilation, dilation,
                    shortcut=shortcut, norm=norm, stride_in_1x1=stride_in_1x1,
                )
            )
            dilation = stage_dilation
            in_channels, stride = width * block_cls.expansion, stride * stage_stride
            self.feature_info.append({"name": f"c{index + 2}", "channels": in_channels, "stride": stride})
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)
        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual: bool) -> None:
        """He initialisation (the paper's ref. [13]); optionally zero each residual branch's last BN."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif is_norm(module) and getattr(module, "weight", None) is not None:
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(module.last_norm.weight)

    def forward_features(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        features = OrderedDict()
        x = self.stem(x)
        for info, stage in zip(self.feature_info, self.stages):
            x = stage(x)
            features[info["name"]] = x
        return features

    def forward_head(self, features) -> torch.Tensor:
        last = next(reversed(features.values()))
        return self.fc(torch.flatten(self.pool(last), 1))

    def remap_state_dict(self, state_dict: dict) -> dict:
        """torchvision / timm ResNet names (conv1, bn1, layerN, downsample) to ours; the community
        CIFAR layout (a `linear` classifier) renamed and its symmetric padding permuted."""
        if is_community_cifar(state_dict):
            return remap_community_cifar(state_dict, self)
        return {_torchvision_to_ours(key): value for key, value in state_dict.items()}


_RENAMES = [
    (re.compile(r"^conv1\."), "stem.conv."),
    (re.compile(r"^bn1\."), "stem.bn."),
    (re.compile(r"\.downsample\.0\."), ".shortcut.conv."),
    (re.compile(r"\.downsample\.1\."), ".shortcut.bn."),
    (re.compile(r"^layer(\d)\."), lambda m: f"stages.{int(m.group(1)) - 1}."),
]


def _torchvision_to_ours(key: str) -> str:
    for pattern, replacement in _RENAMES:
        key = pattern.sub(replacement, key)
    return key
