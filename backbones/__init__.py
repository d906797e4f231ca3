"""Plain and residual backbones exactly as He et al. (CVPR 2016) define them.

    >>> from backbones import create_backbone, list_backbones
    >>> model = create_backbone("resnet50", stride_in_1x1=True)   # the paper's original bottleneck
    >>> features = model.forward_features(images)                 # {"c2": ..., "c5": ...}
"""

from . import zoo  # noqa: F401  (registers the paper's nets)
from .base import Backbone
from .counting import count_macs, count_params
from .errors import (
    BackboneError,
    InvalidOptionError,
    UnknownBackboneError,
    UnsafeCheckpointError,
    WeightsMismatchError,
)
from .factory import create_backbone
from .registry import (
    backbone_family,
    backbone_input_size,
    backbone_options,
    list_backbones,
    register_backbone,
)
from .weights import load_weights, read_state_file, save_weights

__all__ = [
    "Backbone",
    "BackboneError",
    "InvalidOptionError",
    "UnknownBackboneError",
    "UnsafeCheckpointError",
    "WeightsMismatchError",
    "backbone_family",
    "backbone_input_size",
    "backbone_options",
    "count_macs",
    "count_params",
    "create_backbone",
    "list_backbones",
    "load_weights",
    "read_state_file",
    "register_backbone",
    "save_weights",
]
