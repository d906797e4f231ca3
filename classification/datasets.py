"""Train and validation datasets from a config's `data` section."""

from pathlib import Path

import torch

from engine.config import check_choice

from .data import (
    ClassificationDataset,
    SyntheticImages,
    cifar10_batches,
    decode_all,
    scan_image_folder,
)
from .transforms import build_transform

KINDS = ("imagefolder", "cifar10", "synthetic")
BATCH_PRESETS = ("cifar", "none")  # fixed-size images: batches of them can be stacked raw


def build_datasets(data, seed: int = 0) -> tuple[ClassificationDataset, ClassificationDataset]:
    check_choice("data.kind", data.kind, KINDS)
    train_tf = build_transform(data.preset, train=True)
    val_tf = build_transform(data.preset, train=False, ten_crop=data.ten_crop)
    crop_flip = False
    if data.batch_augment:  # uint8 samples; augmented and normalised by the task, per batch
        check_choice("data.preset (with data.batch_augment)", data.preset, BATCH_PRESETS)
        train_tf = val_tf = None
        crop_flip = data.preset == "cifar"
    if data.kind == "synthetic":
        return (
            SyntheticImages(data.num_train, data.image_size, data.num_classes, train_tf, seed=seed,
                            crop_flip=crop_flip),
            SyntheticImages(data.num_val, data.image_size, data.num_classes, val_tf, seed=seed,
                            split_seed=1),
        )
    train = _read(data, data.train_split, train=True, transform=train_tf, seed=seed)
    train.crop_flip = crop_flip
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


def _read(data, split: str, train: bool, transform, seed: int) -> ClassificationDataset:
    if data.kind == "cifar10":
        images, labels, classes = cifar10_batches(data.root, train=train)
        images = list(images)
    else:
        images, labels, classes = scan_image_folder(Path(data.root) / split)
        if data.in_memory:
            images = decode_all(images, data.on_bad_image)
    dataset = ClassificationDataset(images, labels, classes, transform, seed=seed,
                                    on_bad_image=data.on_bad_image)
    where = data.root if data.kind == "cifar10" else Path(data.root) / split
    checked = dataset.checked(f"{split} split ({where})", same_size=data.preset != "imagenet")
    if not len(checked):
        raise ValueError(f"no usable images in {where}")
    return checked


def _hold_out(train: ClassificationDataset, holdout: int, val_transform, seed: int):
    """The paper's 45k/5k split: a seeded random `holdout` images validate, the rest train."""
    if not 0 < holdout < len(train):
        raise ValueError(f"data.holdout={holdout} must be between 0 and {len(train)}")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed)).tolist()
    keep, held = sorted(order[holdout:]), sorted(order[:holdout])
    return (train.subset(keep, train.transform, crop_flip=train.crop_flip),
            train.subset(held, val_transform))
