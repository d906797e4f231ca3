"""Test-time augmentation for detectors, as detectron2's `GeneralizedRCNNWithTTA` does it: the
detector runs on every view (its test size times the view's scale; the image mirrored or not),
each view's boxes are mapped back onto the image, and all of them are merged per class by the
detector's own test NMS, keeping its `detections_per_img` best. Mask R-CNN then computes the
masks of those merged boxes in every view and averages the mask probabilities before pasting
them into the image."""

from contextlib import contextmanager

import torch
from torchvision.models.detection.roi_heads import maskrcnn_inference, paste_masks_in_image
from torchvision.ops import batched_nms

from .res5_heads import Res5RoIHeads

NO_TTA = ((1.0, False),)


def detect(model, images: list[torch.Tensor], views=NO_TTA) -> list[dict]:
    """The detections of `model` (in eval mode) on `images`, over the test-time `views`."""
    if tuple(views) == NO_TTA:
        return model(images)
    per_view = [_view(model, images, scale, mirrored) for scale, mirrored in views]
    merged = [_merge(model.roi_heads, [view[i] for view in per_view]) for i in range(len(images))]
    if model.roi_heads.has_mask():  # Mask R-CNN
        masks = [_view_masks(model, images, merged, scale, mirrored) for scale, mirrored in views]
        for i, (detections, image) in enumerate(zip(merged, images)):
            mean = torch.stack([view[i] for view in masks]).mean(0)
            detections["masks"] = paste_masks_in_image(mean, detections["boxes"], image.shape[-2:])
    return merged


@contextmanager
def _scaled(transform, scale: float):
    """The detector's transform at `scale` times its test size, restored afterwards."""
    sizes = transform.min_size, transform.max_size
    transform.min_size = tuple(round(s * scale) for s in sizes[0])
    transform.max_size = round(sizes[1] * scale)
    try:
        yield
    finally:
        transform.min_size, transform.max_size = sizes


def _mirror(boxes: torch.Tensor, width: int) -> torch.Tensor:
    x1, y1, x2, y2 = boxes.unbind(1)
    return torch.stack([width - x2, y1, width - x1, y2], dim=1)


def _view(model, images: list[torch.Tensor], scale: float, mirrored: bool) -> list[dict]:
    """One view's detections, in the original images' coordinates."""
    with _scaled(model.transform, scale):
        outputs = model([image.flip(-1) if mirrored else image for image in images])
    if mirrored:
        for output, image in zip(outputs, images):
            output["boxes"] = _mirror(output["boxes"], image.shape[-1])
    return outputs


def _view_masks(model, images, merged: list[dict], scale: float, mirrored: bool) -> list[torch.Tensor]:
    """Mask probabilities (N, 1, M, M) of the merged boxes as this view sees them, each in its
    box's frame (mirrored back)."""
    with _scaled(model.transform, scale):
        batch, _ = model.transform([image.flip(-1) if mirrored else image for image in images])
    features = model.backbone(batch.tensors)  # our backbones' maps are named (detection/heads.py)
    boxes = []
    for detections, image, (height, width) in zip(merged, images, batch.image_sizes):
        found = _mirror(detections["boxes"], image.shape[-1]) if mirrored else detections["boxes"]
        ratio = torch.tensor([width / image.shape[-1], height / image.shape[-2]] * 2, device=found.device)
        boxes.append(found * ratio)
    heads = model.roi_heads
    if isinstance(heads, Res5RoIHeads):  # C4: conv5_x per region feeds the mask predictor
        logits = heads.mask_predictor(heads.conv5(features, boxes, batch.image_sizes))
    else:
        pooled = heads.mask_roi_pool(features, boxes, batch.image_sizes)
        logits = heads.mask_predictor(heads.mask_head(pooled))
    probabilities = maskrcnn_inference(logits, [d["labels"] for d in merged])
    return [p.flip(-1) if mirrored else p for p in probabilities]


def _merge(roi_heads, outputs: list[dict]) -> dict:
    """All views' detections of one image through the detector's per-class NMS."""
    boxes, scores, labels = (torch.cat([o[k] for o in outputs]) for k in ("boxes", "scores", "labels"))
    keep = batched_nms(boxes, scores, labels, roi_heads.nms_thresh)[: roi_heads.detections_per_img]
    return {"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]}
