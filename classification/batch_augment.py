"""Augmentation of whole uint8 batches in the training process (`data.batch_augment`).

Per-sample augmentation in loader workers costs more than the CIFAR model step on a small CPU
(the workers compete with it for the cores) and is idle work on a GPU. Here each sample only
draws its crop offset and flip from its own seed (cheap, and so still reproducible per
(seed, epoch, index) whatever the batch split); the pixels are moved for the whole uint8 batch at
once, on the training device, and normalised there (with the ImageNet lighting offsets, when a
batch carries them).

A *uint8 transform* is what a dataset applies per sample on this path: `(item, seed) ->
(uint8 HxWx3 tensor, {name: per-sample tensor})`; the task stacks the named parameters and
finishes the batch with them.
"""

import numpy as np
import torch
import torch.nn.functional as F

from .decode import decode_rgb

PAD = 4  # the paper's Sec. 4.2: 4 pixels padded on each side, a 32x32 crop, a horizontal flip


def draw_crop_flip(seed: int, pad: int = PAD) -> torch.Tensor:
    """(top, left, flip) of one sample, in the zero-padded frame."""
    top, left, flip = np.random.default_rng(seed).integers(0, [2 * pad + 1, 2 * pad + 1, 2])
    return torch.tensor([top, left, flip])


class CifarCropFlip:
    """The CIFAR training sample: the image as stored, and the crop and flip drawn for it."""

    def __call__(self, item, seed: int) -> tuple[torch.Tensor, dict]:
        return torch.from_numpy(decode_rgb(item)), {"crop_flip": draw_crop_flip(seed)}


class AsStored:
    """The image unchanged (fixed-size test images)."""

    def __call__(self, item, seed: int) -> tuple[torch.Tensor, dict]:
        return torch.from_numpy(decode_rgb(item)), {}


def crop_flip(images: torch.Tensor, params: torch.Tensor, pad: int = PAD) -> torch.Tensor:
    """Pad (B, H, W, C) images with zeros, crop each back to H x W at its (top, left) and mirror
    those whose flip is set: one gather for the batch."""
    b, h, w, _ = images.shape
    padded = F.pad(images, (0, 0, pad, pad, pad, pad))
    params = params.to(images.device)
    rows = params[:, 0:1] + torch.arange(h, device=images.device)
    cols = torch.arange(w, device=images.device).expand(b, w)
    cols = torch.where(params[:, 2:3].bool(), w - 1 - cols, cols) + params[:, 1:2]
    batch = torch.arange(b, device=images.device)[:, None, None]
    return padded[batch, rows[:, :, None], cols[:, None, :]]


def normalize(images: torch.Tensor, mean, std, channels_last: bool, shift: torch.Tensor | None = None):
    """uint8 (B, H, W, C) -> float (B, C, H, W), (x / 255 + shift - mean) / std as albumentations
    does, `shift` being (B, C) per-image offsets in [0, 1] units (the lighting augmentation).
    The permuted view already has channels-last strides; otherwise it is made contiguous."""
    mean = torch.tensor(mean, device=images.device) * 255
    std = torch.tensor(std, device=images.device) * 255
    offset = mean if shift is None else mean - 255 * shift.to(images.device)[:, None, None, :]
    out = images.float().sub_(offset).mul_(1 / std).permute(0, 3, 1, 2)  # in place: 2x faster
    return out if channels_last else out.contiguous()
