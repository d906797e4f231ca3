"""Albumentations for detection: horizontal flip (and optional colour jitter) with boxes.

Resizing to the shorter side (600 px in the paper, 800 for FPN) with a max size, and multi-scale
training, are done by torchvision's GeneralizedRCNNTransform inside the model (`min_size`,
`max_size`), which also maps detections back to the original image: evaluation needs no scale
bookkeeping, and inference on a raw image is one call.
"""

import albumentations as A


def build_detection_transform(train: bool, flip: bool = True, color_jitter: float = 0.0):
    """The training augmentation, or None where there is nothing to do (evaluation)."""
    steps = []
    if train and flip:
        steps.append(A.HorizontalFlip(p=0.5))
    if train and color_jitter:
        steps.append(A.ColorJitter(color_jitter, color_jitter, color_jitter, 0.0))
    if not steps:
        return None
    return A.Compose(steps, bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"],
                                                      clip=True))
