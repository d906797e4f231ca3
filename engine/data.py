"""Data plumbing both tasks share: image decoding with bad-image reporting, a seeded per-epoch
sampler and the per-sample seed that makes random augmentation reproducible (and so resumable)
whatever the worker layout."""

import logging
import os
import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Sampler

from .logs import ProgressBar

log = logging.getLogger("engine")

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff"}


class EpochSampler(Sampler[int]):
    """A permutation of the dataset that depends only on (seed, epoch); in order if not shuffled."""

    def __init__(self, length: int, seed: int = 0, shuffle: bool = True):
        self.length, self.seed, self.shuffle, self.epoch = length, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        if not self.shuffle:
            return iter(range(self.length))
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.length, generator=generator).tolist())


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The augmentation seed of one sample in one epoch."""
    return (seed * 1_000_003 + epoch * 10_007 + index) % (2**31)


def seed_transform(compose, seed: int) -> None:
    """Seed an albumentations Compose and all its transforms with one shared pair of generators.

    `Compose.set_random_seed` builds two generators per transform; sharing one pair is ~2x
    faster per sample and just as reproducible.
    """
    numpy_rng, python_rng = np.random.default_rng(seed), random.Random(seed)
    stack = [compose]
    while stack:
        transform = stack.pop()
        transform.random_generator, transform.py_random = numpy_rng, python_rng
        stack.extend(getattr(transform, "transforms", []))


class BadImageError(OSError):
    """An image that cannot be decoded; the message names the file."""


@dataclass(frozen=True)
class BadSample:
    path: str
    reason: str


def to_rgb8(image: Image.Image) -> np.ndarray:
    """RGB uint8 HxWx3 of any PIL mode: 16-bit and 32-bit greyscale scaled to 8 bits (PIL's own
    conversion would clip them to white), palette, alpha and greyscale converted."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        grey = np.clip(np.rint(values * 255.0 / top), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    return np.array(image.convert("RGB"))  # writable: tensors may share its memory


def decode_image(path: str | Path, exif_orientation: bool = False) -> np.ndarray:
    """RGB uint8 HxWx3, or BadImageError naming the file. `exif_orientation`: turned upright as
    its EXIF tag says (a phone photo); data sets keep the stored pixels their annotations use."""
    try:
        with Image.open(path) as image:
            if exif_orientation:
                image = ImageOps.exif_transpose(image)
            return to_rgb8(image)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise BadImageError(f"cannot read image {path}: {error}") from error


def as_rgb_array(image) -> np.ndarray:
    """HxWx3 uint8 RGB of a path (decoded upright, as its EXIF orientation says: a user's photo),
    a PIL image of any mode, or such an array; anything else is an error saying what it is."""
    if isinstance(image, (str, Path)):
        return decode_image(image, exif_orientation=True)
    if isinstance(image, Image.Image):
        return to_rgb8(image)
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"an image array must be HxWx3 uint8 RGB, not {image.shape} {image.dtype}")
    return image


class GroupedBatchSampler(torch.utils.data.BatchSampler):
    """Batches drawn in the sampler's order but from one group at a time (e.g. landscape or
    portrait images, so padding to a batch's largest image wastes little). Each group's last
    incomplete batch is dropped; the length is exact, as the trainer's epochs need."""

    def __init__(self, sampler: EpochSampler, groups: list[int], batch_size: int):
        super().__init__(sampler, batch_size, drop_last=True)
        self.groups = groups

    def __iter__(self):
        buffers: dict[int, list[int]] = {}
        for index in self.sampler:
            buffer = buffers.setdefault(self.groups[index], [])
            buffer.append(index)
            if len(buffer) == self.batch_size:
                yield buffers.pop(self.groups[index])

    def __len__(self) -> int:
        counts = np.bincount(self.groups)
        return int(sum(n // self.batch_size for n in counts))


def _image_size(item) -> tuple[int, int] | Exception:
    """(width, height) of a decoded HxWxC array, or from a file's header alone; or the error that
    reading the header raised."""
    if isinstance(item, np.ndarray):
        return item.shape[1], item.shape[0]
    path = item
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        return error


def check_images(files: list, *, what: str, same_size: bool = False) -> dict[int, str]:
    """index -> why, for each file (or decoded array) whose header cannot be read (missing, not an
    image) or, with `same_size`, whose size differs from the set's most common one (samples
    stacked unresized). Headers are read in parallel threads, with a progress bar."""
    workers = min(32, 4 * (os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        sizes = list(ProgressBar(pool.map(_image_size, files, chunksize=64), total=len(files),
                          desc=f"checking {what}", leave=False, mininterval=2, disable=len(files) < 1000))
    bad = {i: f"cannot read image {files[i]}: {size}" for i, size in enumerate(sizes)
           if isinstance(size, Exception)}
    readable = [size for size in sizes if not isinstance(size, Exception)]
    if same_size and readable:
        usual = Counter(readable).most_common(1)[0][0]
        bad.update({i: f"image {_name(files[i], i)} is {size[0]}x{size[1]}, the others {usual[0]}x{usual[1]} "
                       f"(this recipe stacks images unresized)"
                    for i, size in enumerate(sizes) if not isinstance(size, Exception) and size != usual})
    return bad


def _name(item, index: int) -> str:
    return f"#{index} (decoded in memory)" if isinstance(item, np.ndarray) else str(item)


# A dataset checked before training lists what it dropped in `skipped_files`; the trainer logs it.
SKIPPED_FILES = "skipped_files"


def report_dropped(bad: dict[int, str], what: str, on_bad: str, setting: str) -> None:
    """Refuse (`on_bad="error"`: BadImageError naming the first file) or print what is skipped."""
    if not bad:
        return
    reasons = [bad[i] for i in sorted(bad)]
    more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
    if on_bad == "error":
        raise BadImageError(f"{what}: {reasons[0]}{more}; {setting}=skip skips such images")
    shown = "\n  ".join(reasons[:10]) + ("\n  ..." if len(reasons) > 10 else "")
    log.warning(f"{what}: skipping {len(bad)} images ({setting}=skip):\n  {shown}")
