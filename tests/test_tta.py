"""Test-time augmentation: the views' outputs combined as each task's formula says; a mirrored-only
view equals evaluating the mirrored set."""

import pytest
import torch
import torch.nn.functional as F

from backbones import create_backbone
from classification.pretrain import build_task, load_pretrain_config
from classification.task import ClassificationTask
from engine.tta import TTAConfig, views
from helpers import SMOKE, OneProcess
from segmentation import build_segmenter
from segmentation.task import SegmentationTask


def segmenter():
    torch.manual_seed(0)
    return build_segmenter("cifar_resnet20", head="fcn", num_classes=3, output_stride=None).eval()


def test_views_of_a_config():
    assert views(TTAConfig()) == ((1.0, False),)
    assert views(TTAConfig(flip=True, scales=[0.5, 1])) == ((0.5, False), (0.5, True), (1.0, False),
                                                            (1.0, True))


def test_segmentation_mirrored_view_equals_the_mirrored_set():
    model = segmenter()
    images, masks = torch.rand(2, 3, 32, 40), torch.randint(0, 3, (2, 32, 40))
    classes = ["a", "b", "c"]
    with torch.no_grad():
        tta = SegmentationTask(classes, views=[(1.0, True)]).evaluate(
            model, [{"image": images, "mask": masks}], OneProcess())
        mirrored = SegmentationTask(classes).evaluate(
            model, [{"image": images.flip(-1), "mask": masks.flip(-1)}], OneProcess())
    assert tta.metrics == mirrored.metrics


def test_segmentation_logits_average_the_views_at_full_size():
    model = segmenter()
    images = torch.rand(1, 3, 32, 40)
    task = SegmentationTask(["a", "b", "c"], views(TTAConfig(flip=True, scales=[0.5, 1.0])))
    with torch.no_grad():
        got = task.logits(model, images)
        small = F.interpolate(images, scale_factor=0.5, mode="bilinear", align_corners=False)
        up = [F.interpolate(model(v)["out"], size=(32, 40), mode="bilinear", align_corners=False)
              for v in (small, small.flip(-1))]
        full = model(images)["out"] + model(images.flip(-1))["out"].flip(-1)
        expected = (up[0] + up[1].flip(-1) + full) / 4
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_classification_flip_averages_the_softmax_of_the_image_and_its_mirror():
    torch.manual_seed(0)
    model = create_backbone("cifar_resnet20").eval()
    images = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        scores = ClassificationTask(flip=True).predict(model, images)
        expected = (model(images).softmax(1) + model(images.flip(-1)).softmax(1)) / 2
    torch.testing.assert_close(scores, expected, atol=1e-6, rtol=0)
    assert build_task(load_pretrain_config(SMOKE, ["eval.tta.flip=true"])).flip
    with pytest.raises(ValueError, match="already average over mirrored views"):
        ClassificationTask(ten_crop=True, flip=True)
    with pytest.raises(ValueError, match="data.multi_scale_test"):
        build_task(load_pretrain_config(SMOKE, ["eval.tta.scales=[0.5,1.0]"]))


def detector():
    from detection import build_faster_rcnn

    torch.manual_seed(0)
    return build_faster_rcnn("cifar_resnet20", head="c4", num_classes=3, norm="gn", min_size=64,
                             max_size=64, anchor_sizes=[16, 32], box_score_thresh=0.0).eval()


def test_detection_mirrored_view_equals_detecting_the_mirrored_image():
    from detection.tta import detect

    model, images = detector(), [torch.rand(3, 64, 80), torch.rand(3, 48, 64)]
    with torch.no_grad():
        tta = detect(model, images, [(1.0, True)])
        mirrored = model([image.flip(-1) for image in images])
    for got, out, image in zip(tta, mirrored, images):
        width, (x1, y1, x2, y2) = image.shape[-1], out["boxes"].unbind(1)
        torch.testing.assert_close(got["boxes"], torch.stack([width - x2, y1, width - x1, y2], 1))
        assert torch.equal(got["scores"], out["scores"]) and torch.equal(got["labels"], out["labels"])
        assert len(got["boxes"]) > 0


