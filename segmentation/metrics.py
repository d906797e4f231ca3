"""Semantic segmentation metrics from one confusion matrix: per-class IoU, mIoU, pixel accuracy.

Pixels labelled `ignore_index` (VOC's 255: object borders and "void") count nowhere. A class
that appears neither in the labels nor in the predictions has no IoU (NaN) and is left out of
the mean, so a validation subset without some class is not scored 0 on it.
"""

import math

import torch

IGNORE_INDEX = 255


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                     ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """(K, K) int64 counts: row = true class, column = predicted class."""
    keep = target != ignore_index
    if (target[keep] >= num_classes).any() or (target[keep] < 0).any():
        bad = target[keep][(target[keep] >= num_classes) | (target[keep] < 0)][0].item()
        raise ValueError(f"label {bad} is outside 0..{num_classes - 1} (and not {ignore_index})")
    index = target[keep].long() * num_classes + pred[keep].long()
    return torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def segmentation_metrics(matrix: torch.Tensor, class_names: list[str] | None = None) -> dict:
    """mIoU, pixel accuracy, mean class accuracy, and each class's IoU, from a confusion matrix."""
    matrix = matrix.double()
    true_positive = matrix.diag()
    union = matrix.sum(0) + matrix.sum(1) - true_positive
    iou = true_positive / union  # NaN where the class is absent from labels and predictions
    per_class = true_positive / matrix.sum(1)
    names = class_names or [str(i) for i in range(len(iou))]
    metrics = {
        "mIoU": iou.nanmean().item(),
        "pixel_accuracy": (true_positive.sum() / matrix.sum().clamp_min(1)).item(),
        "mean_class_accuracy": per_class.nanmean().item(),
        "pixels": int(matrix.sum().item()),
    }
    metrics.update({f"IoU/{name}": None if math.isnan(value) else value  # JSON has no NaN
                    for name, value in zip(names, iou.tolist())})
    return metrics
