"""Fast image decoding for the uint8 input paths: OpenCV's libjpeg-turbo, and for JPEGs larger
than needed, decoding at 1/2, 1/4 or 1/8 size inside the decoder (its DCT scaling), which skips
most of the work for large photos. The fastest of PIL, OpenCV and `torchvision.io.decode_jpeg`
on this project's CPUs (docs/benchmarks.md); anything OpenCV cannot read goes to PIL, so
unusual formats still load and broken files still raise BadImageError naming the file.
"""

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from engine.data import BadImageError, decode_image

_JPEG_MAGIC = b"\xff\xd8"
# The scale bits of OpenCV's IMREAD_REDUCED_* flags (the GRAYSCALE ones carry no colour bit, which
# IMREAD_COLOR_RGB would contradict).
_REDUCED = {2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
            8: cv2.IMREAD_REDUCED_GRAYSCALE_8}
# RGB, with the pixels as stored (no EXIF rotation), like PIL and torchvision's ImageFolder.
_FLAGS = cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION


def decode_rgb(item, min_side: int = 0) -> np.ndarray:
    """A path (or a decoded HxWx3 array, returned as is) -> RGB uint8 HxWx3 whose shorter side is
    at least `min_side` (decoded at the smallest size that keeps it). Files OpenCV cannot read
    (non-JPEGs it lacks, broken ones) go to PIL, which decodes them or raises BadImageError."""
    if isinstance(item, np.ndarray):
        return item
    try:
        data = Path(item).read_bytes()
    except OSError as error:
        raise BadImageError(f"cannot read image {item}: {error}") from error
    flags = _FLAGS
    if data[:2] == _JPEG_MAGIC and min_side:
        flags |= _REDUCED.get(_reduction(data, min_side), 0)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None:
        return decode_image(item)
    return image


def _reduction(data: bytes, min_side: int) -> int:
    """The largest of 1, 2, 4, 8 that keeps the JPEG's shorter side >= min_side."""
    try:
        with Image.open(io.BytesIO(data)) as header:
            short = min(header.size)
    except (OSError, ValueError, Image.DecompressionBombError):
        return 1  # let the decoder report it
    factor = 1
    while factor < 8 and -(-short // (2 * factor)) >= min_side:
        factor *= 2
    return factor