def test_detection_views_are_merged_by_the_detectors_nms():
    from torchvision.ops import box_iou

    from detection.tta import detect

    model, images = detector(), [torch.rand(3, 64, 64)]
    with torch.no_grad():
        merged = detect(model, images, views(TTAConfig(flip=True, scales=[0.75, 1.0])))[0]
        plain = detect(model, images)[0]
    assert model.transform.min_size == (64,) and model.transform.max_size == 64  # restored
    assert len(merged["boxes"]) <= model.roi_heads.detections_per_img
    assert merged["scores"].max() >= plain["scores"].max()  # the plain view is one of the views
    for label in merged["labels"].unique():  # no two kept boxes of a class overlap past the NMS
        boxes = merged["boxes"][merged["labels"] == label]
        iou = box_iou(boxes, boxes).fill_diagonal_(0)
        assert (iou <= model.roi_heads.nms_thresh + 1e-6).all()


def test_an_unmirrored_view_at_the_detectors_size_is_its_own_output():
    from detection.tta import _view

    model, images = detector(), [torch.rand(3, 64, 80)]
    with torch.no_grad():
        got, own = _view(model, images, 1.0, False)[0], model(images)[0]
    assert len(own["boxes"]) > 0 and all(torch.equal(got[key], own[key]) for key in own)


def tta_boxes(boxes, width):
    x1, y1, x2, y2 = boxes.unbind(1)
    return torch.stack([width - x2, y1, width - x1, y2], 1)


def detections_and_probabilities(model, image, monkeypatch) -> tuple[dict, torch.Tensor]:
    """The model's detections on `image` and its mask probabilities in each box's frame, recorded
    before torchvision pastes them into the image."""
    import torchvision.models.detection.transform as transform

    pasted, paste = [], transform.paste_masks_in_image

    def record(masks, boxes, size, **options):
        pasted.append(masks)
        return paste(masks, boxes, size, **options)

    monkeypatch.setattr(transform, "paste_masks_in_image", record)
    with torch.no_grad():
        detections = model([image])[0]
    monkeypatch.undo()
    return detections, pasted[0]


@pytest.mark.parametrize("head", ["c4", "fpn"])
def test_mask_rcnn_views_give_the_masks_the_detector_computes_in_that_view(head, monkeypatch):
    """Each view (mirrored or not, at the test size or smaller) of a non-square image: the masks of
    the view's boxes, as the detector computes them on the view's image (mirrored back, in each
    box's frame, before pasting); the detections' masks paste the views' mean."""
    from torchvision.models.detection.roi_heads import paste_masks_in_image

    from detection import build_mask_rcnn
    from detection.tta import _scaled, _view_masks, detect

    torch.manual_seed(0)
    anchors = [16, 32] if head == "c4" else [8, 16, 32, 64]
    model = build_mask_rcnn("cifar_resnet20", head=head, num_classes=3, norm="gn", min_size=64,
                            max_size=64, anchor_sizes=anchors, box_score_thresh=0.0,
                            box_detections_per_img=20).eval()  # 20 masks: enough to compare
    image = torch.rand(3, 48, 64)  # height and width differ, so neither stands in for the other
    for scale, mirrored in [(1.0, True), (0.75, False), (0.75, True)]:
        with _scaled(model.transform, scale):
            own, probabilities = detections_and_probabilities(
                model, image.flip(-1) if mirrored else image, monkeypatch)
        boxes = tta_boxes(own["boxes"], 64) if mirrored else own["boxes"]
        seen = [{"boxes": boxes, "labels": own["labels"]}]
        with torch.no_grad():
            ours = _view_masks(model, [image], seen, scale, mirrored)[0]
        assert len(boxes) > 0
        # the boxes went back and forth through a mirror or a resize (float32): RoIAlign reads them
        # a few 1e-6 px apart, which moves a probability by ~1e-5
        torch.testing.assert_close(ours, probabilities.flip(-1) if mirrored else probabilities, atol=1e-4,
                                   rtol=0, msg=f"scale {scale}, mirrored {mirrored}")
    tta = ((1.0, True), (0.75, False))
    with torch.no_grad():
        got = detect(model, [image], tta)[0]
        mean = torch.stack([_view_masks(model, [image], [got], *view)[0] for view in tta]).mean(0)
    assert got["masks"].shape == (len(got["boxes"]), 1, 48, 64) and 0 <= got["masks"].min()
    assert got["masks"].max() <= 1
    torch.testing.assert_close(got["masks"], paste_masks_in_image(mean, got["boxes"], (48, 64)))
