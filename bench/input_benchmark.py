"""The ImageNet training input, side by side: the toolkit's pipeline before issue 15, now, and
torchvision's reference, per thread and through a 2-worker DataLoader (`bench/benchmark.py
imagenet-input`).

Each pipeline turns a file path into what the training step receives from a loader worker. The
toolkit's lighting and normalisation now run per batch on the training device; their CPU cost is
reported on its own line, so nothing is hidden by moving it.
"""

import statistics
import time
import warnings
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2
from PIL import Image
from torchvision.transforms import v2

from classification.batch_augment import normalize
from classification.device_decode import ImageNetTrainJpeg, device_crops
from classification.imagenet_input import ImageNetTrainCrop
from classification.jpeg import DECODER, decode_jpegs
from classification.lighting import lighting_shift
from classification.transforms import IMAGENET_MEAN, IMAGENET_STD
from engine.data import decode_image, seed_transform
from experiments.machine import machine
from experiments.markdown import markdown_table
from imagenet_jpegs import write_imagenet_like


def toolkit_before():
    """PIL decode, albumentations with the per-image `FancyPCA` (as in the old imagenet preset)."""
    compose = A.Compose([A.SmallestMaxSize(max_size=list(range(256, 481))), A.RandomCrop(224, 224),
                         A.HorizontalFlip(), A.FancyPCA(alpha=0.1),
                         A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD), ToTensorV2()])

    def sample(path, seed):
        seed_transform(compose, seed)
        return compose(image=decode_image(path))["image"]
    return sample


def toolkit_now():
    crop = ImageNetTrainCrop()
    return lambda path, seed: crop(path, seed)[0]


def _torchvision_tail():
    return [v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]


def torchvision_reference():
    """torchvision's classification reference (`presets.py`, PIL backend)."""
    compose = v2.Compose([v2.RandomResizedCrop(224, antialias=True), v2.PILToTensor(), *_torchvision_tail()])
    return lambda path, seed: compose(Image.open(path).convert("RGB"))


def tensor_decode_jpeg():
    """The JPEG decoder `data.decode_on_device` uses (TorchCodec's where installed), on the CPU."""
    compose = v2.Compose([v2.RandomResizedCrop(224, antialias=True), *_torchvision_tail()])
    return lambda path, seed: compose(decode_jpegs([_file_bytes(path)], "cpu")[0])


def _file_bytes(path) -> torch.Tensor:
    return torch.frombuffer(bytearray(Path(path).read_bytes()), dtype=torch.uint8)


def decode_pil():
    return lambda path, seed: decode_image(path)


def decode_opencv():
    return lambda path, seed: cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR_RGB)


PIPELINES = {
    "toolkit before (PIL, albumentations, FancyPCA)": toolkit_before,
    "toolkit now (OpenCV decode, one warpAffine; lighting on device)": toolkit_now,
    "torchvision reference (PIL, v2 RandomResizedCrop)": torchvision_reference,
    f"{DECODER} decode_jpeg + v2": tensor_decode_jpeg,
    "decode alone: PIL": decode_pil,
    "decode alone: OpenCV": decode_opencv,
}


class _Files(torch.utils.data.Dataset):
    def __init__(self, paths, make_pipeline):
        self.paths, self.make_pipeline, self.pipeline = paths, make_pipeline, None

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        self.pipeline = self.pipeline or self.make_pipeline()  # built in the worker
        return self.pipeline(self.paths[index], index)


def per_thread(paths, make_pipeline, repeats: int) -> float:
    """Median images/s of one thread running the pipeline over every file."""
    pipeline, rates = make_pipeline(), []
    pipeline(paths[0], 0)
    for _ in range(repeats):
        start = time.perf_counter()
        for i, path in enumerate(paths):
            pipeline(path, i)
        rates.append(len(paths) / (time.perf_counter() - start))
    return statistics.median(rates)


def with_workers(paths, make_pipeline, workers: int, batch: int) -> float:
    """Images/s a DataLoader with `workers` processes delivers (stacked batches), after a warm-up.
    The workers inherit one OpenCV thread from this process (setting it in a forked worker can
    deadlock on OpenCV's inherited thread pool)."""
    loader = torch.utils.data.DataLoader(_Files(paths, make_pipeline), batch_size=batch,
                                         num_workers=workers, persistent_workers=True)
    for _ in loader:  # warm-up epoch: workers started, files in the page cache
        pass
    start, seen = time.perf_counter(), 0
    for images in loader:
        seen += len(images)
    return seen / (time.perf_counter() - start)


def device_part(batch: int = 64, repeats: int = 20) -> float:
    """Images/s of the lighting + normalisation the toolkit now runs per batch, here on the CPU."""
    images = torch.randint(0, 256, (batch, 224, 224, 3), dtype=torch.uint8)
    alphas = torch.randn(batch, 3) * 0.1
    normalize(images, IMAGENET_MEAN, IMAGENET_STD, True, lighting_shift(alphas))
    start = time.perf_counter()
    for _ in range(repeats):
        normalize(images, IMAGENET_MEAN, IMAGENET_STD, True, lighting_shift(alphas))
    return batch * repeats / (time.perf_counter() - start)


