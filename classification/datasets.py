"""Train and validation datasets from a config's `data` section."""

from pathlib import Path

import torch
from omegaconf import OmegaConf

from engine.config import check_choice

from .batch_augment import AsStored, CifarCropFlip
from .data import (
    ClassificationDataset,
    SyntheticImages,
    cifar10_batches,
    decode_all,
    scan_image_folder,
)
from .device_decode import ImageNetTrainJpeg
from .imagenet_input import ImageNetTestCrop, ImageNetTrainCrop, ImageNetWholeImage
from .resident import ResidentSet
from .timm_input import TimmCrop, eval_pipeline, train_pipeline
from .transforms import PRESETS, RESIZING, build_transform

KINDS = ("imagefolder", "cifar10", "synthetic")


def build_transforms(data) -> tuple[dict, dict]:
    """The keyword arguments (`transform` or `uint8_transform`) of the train and test datasets.

    ImageNet always takes the uint8 path (`imagenet_input`: fast decode and crop in the loader,
    lighting and normalisation on the device), and so does timm's input (`timm_input`); CIFAR and
    `none` take it with `data.batch_augment`, and albumentations otherwise."""
    if data.multi_scale_test and data.preset != "imagenet":
        raise ValueError(f"data.multi_scale_test={list(data.multi_scale_test)} is ImageNet's "
                         f"fully-convolutional testing: it needs data.preset=imagenet, not {data.preset!r}")
    if data.preset == "imagenet":
        test = ImageNetTestCrop(size=256 if data.ten_crop else 224)  # 10-crop cuts 224s later
        if data.multi_scale_test:
            test = ImageNetWholeImage(side=max(data.multi_scale_test))
        train = ImageNetTrainJpeg() if data.decode_on_device else ImageNetTrainCrop()
        return {"uint8_transform": train}, {"uint8_transform": test}
    if data.decode_on_device:
        raise ValueError(f"data.decode_on_device decodes ImageNet's training JPEGs on the device: it "
                         f"needs data.preset=imagenet, not {data.preset!r}")
    if data.preset == "timm":
        return ({"uint8_transform": TimmCrop(train_pipeline(data.timm))},
                {"uint8_transform": TimmCrop(eval_pipeline(data.timm))})
    if data.batch_augment:
        train = CifarCropFlip() if data.preset == "cifar" else AsStored()
        return {"uint8_transform": train}, {"uint8_transform": AsStored()}
    return ({"transform": build_transform(data.preset, train=True)},
            {"transform": build_transform(data.preset, train=False)})


def test_input_size(data) -> int:
    """The side of the square image the test transform gives the model (ImageNet's centre crop,
    timm's `test_size`, or the stored size of CIFAR-style sets)."""
    return {"imagenet": 224, "timm": data.timm.test_size}.get(data.preset, data.image_size)


def build_datasets(data, seed: int = 0) -> tuple[ClassificationDataset, ClassificationDataset]:
    """The training and validation sets; with `data.resident`, the training set held whole on the
    training device (`resident`)."""
    train, val = _build_datasets(data, seed)
    if not data.resident:
        return train, val
    if not (data.batch_augment and data.preset == "cifar"):
        raise ValueError(f"data.resident draws CIFAR's crops and flips per batch on the device: it "
                         f"needs data.preset=cifar and data.batch_augment=true (got preset="
                         f"{data.preset!r}, batch_augment={data.batch_augment})")
    return ResidentSet(train), val


def _build_datasets(data, seed: int) -> tuple[ClassificationDataset, ClassificationDataset]:
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


def training_set_as_tested(data, seed: int = 0) -> ClassificationDataset:
    """The training images (without a held-out part) under the single-crop test transform: what
    the paper's BN statistics are computed on."""
    _, test_tf = build_transforms(OmegaConf.merge(data, {"ten_crop": False, "multi_scale_test": []}))
    if data.kind == "synthetic":
        return SyntheticImages(data.num_train, data.image_size, data.num_classes, seed=seed, **test_tf)
    train = _read(data, data.train_split, train=True, transform=test_tf, seed=seed)
    if data.holdout:
        keep, _ = _holdout_split(len(train), data.holdout, seed)
        return train.subset(keep, **test_tf)
    return train


def _read(data, split: str, train: bool, transform: dict, seed: int) -> ClassificationDataset:
    if data.kind == "cifar10":
        images, labels, classes = cifar10_batches(data.root, train=train)
        images = list(images)
    else:
        images, labels, classes = scan_image_folder(Path(data.root) / split)
        if data.in_memory:
            images = decode_all(images, data.on_bad_sample)
    dataset = ClassificationDataset(images, labels, classes, seed=seed, on_bad_image=data.on_bad_sample,
                                    **transform)
    where = data.root if data.kind == "cifar10" else Path(data.root) / split
    checked = dataset.checked(f"{split} split ({where})", same_size=data.preset not in RESIZING)
    if not len(checked):
        raise ValueError(f"no usable images in {where}")
    return checked


def _hold_out(train: ClassificationDataset, holdout: int, val_transform: dict, seed: int):
    """The paper's 45k/5k split: a seeded random `holdout` images validate, the rest train."""
    keep, held = _holdout_split(len(train), holdout, seed)
    return (train.subset(keep, train.transform, train.uint8_transform),
            train.subset(held, **val_transform))


def _holdout_split(size: int, holdout: int, seed: int) -> tuple[list[int], list[int]]:
    """(kept, held out) indices: a seeded random `holdout` of `size`."""
    if not 0 < holdout < size:
        raise ValueError(f"data.holdout={holdout} must be between 0 and {size}")
    order = torch.randperm(size, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(order[holdout:]), sorted(order[:holdout])
