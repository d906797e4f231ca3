"""`data.decode_on_device`: ImageNet training JPEGs decoded on the training device.

A loader worker reads the file's bytes and its size from the JPEG header, and makes the draws of
the CPU path (`ImageNetTrainCrop`: S, the crop's place, the flip, the lighting alphas; the same
code, from the same seed) on the full-size image; the batch is then decoded at once on the device
(`classification.jpeg`: TorchCodec's decoder, or torchvision's; nvJPEG on a GPU), and each image
resized-and-cropped to 224 and mirrored there. The workers are left with file reading, which frees
the CPU cores that decoding would take (the bottleneck of a many-GPU node). A file that is not a
JPEG is decoded by the worker as the CPU path does, and travels as its finished crop.
"""

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image

from engine.data import BadImageError

from .decode import decode_rgb
from .imagenet_input import ImageNetTrainCrop, resized_crop
from .jpeg import decode_jpegs
from .lighting import draw_alpha

JPEG_MAGIC = b"\xff\xd8"


@dataclass(frozen=True)
class JpegFile:
    """A training image still to decode: its bytes, and its path for any error about it."""

    path: str
    data: bytes


class ImageNetTrainJpeg(ImageNetTrainCrop):
    """The training sample: (JpegFile, {"crop": (out_h, out_w, top, left, flip), "lighting":
    alphas}); a non-JPEG: (its uint8 224 crop, the same keys)."""

    def __call__(self, item, seed: int):
        try:
            data = Path(item).read_bytes()
            with Image.open(io.BytesIO(data)) as header:
                width, height = header.size
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            raise BadImageError(f"cannot read image {item}: {error}") from error
        rng = np.random.default_rng(seed)
        short = self.draw_scale(rng)
        crop = self.draw_crop(rng, (height, width), short)
        params = {"crop": torch.tensor(crop[:4] + (int(crop[5]),))}
        if self.lighting_std:
            params["lighting"] = draw_alpha(rng, self.lighting_std)
        if data[:2] != JPEG_MAGIC:  # decoded here, as the CPU path would, at the size drawn for it
            return torch.from_numpy(resized_crop(decode_rgb(item), *crop)), params
        return JpegFile(str(item), data), params


def device_crops(images: list, crops: torch.Tensor, size: int = 224) -> torch.Tensor:
    """Decode the JpegFiles of `images` (items already decoded pass through) on the device of
    `crops`, and cut each one's crop: resized to (out_h, out_w), the `size` square at (top, left),
    mirrored if flip. Returns uint8 (B, size, size, 3), as the CPU path's batches."""
    device = crops.device
    jpegs = [k for k, image in enumerate(images) if isinstance(image, JpegFile)]
    decoded = _decode([images[k] for k in jpegs], device)
    out, boxes = [None] * len(images), crops.tolist()  # one look at the device per batch
    for k, image in zip(jpegs, decoded):
        out_h, out_w, top, left, flip = boxes[k]
        out[k] = _resized_crop(image, out_h, out_w, top, left, size, bool(flip))
    for k, image in enumerate(images):
        if out[k] is None:  # decoded by the worker (not a JPEG): (size, size, 3) already
            out[k] = image.to(device).permute(2, 0, 1)
    return torch.stack(out).permute(0, 2, 3, 1)


def _decode(files: list[JpegFile], device) -> list[torch.Tensor]:
    """The batch at once; if that fails, file by file, so the error names the file at fault."""
    if not files:
        return []
    data = [torch.frombuffer(bytearray(f.data), dtype=torch.uint8) for f in files]
    try:
        return decode_jpegs(data, device)
    except RuntimeError:
        for file, raw in zip(files, data):
            try:
                decode_jpegs([raw], device)
            except RuntimeError as error:
                raise BadImageError(f"cannot decode {file.path} on {device}: {error} (with "
                                    f"data.decode_on_device=false an unreadable file is skipped and "
                                    f"counted)") from error
        raise


def _resized_crop(image: torch.Tensor, out_h: int, out_w: int, top: int, left: int, size: int,
                  flip: bool) -> torch.Tensor:
    """The crop of `image` (3, H, W) resized to (out_h, out_w): its source box resized to `size`
    (bilinear, antialiased when shrinking), so only the crop's pixels are computed."""
    height, width = image.shape[-2:]
    sy, sx = height / out_h, width / out_w
    box = (round(top * sy), round(left * sx), max(1, round(size * sy)), max(1, round(size * sx)))
    crop = TF.resized_crop(image, *box, [size, size], antialias=True)
    return crop.flip(-1) if flip else crop

