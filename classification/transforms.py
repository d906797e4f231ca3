"""Albumentations pipelines for CIFAR-sized images, and each preset's normalisation.

CIFAR-10 (Sec. 4.2): 4 pixels of zero padding on each side, random 32 crop, flip; test: the image.
The ImageNet protocol (Sec. 3.4) has its own uint8 path, `imagenet_input`; timm's, `timm_input`.
"""

import albumentations as A
import cv2
from albumentations.pytorch import ToTensorV2

from engine.config import check_choice

PRESETS = ("cifar", "imagenet", "timm", "none")
RESIZING = ("imagenet", "timm")  # presets whose test transform takes images of any size
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def preset_mean_std(preset: str) -> tuple:
    check_choice("data.preset", preset, PRESETS)
    return (IMAGENET_MEAN, IMAGENET_STD) if preset in RESIZING else (CIFAR_MEAN, CIFAR_STD)


def build_transform(preset: str, train: bool) -> A.Compose:
    """The `cifar` (augmented when training) or `none` pipeline, normalised to a float tensor."""
    check_choice("data.preset (albumentations)", preset, ("cifar", "none"))
    mean, std = preset_mean_std(preset)
    steps = []
    if preset == "cifar" and train:
        steps = [
            A.PadIfNeeded(40, 40, border_mode=cv2.BORDER_CONSTANT, fill=0),
            A.RandomCrop(32, 32),
            A.HorizontalFlip(),
        ]
    return A.Compose(steps + [A.Normalize(mean=mean, std=std), ToTensorV2()])
