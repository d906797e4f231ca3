"""Semantic segmentation: FCN and DeepLabV3 (torchvision's) on registry backbones, mIoU."""

from . import spec  # noqa: F401  registers the task
from .metrics import confusion_matrices, confusion_matrix, segmentation_metrics
from .model import build_segmenter, load_segmenter_weights
from .train import load_segmentation_config, train_segmenter

__all__ = ["build_segmenter", "confusion_matrices", "confusion_matrix", "load_segmentation_config",
           "load_segmenter_weights", "segmentation_metrics", "train_segmenter"]