def device_decode(paths, device: str, batch: int = 64, repeats: int = 2) -> float:
    """Images/s of `data.decode_on_device`, the whole path in this one thread: each file read and
    its draws made (what a loader worker does), the batch decoded by `decode_jpeg(device=...)`
    (nvJPEG on a GPU), cropped, mirrored, lit and normalised on the device."""
    transform = ImageNetTrainJpeg()

    def one_batch(files):
        samples = [transform(p, seed) for seed, p in enumerate(files)]
        crops = torch.stack([s[1]["crop"] for s in samples]).to(device)
        images = device_crops([s[0] for s in samples], crops)
        shift = lighting_shift(torch.stack([s[1]["lighting"] for s in samples]).to(device))
        normalize(images, IMAGENET_MEAN, IMAGENET_STD, True, shift)
        if images.is_cuda:
            torch.cuda.synchronize()

    groups = [paths[i:i + batch] for i in range(0, len(paths), batch)]
    one_batch(groups[0])  # warm-up: nvJPEG's handles, the kernels
    start = time.perf_counter()
    for _ in range(repeats):
        for files in groups:
            one_batch(files)
    return repeats * len(paths) / (time.perf_counter() - start)


def input_table(paths, workers: int, batch: int, repeats: int) -> tuple[list[str], list[list]]:
    """Per-thread and `workers`-worker images/s of each pipeline, as (header, rows)."""
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    rows, before = [], None
    for name, make in PIPELINES.items():
        thread = per_thread(paths, make, repeats)
        pooled = with_workers(paths, make, workers, batch) if not name.startswith("decode") else None
        before = before or thread
        rows.append([name, f"{thread:.0f}", f"{thread / before:.2f}x",
                     f"{pooled:.0f}" if pooled else "-"])
    rows.append(["toolkit now, device part (lighting + normalise, batch 64, on this CPU)",
                 f"{device_part():.0f}", "-", "-"])
    header = ["pipeline (file -> training sample)", "img/s, 1 thread", "vs before",
              f"img/s, {workers} workers"]
    return header, rows


def jpeg_decoders(*, images: int = 256, repeats: int = 3,
                  files: Path = Path("outputs/bench/imagenet-jpegs"), real: Path | None = None) -> None:
    """Print CPU images/s (1 thread) of TorchCodec's and torchvision's JPEG decoders on the same
    files (the bytes already read), and their largest pixel difference."""
    paths = input_files(images, files, real)
    data = [_file_bytes(p) for p in paths]
    torch.set_num_threads(1)
    rows, outputs = [], {}
    for decoder in ("torchcodec", "torchvision"):
        if decoder == "torchcodec" and DECODER != "torchcodec":
            rows.append([decoder, "not installed", "-"])
            continue
        with warnings.catch_warnings():  # torchvision's decoders are deprecated: measured on purpose
            warnings.simplefilter("ignore", DeprecationWarning)
            outputs[decoder] = [decode_jpegs([d], "cpu", decoder)[0] for d in data]
            start = time.perf_counter()
            for _ in range(repeats):
                for d in data:
                    decode_jpegs([d], "cpu", decoder)
            rows.append([decoder, f"{repeats * len(data) / (time.perf_counter() - start):.0f}", ""])
    if len(outputs) == 2:
        worst = max(int((a.int() - b.int()).abs().max()) for a, b in zip(*outputs.values()))
        rows[0][2] = f"{worst} levels"
    print(f"JPEG decoding on the CPU, 1 thread, {describe(paths, real is not None)}; {machine()}")
    print(markdown_table(["decoder", "img/s", "max pixel difference"], rows))


def input_files(images: int, files: Path = Path("outputs/bench/imagenet-jpegs"),
                real: Path | None = None) -> list[Path]:
    """`images` real photos from `real`, or as many generated ImageNet-like JPEGs."""
    return sorted(real.rglob("*.[jJ][pP]*[gG]"))[:images] if real else write_imagenet_like(files, images)


def describe(paths, real: bool) -> str:
    sizes = np.array([Image.open(p).size for p in paths])
    kilobytes = sum(p.stat().st_size for p in paths) / len(paths) / 1024
    return (f"{len(paths)} {'real' if real else 'generated'} JPEGs, mean "
            f"{sizes[:, 0].mean():.0f}x{sizes[:, 1].mean():.0f}, {kilobytes:.0f} KB")


def imagenet_input(*, images: int = 512, workers: int = 2, batch: int = 32, repeats: int = 3,
                   files: Path = Path("outputs/bench/imagenet-jpegs"), real: Path | None = None) -> None:
    """Print the table: per-thread and `workers`-worker images/s of each pipeline."""
    paths = input_files(images, files, real)
    header, rows = input_table(paths, workers, batch, repeats)
    print(f"ImageNet training input, {describe(paths, real is not None)}; {machine()}")
    print(markdown_table(header, rows))
