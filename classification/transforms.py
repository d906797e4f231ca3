"""Albumentations pipelines for the paper's two protocols.

ImageNet (Sec. 3.4): shorter side resized to a random size in [256, 480], random 224 crop,
horizontal flip, per-channel mean/std normalisation, AlexNet-style PCA colour augmentation;
test: shorter side 256, centre 224 crop (or a 256 square for 10-crop testing).
CIFAR-10 (Sec. 4.2): 4 pixels of zero padding on each side, random 32 crop, flip; test: the image.
"""

import albumentations as A
import cv2
from albumentations.pytorch import ToTensorV2

from engine.config import check_choice

PRESETS = ("cifar", "imagenet", "none")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def preset_mean_std(preset: str) -> tuple:
    check_choice("data.preset", preset, PRESETS)
    return (IMAGENET_MEAN, IMAGENET_STD) if preset == "imagenet" else (CIFAR_MEAN, CIFAR_STD)


def build_transform(preset: str, train: bool, ten_crop: bool = False) -> A.Compose:
    mean, std = preset_mean_std(preset)
    if preset == "imagenet":
        if train:
            steps = [
                A.SmallestMaxSize(max_size=list(range(256, 481))),
                A.RandomCrop(224, 224),
                A.HorizontalFlip(),
                A.FancyPCA(alpha=0.1),
            ]
        else:
            crop = 256 if ten_crop else 224  # 10-crop cuts 224 crops from the 256 square later
            steps = [A.SmallestMaxSize(max_size=256), A.CenterCrop(crop, crop)]
    else:
        steps = []
        if preset == "cifar" and train:
            steps = [
                A.PadIfNeeded(40, 40, border_mode=cv2.BORDER_CONSTANT, fill=0),
                A.RandomCrop(32, 32),
                A.HorizontalFlip(),
            ]
    return A.Compose(steps + [A.Normalize(mean=mean, std=std), ToTensorV2()])
