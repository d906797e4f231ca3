"""A detector (Faster R-CNN or Mask R-CNN, any head) to ONNX for one fixed input size, as
torchvision supports its detection models: through the TorchScript exporter, deprecated since
torch 2.9, because the dynamo exporter cannot yet (torch 2.14.1: `torch.export` stops at
`batched_nms`'s data-dependent branch, `boxes.numel() > 4000` on an unbacked size; tried with
strict=False and True). Classifiers and backbones use the dynamo exporter. Checked at export
time: the boxes both runtimes keep agree to `tolerance` pixels, on at least MIN_BOXES boxes (a detector
that keeps fewer on the check's image is checked again, exported with no score threshold)."""

import tempfile
from pathlib import Path

import torch
from torchvision.models.detection import MaskRCNN
from torchvision.ops import box_iou

from engine.onnx import ExportError, export_checked

# pixels: TOLERANCE plus RELATIVE_TOLERANCE of the image's longer side, torchvision's own tolerance
# for its detectors' ONNX exports (rtol 1e-3). Two runtimes' fp32 sums in other orders differ by
# ~1e-6 of a value after ~50 conv layers; RoIAlign then samples at proposals that differ as much
# and a box's deltas scale with its size (exp of the width delta), so boxes on an 800 px image
# agreed to 2e-3, 3.3e-2 and 8.7e-2 px on three exports (ResNet-50 FPN, random weights after two
# steps). A wrong export (normalisation, resizing) moves boxes by pixels, not tenths of one.
TOLERANCE = 1e-3
RELATIVE_TOLERANCE = 1e-3
OPSET = 17
MIN_BOXES = 10  # a check that compared fewer compared too little to pass


def export_detector(model, path: str | Path, height: int, width: int, *,
                    image: torch.Tensor | None = None, what: str = "the detector") -> dict:
    """`model` to `path` for (3, height, width) float images in [0, 1]; `image`: the check's input
    (default: a seeded random one). Returns the check's figures."""
    if image is None:
        image = torch.rand(3, height, width, generator=torch.Generator().manual_seed(0))
    outputs = ["boxes", "labels", "scores"] + (["masks"] if isinstance(model, MaskRCNN) else [])
    options = dict(what=what, dynamo=False, opset_version=OPSET, input_names=["image"], output_names=outputs)
    limit = TOLERANCE + RELATIVE_TOLERANCE * max(image.shape[-2:])

    def check(torch_outputs, onnx_outputs):
        return _check(torch_outputs[0], onnx_outputs, what, limit)
    report = export_checked(model.eval(), ([image],), path, check, **options)
    if report["boxes"] >= MIN_BOXES:
        return report
    heads, kept = model.roi_heads, model.roi_heads.score_thresh
    heads.score_thresh = 0.0  # the same graph, every box kept: the check's own export
    try:
        with tempfile.TemporaryDirectory() as folder:
            again = export_checked(model, ([image],), Path(folder) / "check.onnx", check, **options)
    finally:
        heads.score_thresh = kept
    if again["boxes"] < MIN_BOXES:
        Path(path).unlink()  # an export checked on too little is not written
        raise ExportError(f"{what}: the check found {again['boxes']} boxes even with no score "
                          f"threshold (at least {MIN_BOXES} needed to compare the runtimes)")
    return {**report, "checked_with_no_score_threshold": again}


def _check(torch_output: dict, onnx_outputs: list, what: str, limit: float = TOLERANCE) -> dict:
    """Match each PyTorch detection to the ONNX one of the same class it overlaps most (IoU > 0.9);
    the matched boxes must agree to `limit` pixels and most detections must be matched."""
    boxes, labels = torch_output["boxes"], torch_output["labels"]
    onnx_boxes, onnx_labels = torch.from_numpy(onnx_outputs[0]), torch.from_numpy(onnx_outputs[1])
    if len(boxes) == 0 and len(onnx_boxes) == 0:
        return {"boxes": 0, "matched": 0, "max_abs_difference": 0.0}
    iou = box_iou(boxes, onnx_boxes) * (labels[:, None] == onnx_labels[None, :])
    iou = torch.cat([iou, torch.zeros(len(boxes), 1)], 1)  # a column for "no match"
    best, index = iou.max(1)
    matched = best > 0.9
    difference = float((boxes[matched] - onnx_boxes[index[matched]]).abs().max()) if matched.any() else 0.0
    report = {"boxes": len(boxes), "onnx_boxes": len(onnx_boxes), "matched": int(matched.sum()),
              "max_abs_difference": difference}
    if difference > limit or matched.sum() < 0.9 * max(len(boxes), len(onnx_boxes)):
        raise ExportError(f"{what}: ONNX detections differ from PyTorch's: {report} (tolerance "
                          f"{limit:.2g} px, at least 90% matched)")
    return report


def export_run(cfg, checkpoint, out: Path, size=None, height: int | None = None,
               width: int | None = None) -> dict:
    """A trained detector run (its config and a checkpoint) to ONNX for one fixed image size
    (default: a square of its test-time shorter side)."""
    if size:
        raise ExportError("a detector is exported for one fixed image size: give --height and "
                          "--width, not --size")
    from .predict import Predictor

    model = Predictor(cfg, checkpoint, device="cpu").model
    side = model.transform.min_size[-1]  # the test-time shorter side
    return export_detector(model, out, height or side, width or side,
                           what=f"{cfg.model.kind} {cfg.model.backbone!r} head={cfg.model.head!r}")
