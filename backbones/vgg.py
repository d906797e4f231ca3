"""VGG (Simonyan & Zisserman), the paper's reference and Faster R-CNN baseline.

Laid out as stem (conv1 block) and stages (conv2..conv5 blocks, each opening with the previous
block's max pool), so features are taken before each pool: c1..c5 at stride 1..16, c5 = conv5_3.
The classifier keeps the paper's names fc6 and fc7, which detection reuses as its box head.
"""

from collections import OrderedDict

import torch
from torch import nn

from .base import Backbone
from .norm import is_norm, make_norm

VGG_CONVS_PER_STAGE = {
    "vgg11": (1, 1, 2, 2, 2),
    "vgg13": (2, 2, 2, 2, 2),
    "vgg16": (2, 2, 3, 3, 3),
    "vgg19": (2, 2, 4, 4, 4),
}
VGG_WIDTHS = (64, 128, 256, 512, 512)


def conv_block(in_channels: int, width: int, num_convs: int, norm: str | None, pool: bool):
    layers = [nn.MaxPool2d(2, 2)] if pool else []
    for _ in range(num_convs):
        layers.append(nn.Conv2d(in_channels, width, 3, padding=1))
        if norm is not None:
            layers.append(make_norm(norm, width))
        layers.append(nn.ReLU(inplace=True))
        in_channels = width
    return nn.Sequential(*layers)


class VGG(Backbone):
    def __init__(self, convs_per_stage, *, num_classes=1000, norm: str | None = None, dropout=0.5,
                 widths=VGG_WIDTHS, fc_width: int = 4096):
        """`widths` (per block) and `fc_width` (fc6, fc7) are the paper's by default; other values
        make VGG-style nets of your own (`register_backbone(..., family="vgg")`)."""
        super().__init__()
        self.config = dict(convs_per_stage=convs_per_stage, norm=norm, dropout=dropout)
        blocks, in_channels = [], 3
        for index, (num_convs, width) in enumerate(zip(convs_per_stage, widths)):
            blocks.append(conv_block(in_channels, width, num_convs, norm, pool=index > 0))
            in_channels = width
        self.stem, self.stages = blocks[0], nn.ModuleList(blocks[1:])
        self.feature_info = [
            {"name": f"c{i + 1}", "channels": w, "stride": 2**i} for i, w in enumerate(widths)
        ]
        self.pool5 = nn.MaxPool2d(2, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(7)
        self.fc6 = nn.Linear(widths[-1] * 7 * 7, fc_width)
        self.fc7 = nn.Linear(fc_width, fc_width)
        self.fc = nn.Linear(fc_width, num_classes)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
            elif is_norm(module) and getattr(module, "weight", None) is not None:
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        features = OrderedDict(c1=self.stem(x))
        x = features["c1"]
        for info, stage in zip(self.feature_info[1:], self.stages):
            x = stage(x)
            features[info["name"]] = x
        return features

    def fc67(self, x: torch.Tensor) -> torch.Tensor:
        """fc6 and fc7 on pooled 7x7 maps: the classifier body, and detection's box head."""
        x = self.dropout(self.relu(self.fc6(torch.flatten(x, 1))))
        return self.dropout(self.relu(self.fc7(x)))

    def forward_head(self, features) -> torch.Tensor:
        return self.fc(self.fc67(self.avgpool(self.pool5(features["c5"]))))

    def remap_state_dict(self, state_dict: dict) -> dict:
        """torchvision's flat `features.<i>` and `classifier.{0,3,6}` to stem/stages and fc6/fc7/fc."""
        layer_names = [f"stem.{i}" for i in range(len(self.stem))] + [
            f"stages.{s}.{i}" for s, stage in enumerate(self.stages) for i in range(len(stage))
        ]
        renames = {f"features.{i}.": f"{name}." for i, name in enumerate(layer_names)}
        renames.update({"classifier.0.": "fc6.", "classifier.3.": "fc7.", "classifier.6.": "fc."})
        remapped = {}
        for key, value in state_dict.items():
            prefix, _, param = key.rpartition(".")
            remapped[renames.get(prefix + ".", prefix + ".") + param] = value
        return remapped
