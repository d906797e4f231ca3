"""The paper's ImageNet input on uint8, fast enough to feed a GPU (Sec. 3.4 and 3.5).

Training: the shorter side resized to a random S in [256, 480], a random 224 crop, a random flip.
Test: shorter side 256, the centre 224 crop (or the 256 square that 10-crop testing cuts up).
A loader worker only decodes and produces the uint8 crop; normalisation and the lighting
augmentation run on the whole batch on the training device (`ClassificationTask.images`).

Why it is fast: `decode.decode_rgb` (libjpeg-turbo, reduced-size decoding of large photos), and the
resize, the crop and the flip as one `cv2.warpAffine` that computes only the 224x224 output pixels,
with the mapping of `cv2.resize` (bilinear, pixel centres aligned) followed by slicing: the crops
are distributed as resize-then-crop gives them.
"""

import cv2
import numpy as np
import torch

from .decode import decode_rgb
from .lighting import ALPHA_STD, draw_alpha

SCALES = (256, 480)  # the shorter side's range, both ends included
CROP = 224
TEST_SIDE = 256


def resized_crop(image: np.ndarray, out_h: int, out_w: int, top: int, left: int, size: int,
                 flip: bool = False) -> np.ndarray:
    """`cv2.resize(image, (out_w, out_h))[top:top+size, left:left+size]` (mirrored if `flip`),
    computing only the crop: output pixel x samples the source at (x + left + 0.5) * w / out_w - 0.5."""
    h, w = image.shape[:2]
    sx, sy = w / out_w, h / out_h
    if flip:  # output column x is column size - 1 - x of the unmirrored crop
        row_x = (-sx, 0.0, (size - 1 + left + 0.5) * sx - 0.5)
    else:
        row_x = (sx, 0.0, (left + 0.5) * sx - 0.5)
    matrix = np.array([row_x, (0.0, sy, (top + 0.5) * sy - 0.5)])
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def scaled_size(h: int, w: int, short: int) -> tuple[int, int]:
    """(height, width) with the shorter side `short` and the aspect ratio kept."""
    scale = short / min(h, w)
    return round(h * scale), round(w * scale)


class ImageNetTrainCrop:
    """The training sample: uint8 224x224x3 crop, and the lighting alphas drawn for it.

    Every draw comes from the sample's seed (S, then top, left, flip, alphas), so a resumed run
    sees the same crops."""

    def __init__(self, scales: tuple[int, int] = SCALES, size: int = CROP, lighting_std: float = ALPHA_STD):
        self.scales, self.size, self.lighting_std = scales, size, lighting_std

    def __call__(self, item, seed: int) -> tuple[torch.Tensor, dict]:
        rng = np.random.default_rng(seed)
        short = self.draw_scale(rng)
        image = decode_rgb(item, min_side=short)
        crop = resized_crop(image, *self.draw_crop(rng, image.shape[:2], short))
        params = {"lighting": draw_alpha(rng, self.lighting_std)} if self.lighting_std else {}
        return torch.from_numpy(crop), params

    def draw_scale(self, rng: np.random.Generator) -> int:
        """S, the shorter side after resizing: uniform over the integers of [256, 480]."""
        return int(rng.integers(self.scales[0], self.scales[1] + 1))

    def draw_crop(self, rng: np.random.Generator, shape: tuple[int, int], short: int) -> tuple:
        """`resized_crop`'s arguments after the image: resized size, a uniform crop position, and
        a flip with probability 1/2."""
        out_h, out_w = scaled_size(*shape, short)
        top = int(rng.integers(0, out_h - self.size + 1))
        left = int(rng.integers(0, out_w - self.size + 1))
        return out_h, out_w, top, left, self.size, bool(rng.integers(0, 2))


class ImageNetWholeImage:
    """The whole test image, shorter side `side` (the largest scale of multi-scale testing; the
    task resizes it down to the others on the device)."""

    def __init__(self, side: int):
        self.side = side

    def __call__(self, item, seed: int) -> tuple[torch.Tensor, dict]:
        image = decode_rgb(item, min_side=self.side)
        out_h, out_w = scaled_size(*image.shape[:2], self.side)
        return torch.from_numpy(cv2.resize(image, (out_w, out_h), interpolation=cv2.INTER_LINEAR)), {}


class ImageNetTestCrop:
    """The test sample: shorter side 256, the centre `size` square (224, or 256 for 10-crop)."""

    def __init__(self, size: int = CROP, side: int = TEST_SIDE):
        self.size, self.side = size, side

    def __call__(self, item, seed: int) -> tuple[torch.Tensor, dict]:
        image = decode_rgb(item, min_side=self.side)
        out_h, out_w = scaled_size(*image.shape[:2], self.side)
        top, left = (out_h - self.size) // 2, (out_w - self.size) // 2
        return torch.from_numpy(resized_crop(image, out_h, out_w, top, left, self.size)), {}
