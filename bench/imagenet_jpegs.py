"""ImageNet-sized JPEGs for input benchmarks, where the real photos are not at hand.

ImageNet's training images average about 473x372 pixels and 110 KB. Decoding time grows with the
entropy-coded bytes, so the generated images are photo-like (smooth regions, texture and sensor
noise), average 473x372 and are written at quality 90, which gives ~100 KB: a decoder sees about
the work a real photo costs.
"""

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from tqdm.auto import tqdm

MEAN_SIZE = (473, 372)  # width, height
QUALITY = 90


def photo_like(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Large smooth shapes + mid-frequency texture + pixel noise, uint8 RGB."""
    def field(cells_x, cells_y, scale, interpolation):
        cells = rng.normal(0, scale, (cells_y, cells_x, 3)).astype(np.float32)
        return cv2.resize(cells, (width, height), interpolation=interpolation)

    image = 128 + field(width // 24 + 2, height // 24 + 2, 60, cv2.INTER_CUBIC)
    image += field(width // 3, height // 3, 50, cv2.INTER_LINEAR) + rng.normal(0, 10, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def jpeg_size(rng: np.random.Generator) -> tuple[int, int]:
    """(width, height), uniform within +-15% of ImageNet's mean."""
    width = int(rng.integers(MEAN_SIZE[0] - 71, MEAN_SIZE[0] + 72))
    height = int(rng.integers(MEAN_SIZE[1] - 56, MEAN_SIZE[1] + 57))
    return width, height


def write_imagenet_like(root: Path, count: int, seed: int = 0) -> list[Path]:
    """`count` JPEGs in `root` (kept: a second call with the same arguments reuses them)."""
    root.mkdir(parents=True, exist_ok=True)
    paths = [root / f"{seed}_{i:05d}.JPEG" for i in range(count)]
    for i, path in enumerate(tqdm(paths, desc="writing JPEGs", leave=False)):
        if not path.exists():
            rng = np.random.default_rng([seed, i])
            buffer = io.BytesIO()
            Image.fromarray(photo_like(*jpeg_size(rng), rng)).save(buffer, "JPEG", quality=QUALITY)
            path.write_bytes(buffer.getvalue())
    return paths
