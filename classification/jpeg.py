"""JPEG bytes to uint8 (3, H, W) tensors on a device, several at once (nvJPEG on a GPU).

torchvision's image decoders are deprecated since torchvision 0.29 in favour of TorchCodec's
(torchcodec >= 0.16, the `decode` extra; it needs no FFmpeg for images): those are used where
installed, torchvision's on an install without it (older torch). Both decode with libjpeg-turbo
on the CPU; a file either cannot decode raises RuntimeError.
"""

import torch

try:
    from torchcodec.decoders import decode_jpeg as _torchcodec_decode
except (ImportError, OSError, RuntimeError):  # not installed, or no build for this torch
    _torchcodec_decode = None

DECODER = "torchcodec" if _torchcodec_decode is not None else "torchvision"


def decode_jpegs(data: list[torch.Tensor], device, decoder: str = DECODER) -> list[torch.Tensor]:
    """Each 1-D uint8 tensor of JPEG bytes (on the CPU) as RGB uint8 (3, H, W) on `device`."""
    if decoder == "torchcodec":
        return _torchcodec_decode(data, mode="RGB", device=device)
    from torchvision.io import ImageReadMode, decode_jpeg

    return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
