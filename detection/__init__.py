"""Faster R-CNN and Mask R-CNN (torchvision's) on any registry backbone: the paper's C4 and VGG-16
designs, FPN."""

from . import spec  # noqa: F401  registers the task
from .model import build_faster_rcnn, build_mask_rcnn, load_detector_weights
from .train import build_detector, load_detection_config, train_detector

__all__ = ["build_detector", "build_faster_rcnn", "build_mask_rcnn", "load_detection_config",
           "load_detector_weights", "train_detector"]
