"""Test-time augmentation for detectors, as detectron2's `GeneralizedRCNNWithTTA` does it for
boxes: the detector runs on every view (its test size times the view's scale; the image mirrored
or not), each view's boxes are mapped back onto the image, and all of them are merged per class
by the detector's own test NMS, keeping its `detections_per_img` best."""

import torch
from torchvision.ops import batched_nms

NO_TTA = ((1.0, False),)


def detect(model, images: list[torch.Tensor], views=NO_TTA) -> list[dict]:
    """The detections of `model` (in eval mode) on `images`, over the test-time `views`."""
    if tuple(views) == NO_TTA:
        return model(images)
    if model.roi_heads.has_mask():
        raise ValueError("eval.tta on a Mask R-CNN: averaging masks over the views is not built yet "
                         "(boxes only: model.kind=faster_rcnn)")
    per_view = [_view(model, images, scale, mirrored) for scale, mirrored in views]
    return [_merge(model.roi_heads, [view[i] for view in per_view]) for i in range(len(images))]


def _view(model, images: list[torch.Tensor], scale: float, mirrored: bool) -> list[dict]:
    """One view's detections, in the original images' coordinates."""
    transform = model.transform
    sizes = transform.min_size, transform.max_size
    transform.min_size = tuple(round(s * scale) for s in sizes[0])
    transform.max_size = round(sizes[1] * scale)
    try:
        outputs = model([image.flip(-1) if mirrored else image for image in images])
    finally:
        transform.min_size, transform.max_size = sizes
    if mirrored:
        for output, image in zip(outputs, images):
            width, (x1, y1, x2, y2) = image.shape[-1], output["boxes"].unbind(1)
            output["boxes"] = torch.stack([width - x2, y1, width - x1, y2], dim=1)
    return outputs


def _merge(roi_heads, outputs: list[dict]) -> dict:
    """All views' detections of one image through the detector's per-class NMS."""
    boxes, scores, labels = (torch.cat([o[k] for o in outputs]) for k in ("boxes", "scores", "labels"))
    keep = batched_nms(boxes, scores, labels, roi_heads.nms_thresh)[: roi_heads.detections_per_img]
    return {"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]}
