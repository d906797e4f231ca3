"""Test-time augmentation: the views' outputs combined as each task's formula says; a mirrored-only
view equals evaluating the mirrored set."""

import pytest
import torch
import torch.nn.functional as F

from backbones import create_backbone
from classification.pretrain import build_task, load_pretrain_config
from classification.task import ClassificationTask
from engine.tta import TTAConfig, views
from helpers import SMOKE
from segmentation import build_segmenter
from segmentation.task import SegmentationTask


class OneProcess:
    @staticmethod
    def gather_for_metrics(x):
        return x


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


def tta_boxes(boxes, width):
    x1, y1, x2, y2 = boxes.unbind(1)
    return torch.stack([width - x2, y1, width - x1, y2], 1)


@pytest.mark.parametrize("head", ["c4", "fpn"])
def test_mask_rcnn_mirrored_view_gives_the_mirrored_images_masks(head, monkeypatch):
    """One mirrored view at the detector's own size: the same boxes, and mask probabilities (in
    each box's frame, before pasting) that are the mirrored image's, mirrored back."""
    import torchvision.models.detection.transform as transform

    from detection import build_mask_rcnn
    from detection.tta import _view_masks, detect

    torch.manual_seed(0)
    anchors = [16, 32] if head == "c4" else [8, 16, 32, 64]
    model = build_mask_rcnn("cifar_resnet20", head=head, num_classes=3, norm="gn", min_size=64,
                            max_size=64, anchor_sizes=anchors, box_score_thresh=0.0,
                            box_detections_per_img=20).eval()  # 20 masks pasted: enough to compare
    images = [torch.rand(3, 64, 64)]
    with torch.no_grad():
        got = detect(model, images, [(1.0, True)])[0]
        pasted = []  # the model's own probabilities before torchvision pastes them
        paste = transform.paste_masks_in_image

        def record(masks, boxes, size, **options):
            pasted.append(masks)
            return paste(masks, boxes, size, **options)

        monkeypatch.setattr(transform, "paste_masks_in_image", record)
        mirrored = model([images[0].flip(-1)])[0]
        monkeypatch.undo()
        ours = _view_masks(model, images, [got], 1.0, True)[0]
    assert len(got["boxes"]) > 0 and got["masks"].shape == (len(got["boxes"]), 1, 64, 64)
    torch.testing.assert_close(got["boxes"], tta_boxes(mirrored["boxes"], 64))
    # the boxes went back and forth through a mirror (x -> 64 - x, float32): RoIAlign reads them a
    # few 1e-6 px apart, which moves a probability by ~1e-5
    torch.testing.assert_close(ours, pasted[0].flip(-1), atol=1e-4, rtol=0)
    merged = detect(model, images, views(TTAConfig(flip=True, scales=[0.75, 1.0])))[0]
    assert merged["masks"].shape[0] == len(merged["boxes"]) and 0 <= merged["masks"].min()
    assert merged["masks"].max() <= 1
