"""What this project adds to torchvision's Faster R-CNN: backbone bodies and box heads.

- C4 (the paper's ResNet design, Appendix A): stem..conv4_x give the shared stride-16 map; the
  whole conv5_x stage and global average pooling run per region as the box head. Generally: all
  stages but the last shared, the last per region (a CIFAR net: stem..c3 at stride 2, c4).
- VGG (the paper's baseline): conv1_1..conv5_3 (stride 16, no pool5) shared; 7x7 RoI pooling,
  then fc6 and fc7 per region.
- FPN: torchvision's feature pyramid over c2..c5 of any backbone.
"""

from collections import OrderedDict

import torch
from torch import nn
from torchvision.ops import FeaturePyramidNetwork, roi_pool
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from backbones.metadata import inherit_spec

SHARED_MAP = "c4"  # the single feature map's name for the C4 and VGG designs


class SharedMapBody(nn.Module):
    """The stem and the first `num_stages` stages: the one map the RPN and the box head share
    (ResNet C4: stem..conv4_x at stride 16; VGG: conv1_1..conv5_3, without pool5)."""

    def __init__(self, backbone, num_stages: int):
        super().__init__()
        inherit_spec(self, backbone)  # its weights files say which backbone they hold
        self.stem = backbone.stem
        self.stages = nn.ModuleList(list(backbone.stages)[:num_stages])
        # feature_info ends with the last stage's entry (VGG's also has the stem's, c1, first)
        last = backbone.feature_info[num_stages - len(backbone.stages) - 1]
        self.out_channels, self.stride = last["channels"], last["stride"]

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return OrderedDict([(SHARED_MAP, x)])


class C5Head(nn.Module):
    """The last stage (conv5_x) and global average pooling, per region: a 2048-d (bottleneck)
    representation. C4 Mask R-CNN calls the two halves itself: the mask branch reads the map."""

    def __init__(self, backbone):
        super().__init__()
        self.stage = backbone.stages[-1]
        self.out_channels = backbone.feature_info[-1]["channels"]

    @staticmethod
    def pool(maps: torch.Tensor) -> torch.Tensor:
        return maps.mean(dim=(2, 3))

    def forward(self, regions: torch.Tensor) -> torch.Tensor:
        return self.pool(self.stage(regions))


class VGGHead(nn.Module):
    """fc6 and fc7 of the VGG classifier (with their ImageNet weights), per 7x7 pooled region."""

    def __init__(self, backbone):
        super().__init__()
        self.fc6, self.fc7 = backbone.fc6, backbone.fc7
        self.relu, self.dropout = nn.ReLU(inplace=True), nn.Dropout(backbone.config["dropout"])
        self.out_channels = self.fc7.out_features

    def forward(self, regions: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.relu(self.fc6(torch.flatten(regions, 1))))
        return self.dropout(self.relu(self.fc7(x)))


class FPNBody(nn.Module):
    """A feature pyramid (P2..P5 and a max-pooled P6) over c2..c5 of any registry backbone, or
    over the levels it has (a CIFAR net: c2..c4, then the pooled level).

    Output names "0".."3" and "pool" are torchvision's, so its anchors, RoI pooling and
    `fasterrcnn_resnet50_fpn` / `maskrcnn_resnet50_fpn` weights apply unchanged.
    """

    LEVELS = ("c2", "c3", "c4", "c5")

    def __init__(self, backbone, out_channels: int = 256):
        super().__init__()
        infos = {f["name"]: f for f in backbone.feature_info}
        self.levels = [name for name in self.LEVELS if name in infos]
        if len(self.levels) < 2 or self.levels != list(self.LEVELS[: len(self.levels)]):
            raise ValueError(f"head='fpn' needs features c2, c3 and on (up to c5); the backbone has "
                             f"{sorted(infos)}")
        self.body = backbone
        self.fpn = FeaturePyramidNetwork([infos[n]["channels"] for n in self.levels], out_channels,
                                         extra_blocks=LastLevelMaxPool())
        self.out_channels = out_channels
        self.featmap_names = [str(i) for i in range(len(self.levels))]  # RoI pooling reads these

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        features = self.body.forward_features(x)
        return self.fpn(OrderedDict((str(i), features[n]) for i, n in enumerate(self.levels)))


class RoIPool(nn.Module):
    """Fast R-CNN's RoI max pooling on one feature map, with MultiScaleRoIAlign's interface."""

    def __init__(self, featmap_name: str, output_size: int, spatial_scale: float):
        super().__init__()
        self.featmap_name, self.output_size, self.spatial_scale = featmap_name, output_size, spatial_scale

    def forward(self, features: dict, proposals: list, image_shapes: list) -> torch.Tensor:
        return roi_pool(features[self.featmap_name], proposals, self.output_size, self.spatial_scale)
