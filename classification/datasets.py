"""Train and validation datasets from a config's `data` section."""

from pathlib import Path

import torch

from engine.config import check_choice

from .batch_augment import AsStored, CifarCropFlip
from .data import (
    ClassificationDataset,
    SyntheticImages,
    cifar10_batches,
    decode_all,
    scan_image_folder,
)
from .imagenet_input import ImageNetTestCrop, ImageNetTrainCrop
from .transforms import PRESETS, build_transform

KINDS = ("imagefolder", "cifar10", "synthetic")


def build_transforms(data) -> tuple[dict, dict]:
    """The keyword arguments (`transform` or `uint8_transform`) of the train and test datasets.

    ImageNet always takes the uint8 path (`imagenet_input`: fast decode and crop in the loader,
    lighting and normalisation on the device); CIFAR and `none` take it with `data.batch_augment`,
    and albumentations otherwise."""
    if data.preset == "imagenet":
        test = ImageNetTestCrop(size=256 if data.ten_crop else 224)  # 10-crop cuts 224s later
        return {"uint8_transform": ImageNetTrainCrop()}, {"uint8_transform": test}
    if data.batch_augment:
        train = CifarCropFlip() if data.preset == "cifar" else AsStored()
        return {"uint8_transform": train}, {"uint8_transform": AsStored()}
    return ({"transform": build_transform(data.preset, train=True)},
            {"transform": build_transform(data.preset, train=False)})


def build_datasets(data, seed: int = 0) -> tuple[ClassificationDataset, ClassificationDataset]:
    check_choice("data.kind", data.kind, KINDS)
    check_choice("data.preset", data.preset, PRESETS)
    train_tf, val_tf = build_transforms(data)
    if data.kind == "synthetic":
        return (
            SyntheticImages(data.num_train, data.image_size, data.num_classes, seed=seed, **train_tf),
            SyntheticImages(data.num_val, data.image_size, data.num_classes, seed=seed, split_seed=1,
                            **val_tf),
        )
    train = _read(data, data.train_split, train=True, transform=train_tf, seed=seed)
    if data.holdout:
        return _hold_out(train, data.holdout, val_tf, seed)
    val = _read(data, data.val_split, train=False, transform=val_tf, seed=seed)
    if val.classes != train.classes:  # labels are class indices: they must mean the same
        raise ValueError(
            f"the classes of {data.val_split!r} differ from those of {data.train_split!r} under "
            f"{data.root}: only in train {sorted(set(train.classes) - set(val.classes))}, "
            f"only in val {sorted(set(val.classes) - set(train.classes))}"
        )
    return train, val


def _read(data, split: str, train: bool, transform: dict, seed: int) -> ClassificationDataset:
    if data.kind == "cifar10":
        images, labels, classes = cifar10_batches(data.root, train=train)
        images = list(images)
    else:
        images, labels, classes = scan_image_folder(Path(data.root) / split)
        if data.in_memory:
            images = decode_all(images, data.on_bad_image)
    dataset = ClassificationDataset(images, labels, classes, seed=seed, on_bad_image=data.on_bad_image,
                                    **transform)
    where = data.root if data.kind == "cifar10" else Path(data.root) / split
    checked = dataset.checked(f"{split} split ({where})", same_size=data.preset != "imagenet")
    if not len(checked):
        raise ValueError(f"no usable images in {where}")
    return checked


def _hold_out(train: ClassificationDataset, holdout: int, val_transform: dict, seed: int):
    """The paper's 45k/5k split: a seeded random `holdout` images validate, the rest train."""
    if not 0 < holdout < len(train):
        raise ValueError(f"data.holdout={holdout} must be between 0 and {len(train)}")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed)).tolist()
    keep, held = sorted(order[holdout:]), sorted(order[:holdout])
    return (train.subset(keep, train.transform, train.uint8_transform),
            train.subset(held, **val_transform))
