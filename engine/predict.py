"""Prediction on a user's images, for any task: `tools/predict.py`'s loop.

A task's predictor (`TaskSpec.predictor`, e.g. `detection.predict.Predictor`) turns images into
per-image results, each written as JSON records (`records`) and drawings (`drawings`); here the
images are found, decoded upright (EXIF), an unreadable file reported and skipped, never the end of
the run, and predictions.json written whole or not at all.
"""

import glob
import json
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from .checkpoint import atomic_write_text
from .data import IMAGE_EXTENSIONS, BadImageError, decode_image
from .logs import ProgressBar


class Predictor(Protocol):
    class_names: list[str]

    def predict(self, images: list) -> list:
        """One result per image (a path, PIL image or HxWx3 uint8 RGB array)."""

    def records(self, result, image_id: str) -> list[dict]:
        """The JSON records of one image's result."""

    def drawings(self, image: np.ndarray, result) -> dict[str, np.ndarray]:
        """Pictures of one image's result: file-name suffix -> HxW(x3) uint8."""


def find_images(inputs: list[str]) -> list[Path]:
    """Image files named by paths, folders (their images, sorted) and glob patterns."""
    files = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        elif path.is_file():
            files.append(path)
        elif glob.has_magic(item):
            files += sorted(Path(p) for p in glob.glob(item) if Path(p).is_file())
        else:
            raise FileNotFoundError(f"no such image, folder or pattern: {item}")
    if not files:
        raise FileNotFoundError(f"no images found in {' '.join(inputs)}")
    return files


def predict_files(predictor: Predictor, inputs: list[str], out: Path, *, batch: int = 1,
                  desc: str = "predict") -> dict:
    """Predictions for every readable image under `inputs`, written to `out`: predictions.json
    and each image's drawings; returns {"predictions": path, "records": [...], "skipped": [...]}."""
    files = find_images(inputs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records, skipped = [], []
    for start in ProgressBar(range(0, len(files), batch), desc=desc, unit="batch"):
        images, names = [], []
        for file in files[start:start + batch]:
            try:
                images.append(decode_image(file, exif_orientation=True))
                names.append(file)
            except BadImageError as error:
                skipped.append(str(error))
                print(f"skipped: {error}")
        if not images:
            continue
        for image, file, result in zip(images, names, predictor.predict(images)):
            records += predictor.records(result, file.name)
            for suffix, picture in predictor.drawings(image, result).items():
                Image.fromarray(picture).save(out / f"{file.stem}{suffix}.png")
    path = out / "predictions.json"
    atomic_write_text(path, json.dumps(records))
    print(f"{len(files) - len(skipped)} images predicted, {len(skipped)} skipped; written {path} "
          f"and the drawings under {out}")
    return {"predictions": path, "records": records, "skipped": skipped}
