"""timm's ImageNet input (`data.preset: timm`) on the toolkit's uint8 path, reproducible per sample.

The pipelines are timm's own (`transforms_imagenet_train` / `_eval` with `use_prefetcher=True`:
RandomResizedCrop, flip, RandAugment through `rand_augment_transform`, or resize + centre crop),
ending in a uint8 tensor that the task normalises on the device like the paper's ImageNet input.
Their random draws use Python's, NumPy's and torch's global generators, so each sample runs under
generators seeded from its own seed (and restored afterwards): a resumed run sees the same crops.
"""

import random
from contextlib import contextmanager

import numpy as np
import torch
from PIL import Image

from engine.config import ConfigError

from .decode import decode_rgb
from .transforms import IMAGENET_MEAN, IMAGENET_STD

INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "lanczos", "hamming", "box")


@contextmanager
def seeded_globals(seed: int):
    """Python's, NumPy's and torch's CPU generators seeded with `seed`, restored on exit."""
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    random.seed(seed)
    np.random.seed(seed)
    torch.default_generator.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


def train_pipeline(cfg):
    """timm's training pipeline for `data.timm` (a TimmInputConfig); a bad policy string is an
    error naming the key."""
    from timm.data.transforms_factory import transforms_imagenet_train

    try:
        return transforms_imagenet_train(
            cfg.train_size, scale=tuple(cfg.scale), ratio=tuple(cfg.ratio), hflip=cfg.hflip,
            color_jitter=cfg.color_jitter, auto_augment=cfg.auto_augment,
            interpolation=cfg.train_interpolation, mean=IMAGENET_MEAN, std=IMAGENET_STD,
            use_prefetcher=True)
    except (AssertionError, ValueError, KeyError) as error:
        raise ConfigError(f"data.timm.auto_augment={cfg.auto_augment!r} is not a policy timm "
                          f"knows (e.g. rand-m9-mstd0.5-inc1, augmix-m5-w4-d2, original): "
                          f"{error}") from None


def eval_pipeline(cfg):
    from timm.data.transforms_factory import transforms_imagenet_eval

    return transforms_imagenet_eval(cfg.test_size, crop_pct=cfg.crop_pct, interpolation=cfg.interpolation,
                                    mean=IMAGENET_MEAN, std=IMAGENET_STD, use_prefetcher=True)


class TimmCrop:
    """A uint8 transform (see `batch_augment`): the decoded image through a timm pipeline under
    the sample's seed, as a uint8 HxWx3 tensor."""

    def __init__(self, pipeline):
        self.pipeline = pipeline

    def __call__(self, item, seed: int) -> tuple[torch.Tensor, dict]:
        image = Image.fromarray(decode_rgb(item))
        with seeded_globals(seed):
            chw = self.pipeline(image)
        return chw.permute(1, 2, 0).contiguous(), {}


def problems(cfg) -> list[str]:
    """Out-of-range `data.timm` values (a TimmInputConfig)."""
    rules = [
        ("train_size", cfg.train_size, cfg.train_size >= 1, "an integer >= 1 (pixels)"),
        ("test_size", cfg.test_size, cfg.test_size >= 1, "an integer >= 1 (pixels)"),
        ("crop_pct", cfg.crop_pct, 0 < cfg.crop_pct <= 1, "0 < crop_pct <= 1"),
        ("hflip", cfg.hflip, 0 <= cfg.hflip <= 1, "a probability"),
        ("scale", list(cfg.scale), len(cfg.scale) == 2 and 0 < cfg.scale[0] <= cfg.scale[1] <= 1,
         "[low, high] with 0 < low <= high <= 1"),
        ("ratio", list(cfg.ratio), len(cfg.ratio) == 2 and 0 < cfg.ratio[0] <= cfg.ratio[1],
         "[low, high] with 0 < low <= high"),
        ("interpolation", cfg.interpolation, cfg.interpolation in INTERPOLATIONS, " | ".join(INTERPOLATIONS)),
        ("train_interpolation", cfg.train_interpolation,
         cfg.train_interpolation in INTERPOLATIONS + ("random",), " | ".join(INTERPOLATIONS + ("random",))),
    ]
    found = [f"data.timm.{key}={value!r}: must be {allowed}" for key, value, ok, allowed in rules if not ok]
    if cfg.auto_augment and not found:
        try:
            train_pipeline(cfg)
        except ConfigError as error:
            found.append(str(error))
    return found
