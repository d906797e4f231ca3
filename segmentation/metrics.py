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
    return confusion_matrices(pred[None], target[None], num_classes, ignore_index)[0]


def confusion_matrices(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                       ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """(B, K, K) counts, one matrix per image of (B, H, W) maps, from a single bincount: ignored
    pixels go to one spare bin rather than being selected out (no copy of the kept pixels)."""
    target = target.long()
    bad = (target != ignore_index) & ((target >= num_classes) | (target < 0))
    if bad.any():
        raise ValueError(f"label {target[bad][0].item()} is outside 0..{num_classes - 1} "
                         f"(and not {ignore_index})")
    cells = num_classes * num_classes
    image = torch.arange(len(target), device=target.device).view(-1, *[1] * (target.dim() - 1))
    index = image * cells + target * num_classes + pred.long()
    index = torch.where(target == ignore_index, len(target) * cells, index)
    counts = torch.bincount(index.flatten(), minlength=len(target) * cells + 1)
    return counts[:-1].view(len(target), num_classes, num_classes)


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
