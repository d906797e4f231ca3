"""CIFAR augmentation of whole batches in the training process (`data.batch_augment`).

Per-sample augmentation in loader workers costs more than the CIFAR model step on a small CPU
(the workers compete with it for the cores) and is idle work on a GPU. Here each sample only
draws its crop offset and flip from its own seed (cheap, and so still reproducible per
(seed, epoch, index) whatever the batch split); the pixels are moved for the whole uint8 batch at
once, on the training device, and normalised there.
"""

import numpy as np
import torch
import torch.nn.functional as F

PAD = 4  # the paper's Sec. 4.2: 4 pixels padded on each side, a 32x32 crop, a horizontal flip


def draw_crop_flip(seed: int, pad: int = PAD) -> torch.Tensor:
    """(top, left, flip) of one sample, in the zero-padded frame."""
    top, left, flip = np.random.default_rng(seed).integers(0, [2 * pad + 1, 2 * pad + 1, 2])
    return torch.tensor([top, left, flip])


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


def normalize(images: torch.Tensor, mean, std, channels_last: bool) -> torch.Tensor:
    """uint8 (B, H, W, C) -> float (B, C, H, W), (x / 255 - mean) / std as albumentations does.
    The permuted view already has channels-last strides; otherwise it is made contiguous."""
    mean = torch.tensor(mean, device=images.device) * 255
    std = torch.tensor(std, device=images.device) * 255
    out = ((images.float() - mean) / std).permute(0, 3, 1, 2)
    return out if channels_last else out.contiguous()
