"""Semantic segmentation data: PASCAL VOC 2012 `SegmentationClass`, a plain images + masks
folder, and COCO with VOC's classes (segmentation/coco.py); albumentations moves image and mask
together (masks with nearest-neighbour).

A mask is a PNG of class indices (VOC's are palette images: the palette index is the class),
255 = void / ignored. A mask of another size than its image, an RGB mask, or a label beyond the
classes is an error naming the file(s), or a counted, reported skip with `on_bad_image=skip`.
"""

from dataclasses import dataclass
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2
from PIL import Image
from torch.utils.data import Dataset

from backbones.metadata import IMAGENET_INPUT
from engine.data import (
    IMAGE_EXTENSIONS,
    BadImageError,
    BadSample,
    decode_image,
    report_dropped,
    sample_seed,
    seed_transform,
)

from .metrics import IGNORE_INDEX

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)
IMAGENET_MEAN, IMAGENET_STD = tuple(IMAGENET_INPUT["mean"]), tuple(IMAGENET_INPUT["std"])


@dataclass(frozen=True)
class Pair:
    image: Path
    mask: Path  # a PNG of class indices, or an object whose render() draws them (COCO's)


def voc_pairs(root: str | Path, split: str) -> list[Pair]:
    """The ids of VOC2012's `ImageSets/Segmentation/<split>.txt`: JPEGImages/<id>.jpg with
    SegmentationClass/<id>.png."""
    root = Path(root)
    listing = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not listing.is_file():
        raise FileNotFoundError(f"VOC split list not found: {listing}")
    ids = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    return [Pair(root / "JPEGImages" / f"{i}.jpg", root / "SegmentationClass" / f"{i}.png") for i in ids]


def folder_pairs(root: str | Path) -> list[Pair]:
    """`root/images/<name>.<ext>` with `root/masks/<name>.png`; an image without a mask is an error."""
    root = Path(root)
    images = sorted(p for p in (root / "images").glob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not images:
        raise FileNotFoundError(f"no images in {root / 'images'}")
    pairs = [Pair(p, root / "masks" / f"{p.stem}.png") for p in images]
    missing = [str(p.mask) for p in pairs if not p.mask.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} images have no mask, e.g. {missing[0]}")
    return pairs


def read_mask(path: Path, num_classes: int) -> np.ndarray:
    """HxW uint8 class indices; 255 stays void."""
    try:
        with Image.open(path) as mask:
            if mask.mode not in ("P", "L"):
                raise BadImageError(f"mask {path} is a {mask.mode} image; masks hold class indices "
                                    f"(a palette or greyscale PNG)")
            labels = np.array(mask)
    except (OSError, ValueError) as error:
        if isinstance(error, BadImageError):
            raise
        raise BadImageError(f"cannot read mask {path}: {error}") from error
    bad = labels[(labels >= num_classes) & (labels != IGNORE_INDEX)]
    if bad.size:
        label = int(bad[0])
        raise BadImageError(f"mask {path} holds label {label}; the config names {num_classes} classes "
                            f"(0..{num_classes - 1}, and {IGNORE_INDEX} = void): name every class the "
                            f"masks hold with data.classes=[background, ...] (at least {label + 1} names)")
    return labels


def pair_labels(pair: Pair, num_classes: int) -> np.ndarray:
    """The pair's mask: read from its PNG, or rendered from annotations."""
    return pair.mask.render() if hasattr(pair.mask, "render") else read_mask(pair.mask, num_classes)


def load_pair(pair: Pair, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    image, mask = decode_image(pair.image), pair_labels(pair, num_classes)
    _check_same_size(pair, (image.shape[1], image.shape[0]), mask)
    return image, mask


def _check_same_size(pair: Pair, image_size: tuple[int, int], mask: np.ndarray) -> None:
    if image_size != (mask.shape[1], mask.shape[0]):
        raise BadImageError(f"mask {pair.mask} is {mask.shape[1]}x{mask.shape[0]} but image "
                            f"{pair.image} is {image_size[0]}x{image_size[1]}")


def build_transform(train: bool, crop_size: int = 480, scale_range=(0.5, 2.0), flip: bool = True,
                    base_size: int | None = None, eval_size: int | None = None):
    """Training: random rescale (of the image's size, or of the shorter side around `base_size`),
    pad (image 0, mask void) to the crop, random crop, flip. Evaluation: the image as it is, or its
    shorter side resized to `eval_size` (the mask by nearest neighbour)."""
    low, high = scale_range
    if train and base_size:  # torchvision's RandomResize(min, max): a whole number, both ends in
        sides = list(range(int(low * base_size), int(high * base_size) + 1))
        steps = [A.SmallestMaxSize(max_size=sides, p=1.0)]
    elif train:
        steps = [A.RandomScale(scale_limit=(low - 1, high - 1), p=1.0)]
    else:
        steps = [A.SmallestMaxSize(max_size=eval_size, p=1.0)] if eval_size else []
    if train:
        steps += [
            A.PadIfNeeded(crop_size, crop_size, border_mode=cv2.BORDER_CONSTANT, fill=0,
                          fill_mask=IGNORE_INDEX),
            A.RandomCrop(crop_size, crop_size),
        ] + ([A.HorizontalFlip()] if flip else [])
    return A.Compose(steps + [A.Normalize(IMAGENET_MEAN, IMAGENET_STD), ToTensorV2()])


class SegmentationDataset(Dataset):
    """(image float CxHxW, mask int64 HxW) pairs, augmented per (seed, epoch, index)."""

    def __init__(self, pairs: list[Pair], classes, transform, *, seed: int = 0, on_bad_image: str = "error"):
        self.pairs, self.classes, self.transform = list(pairs), list(classes), transform
        self.seed, self.on_bad_image, self.epoch = seed, on_bad_image, 0

    def __len__(self) -> int:
        return len(self.pairs)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int):
        pair = self.pairs[index]
        try:
            image, mask = load_pair(pair, len(self.classes))
        except BadImageError as error:
            if self.on_bad_image == "error":
                raise
            return BadSample(str(pair.image), str(error))
        seed_transform(self.transform, sample_seed(self.seed, self.epoch, index))
        out = self.transform(image=image, mask=mask)
        return out["image"], torch.as_tensor(out["mask"], dtype=torch.long)

    def checked(self, what: str) -> "SegmentationDataset":
        """This set without the pairs that cannot be used (every pair read once, before training),
        refused or reported by `on_bad_image`."""
        bad = {}
        for i, pair in enumerate(self.pairs):
            try:
                _check_pair(pair, len(self.classes))
            except BadImageError as error:
                bad[i] = str(error)
        report_dropped(bad, what, self.on_bad_image, "data.on_bad_sample")
        keep = [p for i, p in enumerate(self.pairs) if i not in bad]
        subset = SegmentationDataset(keep, self.classes, self.transform, seed=self.seed,
                                     on_bad_image=self.on_bad_image)
        subset.skipped_files = [str(self.pairs[i].image) for i in sorted(bad)]
        return subset


def _check_pair(pair: Pair, num_classes: int) -> None:
    """Image header readable, mask readable and within the classes, sizes equal."""
    try:
        with Image.open(pair.image) as image:
            size = image.size
    except (OSError, ValueError) as error:
        raise BadImageError(f"cannot read image {pair.image}: {error}") from error
    _check_same_size(pair, size, pair_labels(pair, num_classes))
