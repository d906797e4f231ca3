"""Classification data: ImageFolder trees (ImageNet, the CIFAR-10 JPEG copy), the official
CIFAR-10 python batches, and a synthetic set for tests.

Every dataset returns (image tensor, label) with its augmentation seeded per (seed, epoch, index),
so a run resumes exactly whatever the worker layout. An unreadable image becomes a `BadSample`
that the collate function drops and counts (or an error, with `on_bad_image="error"`).
"""

import io
import pickle
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from engine.config import check_choice
from engine.data import (
    IMAGE_EXTENSIONS,
    BadImageError,
    BadSample,
    check_images,
    decode_image,
    report_dropped,
    sample_seed,
    seed_transform,
)
from engine.logs import ProgressBar


class ClassificationDataset(Dataset):
    """Images (file paths or decoded arrays) with labels, and how a sample is made of one:

    - `transform`, an albumentations Compose: a sample is (normalised float tensor, label);
    - or `uint8_transform` (see `batch_augment`): (uint8 HxWx3 tensor, label, parameters) for the
      task to augment and normalise per batch on the training device. It decodes paths itself
      (the ImageNet crop decodes at reduced size where it can).
    """

    def __init__(self, images, labels, classes, transform=None, *, uint8_transform=None, seed=0,
                 on_bad_image="skip"):
        check_choice("data.on_bad_sample", on_bad_image, ("skip", "error"))
        if (transform is None) == (uint8_transform is None):
            raise ValueError("a classification dataset takes a transform or a uint8_transform (one)")
        self.images, self.labels, self.classes = images, list(labels), list(classes)
        self.transform, self.uint8_transform = transform, uint8_transform
        self.seed, self.on_bad_image, self.epoch = seed, on_bad_image, 0

    def __len__(self) -> int:
        return len(self.labels)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def subset(self, indices, transform=None, uint8_transform=None) -> "ClassificationDataset":
        """Some samples with other transforms (a held-out validation split)."""
        images = [self.images[i] for i in indices]
        return ClassificationDataset(images, [self.labels[i] for i in indices], self.classes,
                                     transform, uint8_transform=uint8_transform, seed=self.seed,
                                     on_bad_image=self.on_bad_image)

    def checked(self, what: str, same_size: bool) -> "ClassificationDataset":
        """This set without the images that cannot be used, refused or reported by `on_bad_image`;
        `same_size` where the recipe stacks images unresized (CIFAR's)."""
        bad = check_images(self.images, what=what, same_size=same_size)
        report_dropped(bad, what, self.on_bad_image, "data.on_bad_sample")
        if not bad:
            return self
        keep = [i for i in range(len(self)) if i not in bad]
        subset = self.subset(keep, self.transform, self.uint8_transform)
        subset.skipped_files = [str(self.images[i]) for i in sorted(bad)]
        return subset

    def load(self, index: int) -> np.ndarray:
        item = self.images[index]
        return decode_image(item) if isinstance(item, (str, Path)) else item

    def __getitem__(self, index: int):
        seed = sample_seed(self.seed, self.epoch, index)
        try:
            if self.uint8_transform is not None:
                image, params = self.uint8_transform(self.source(index), seed)
                return image, self.labels[index], params
            image = self.load(index)
        except BadImageError as error:
            if self.on_bad_image == "error":
                raise
            return BadSample(str(self.images[index]), str(error))
        seed_transform(self.transform, seed)
        return self.transform(image=image)["image"], self.labels[index]

    def source(self, index: int):
        """What the uint8 transform decodes: a path, or an array already decoded."""
        return self.images[index]


def scan_image_folder(root: str | Path) -> tuple[list[Path], list[int], list[str]]:
    """`root/<class>/<image>` files, classes sorted by name (torchvision's ImageFolder order)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    if not classes:
        raise FileNotFoundError(f"no class folders in {root}")
    paths, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise FileNotFoundError(f"class folder {root / name} holds no images")
        paths += files
        labels += [label] * len(files)
    return paths, labels, classes


def decode_all(paths: list[Path], on_bad_image: str) -> list:
    """Decode every image once (for small images such as CIFAR); bad ones stay paths, to be
    skipped and counted by the dataset like any other unreadable file."""
    images = []
    for path in ProgressBar(paths, desc="decoding", leave=False, mininterval=2):
        try:
            images.append(decode_image(path))
        except BadImageError:
            if on_bad_image == "error":
                raise
            images.append(path)
    return images


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """CIFAR batches are pickles of dicts of NumPy arrays: allow exactly that, never other code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"),
               ("_codecs", "encode")}  # how protocol-2 pickles written by Python 3 store bytes

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")
        return super().find_class(module, name)


def read_cifar_batch(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR-10 batch not found: {path}")
    try:
        return _NumpyOnlyUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as error:
        raise ValueError(f"{path} is not a CIFAR-10 python batch: {error}") from error


def cifar10_batches(root: str | Path, train: bool) -> tuple[np.ndarray, list[int], list[str]]:
    """The official `cifar-10-batches-py` release: (N, 32, 32, 3) uint8 images, labels, classes."""
    root = Path(root)
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    batches = [read_cifar_batch(root / n) for n in names]
    meta = read_cifar_batch(root / "batches.meta")
    try:
        data = np.concatenate([b[b"data"] for b in batches]).reshape(-1, 3, 32, 32)
        labels = [int(x) for b in batches for x in b[b"labels"]]
        classes = [c.decode() for c in meta[b"label_names"]]
    except KeyError as error:
        raise ValueError(f"CIFAR-10 batch in {root} lacks the key {error}") from error
    return np.ascontiguousarray(data.transpose(0, 2, 3, 1)), labels, classes


class SyntheticImages(ClassificationDataset):
    """A learnable synthetic set: each class a colour and a bar orientation, on noise."""

    def __init__(self, num, size, num_classes, transform=None, *, uint8_transform=None, seed=0,
                 split_seed=0):
        super().__init__(list(range(num)), [i % num_classes for i in range(num)],
                         [f"class{c}" for c in range(num_classes)], transform,
                         uint8_transform=uint8_transform, seed=seed)
        self.size, self.split_seed, self.num_classes = size, split_seed, num_classes

    def subset(self, indices, transform=None, uint8_transform=None):
        raise NotImplementedError("hold out synthetic data with data.num_val instead")

    def source(self, index: int) -> np.ndarray:
        return self.load(index)

    def load(self, index: int) -> np.ndarray:
        rng = np.random.default_rng(self.split_seed * 1_000_003 + index)
        label = self.labels[index]
        hue = np.array([(label * 0.37) % 1, (label * 0.61) % 1, (label * 0.83) % 1])
        image = rng.normal(0.5, 0.15, (self.size, self.size, 3)) * 0.5 + hue * 0.5
        position = rng.integers(self.size // 4, 3 * self.size // 4)
        if label % 2:
            image[:, position - 2 : position + 2] = hue[::-1]
        else:
            image[position - 2 : position + 2, :] = hue[::-1]
        return (np.clip(image, 0, 1) * 255).astype(np.uint8)
