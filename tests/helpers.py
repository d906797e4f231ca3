"""Small data the tests write themselves."""

from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "configs" / "classification" / "smoke.yaml"


def write_image_folder(root: Path, classes=("cat", "dog"), per_class=6, size=32, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8) // 2 + 100 * c
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i:04d}.png")
    return root
