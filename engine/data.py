"""Data plumbing both tasks share: image decoding with bad-image reporting, a seeded per-epoch
sampler and the per-sample seed that makes random augmentation reproducible (and so resumable)
whatever the worker layout."""

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Sampler

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


def decode_image(path: str | Path) -> np.ndarray:
    """RGB uint8 HxWx3, or BadImageError naming the file."""
    try:
        with Image.open(path) as image:
            return np.array(image.convert("RGB"))  # writable: tensors may share its memory
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise BadImageError(f"cannot read image {path}: {error}") from error


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
