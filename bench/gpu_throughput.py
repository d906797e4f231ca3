"""Stage d of the GPU check: training throughput of our models against torchvision's, side by side
in one process and one loop, with the peak device memory of each. A batch that does not fit is
halved, and the report says so."""

import torch
import torchvision

from backbones import create_backbone
from benchmarks import detection_batch, detector_train_step, frozen_like_torchvision
from detection import build_faster_rcnn, load_detector_weights
from engine.precision import resolve_precision
from timing import compare_steps, make_train_step

A100_AMP_IMAGES_PER_S = 2470  # NVIDIA DeepLearningExamples, ResNet-50 v1.5 training, 1x A100 80GB, AMP
CLASSIFICATION = {"gpu": dict(size=224, batches=(256, 128, 64), repeats=10, warmup=3),
                  "cpu": dict(size=32, batches=(2,), repeats=1, warmup=1)}
DETECTION = {"gpu": dict(size=800, batch=2, repeats=6, warmup=2),
             "cpu": dict(size=64, batch=1, repeats=1, warmup=1)}


def _device(cpu: bool) -> torch.device:
    return torch.device("cpu" if cpu else "cuda")


def _autocast(step, device: torch.device):
    """The step under the autocast `train.precision=auto` would use on this device."""
    bf16 = resolve_precision("auto", device.type) == "bf16"

    def run():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            step()
    return run


def _peak_gib(step, device: torch.device) -> str:
    """The device memory one more step needs at its peak (GPUs only)."""
    if device.type != "cuda":
        return "-"
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    return f"{torch.cuda.max_memory_allocated() / 2**30:.1f}"


def _is_oom(error: BaseException) -> bool:
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error)


def classification_rows(cpu: bool, sync) -> tuple[list, list, list]:
    """ResNet-50 training steps, ours against torchvision's, bf16 autocast and channels-last,
    at the largest batch that fits; returns (header, rows, notes)."""
    settings, device = CLASSIFICATION["cpu" if cpu else "gpu"], _device(cpu)
    notes = []
    for batch in settings["batches"]:
        try:
            return _classification_at(batch, settings, device, sync) + (notes,)
        except RuntimeError as error:
            if not _is_oom(error):
                raise
            notes.append(f"ResNet-50 at batch {batch} ran out of GPU memory: batch halved")
            torch.cuda.empty_cache()
    raise RuntimeError(f"ResNet-50 training fits none of the batches {settings['batches']}")


def _classification_at(batch: int, settings: dict, device: torch.device, sync) -> tuple[list, list]:
    size = settings["size"]
    torch.manual_seed(0)
    images = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 1000, (batch,), device=device)
    models = {"ours resnet50": create_backbone("resnet50"),
              "torchvision resnet50": torchvision.models.resnet50()}
    steps = {name: _autocast(make_train_step(m.to(device, memory_format=torch.channels_last), images, labels),
                             device) for name, m in models.items()}
    medians = compare_steps(steps, repeats=settings["repeats"], warmup=settings["warmup"], sync=sync)
    reference = medians["torchvision resnet50"]
    rows = [[name, batch, f"{batch / seconds:.0f}", f"{reference / seconds:.3f}",
             f"{batch / seconds / A100_AMP_IMAGES_PER_S:.2f}", _peak_gib(steps[name], device)]
            for name, seconds in medians.items()]
    header = ["model", "batch", "images/s", "speed vs torchvision",
              f"vs 1xA100 AMP ({A100_AMP_IMAGES_PER_S})", "peak GiB"]
    return header, rows


def detection_rows(cpu: bool, sync) -> tuple[list, list]:
    """A Faster R-CNN R50-FPN training iteration, ours against torchvision's, the same weights."""
    settings, device = DETECTION["cpu" if cpu else "gpu"], _device(cpu)
    size, batch = settings["size"], settings["batch"]
    torch.manual_seed(0)
    common = dict(min_size=size, max_size=size)
    reference = frozen_like_torchvision(torchvision.models.detection.fasterrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=91,
        norm_layer=torchvision.ops.FrozenBatchNorm2d, **common))
    ours = load_detector_weights(build_faster_rcnn("resnet50", head="fpn", num_classes=91, **common),
                                 reference.state_dict())
    images, targets = detection_batch(size, batch, masks=False)
    images = [x.to(device) for x in images]
    targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
    models = {"ours resnet50 fpn": ours.to(device),
              "torchvision fasterrcnn_resnet50_fpn": reference.to(device)}
    steps = {name: _autocast(detector_train_step(m, images, targets), device) for name, m in models.items()}
    medians = compare_steps(steps, repeats=settings["repeats"], warmup=settings["warmup"], sync=sync)
    base = medians["torchvision fasterrcnn_resnet50_fpn"]
    rows = [[name, f"{batch} x {size}px", f"{seconds * 1000:.0f}", f"{base / seconds:.3f}",
             _peak_gib(steps[name], device)] for name, seconds in medians.items()]
    return ["model", "batch", "ms / iteration", "speed vs torchvision", "peak GiB"], rows

