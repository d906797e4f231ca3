"""The contract every registry backbone keeps, whatever its family.

- `forward(x)` returns logits; `forward_features(x)` an ordered dict of stage outputs
  ("c2".."c5" for ImageNet nets) that detection and feature extraction consume;
- `feature_info`: one `{"name", "channels", "stride"}` per key of `forward_features`;
- `stem` and `stages` so detection can freeze by stage (detectron2's `freeze_at`);
- `remap_state_dict` turns a foreign (torchvision / timm) state dict into this model's names.
"""

from collections import OrderedDict

import torch
from torch import nn


class Backbone(nn.Module):
    feature_info: list[dict]
    config: dict
    classifier_patterns: tuple[str, ...] = ("fc.*",)  # state keys of the ImageNet classifier

    def forward_features(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        raise NotImplementedError

    def forward_head(self, features: "OrderedDict[str, torch.Tensor]") -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def output_shape(self) -> dict[str, dict]:
        """detectron2-style view of `feature_info`: name -> {"channels", "stride"}."""
        return {f["name"]: {"channels": f["channels"], "stride": f["stride"]} for f in self.feature_info}

    def remap_state_dict(self, state_dict: dict) -> dict:
        """Map a foreign state dict's keys to this model's; the default assumes they already match."""
        return dict(state_dict)
