"""Mask R-CNN: C4 and FPN heads, torchvision parity, masks in the data, segm AP end to end."""

import json

import numpy as np
import pytest
import torch

from detection import build_mask_rcnn, load_detection_config, load_detector_weights, train_detector
from detection.data import BadRecordError, DetectionDataset, read_coco
from detection.evaluation import COCO_METRICS
from detection.transforms import build_detection_transform
from engine.config import ConfigError
from helpers import REPO, call_tool, coco_overrides, edit_json, pycocotools_stats, write_coco_dataset

SMOKE = REPO / "configs/detection/smoke.yaml"
SMALL = dict(min_size=64, max_size=96, rpn_pre_nms_top_n_train=100, rpn_post_nms_top_n_train=16,
             rpn_pre_nms_top_n_test=100, rpn_post_nms_top_n_test=16, rpn_batch_size_per_image=32,
             box_batch_size_per_image=8, box_detections_per_img=20, box_score_thresh=0.0)


def targets_with_masks():
    masks = torch.zeros(2, 72, 64, dtype=torch.uint8)
    masks[0, 10:60, 10:30] = masks[1, 0:20, 0:20] = 1
    first = torch.zeros(1, 64, 80, dtype=torch.uint8)
    first[0, 6:50, 5:40] = 1
    return ([torch.rand(3, 64, 80), torch.rand(3, 72, 64)],
            [{"boxes": torch.tensor([[5.0, 6, 40, 50]]), "labels": torch.tensor([1]), "masks": first},
             {"boxes": torch.tensor([[10.0, 10, 30, 60], [0, 0, 20, 20]]), "labels": torch.tensor([2, 1]),
              "masks": masks}])


@pytest.mark.parametrize("backbone, head, anchors", [
    ("cifar_resnet20", "c4", [16, 32, 64]),  # stem..c3 shared, c4 per region
    ("cifar_resnet20", "fpn", [8, 16, 32, 64]),  # a pyramid over c2..c4, then the pooled level
    ("resnet18", "c4", [16, 32, 64]),
    ("resnet18", "fpn", [8, 16, 32, 64, 128]),
])
def test_each_head_trains_a_step_and_predicts_masks(backbone, head, anchors):
    model = build_mask_rcnn(backbone, head=head, num_classes=3, anchor_sizes=anchors, norm="gn",
                            freeze_at=0, **SMALL)
    images, targets = targets_with_masks()
    trainable = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in model.roi_heads.mask_predictor.parameters()]
    losses = model.train()(images, targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness",
                           "loss_rpn_box_reg"}
    sum(losses.values()).backward()
    torch.optim.SGD(trainable, lr=0.01).step()
    after = list(model.roi_heads.mask_predictor.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after))  # the mask loss trains
    with torch.no_grad():
        outputs = model.eval()(images)
    for image, output in zip(images, outputs):
        n = len(output["boxes"])
        assert n > 0 and output["masks"].shape == (n, 1, *image.shape[1:])  # original size
        assert 0 <= output["masks"].min() and output["masks"].max() <= 1


def test_c4_runs_conv5_once_per_region_for_both_branches():
    """Training: one RoI pooling and one conv5_x pass feed boxes and masks. Inference: a second
    pass on the regressed boxes (detectron2's Res5ROIHeads)."""
    model = build_mask_rcnn("resnet18", head="c4", num_classes=3, anchor_sizes=[16, 32, 64], **SMALL)
    heads = model.roi_heads
    assert heads.mask_roi_pool is None and heads.mask_head is None
    calls = []
    heads.box_head.stage.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    images, targets = targets_with_masks()
    model.train()(images, targets)
    assert calls == [2 * SMALL["box_batch_size_per_image"]]
    calls.clear()
    with torch.no_grad():
        outputs = model.eval()(images)
    assert len(calls) == 2 and calls[1] == sum(len(o["boxes"]) for o in outputs)
    deconv = heads.mask_predictor.conv5_mask
    assert (deconv.in_channels, deconv.out_channels, deconv.stride) == (512, 256, (2, 2))


def test_same_detections_and_masks_as_torchvision_maskrcnn_resnet50_fpn():
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    torch.manual_seed(0)
    options = dict(num_classes=5, min_size=128, max_size=128, box_score_thresh=0.0)
    reference = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, **options).eval()
    ours = build_mask_rcnn("resnet50", head="fpn", **options)
    load_detector_weights(ours, reference.state_dict()).eval()
    images = [torch.rand(3, 128, 160)]
    with torch.no_grad():
        expected, got = reference(images)[0], ours(images)[0]
    assert len(expected["boxes"]) > 0 and set(got) == set(expected) == {"boxes", "labels", "scores", "masks"}
    for key in expected:
        assert torch.equal(got[key], expected[key]), key


def test_mask_heads_and_errors():
    with pytest.raises(ValueError, match="'vgg'"):
        build_mask_rcnn("vgg11", head="vgg", num_classes=3)
    with pytest.raises(ValueError, match="anchor_sizes=.*4 levels \\(c2, c3, c4, pool\\)"):
        build_mask_rcnn("cifar_resnet20", head="fpn", num_classes=3)
    with pytest.raises(ValueError, match="unknown option 'mask_size' for build_mask_rcnn"):
        build_mask_rcnn("resnet18", head="c4", num_classes=3, mask_size=28)


# ---- data -----------------------------------------------------------------------------------
def test_polygons_and_rle_decode_and_flip_with_the_image(coco):
    from pycocotools import mask as mask_utils

    ann, images = coco
    square = np.zeros((64, 64), dtype=np.uint8)
    square[5:20, 30:50] = 1
    rle = mask_utils.encode(np.asfortranarray(square))
    edit_json(ann, lambda d: d["annotations"][0].update(segmentation={"size": rle["size"],
                                                                   "counts": rle["counts"].decode()}))
    source = read_coco(ann, images, masks=True)
    _, target = DetectionDataset(source, train=True)[0]
    assert target["masks"].dtype == torch.uint8 and target["masks"].shape == (len(target["boxes"]), 64, 64)
    assert torch.equal(target["masks"][0], torch.from_numpy(square))  # RLE
    _, second = DetectionDataset(source, train=True)[1]
    for box, mask in zip(second["boxes"], second["masks"]):  # polygons: the squares, filled
        x0, y0, x1, y1 = box.int().tolist()
        assert mask[y0:y1, x0:x1].all() and mask.sum() <= (x1 - x0 + 1) * (y1 - y0 + 1)
    flip = build_detection_transform(train=True)
    flip.transforms[0].p = 1.0
    _, flipped = DetectionDataset(source, flip, train=True)[0]
    assert torch.equal(flipped["masks"], target["masks"].flip(-1))
    assert DetectionDataset(source, train=False)[0][1].get("masks") is None  # evaluation: COCO's own
    assert read_coco(ann, images).records[0].segmentations is None  # Faster R-CNN reads no masks


def test_crowd_masks_stay_out_of_training_and_in_evaluation(coco):
    ann, images = coco
    edit_json(ann, lambda d: d["annotations"][1].update(iscrowd=1))  # image 2's first object
    source = read_coco(ann, images, masks=True)
    record = next(r for r in source.records if r.image_id == 2)
    _, target = DetectionDataset(source, train=True)[1]
    assert len(target["masks"]) == len(target["boxes"]) == int((~record.ignore).sum())
    crowd = [a for a in source.ground_truth["annotations"] if a.get("iscrowd")]
    assert len(crowd) == 1 and crowd[0]["segmentation"]


@pytest.mark.parametrize("segmentation, message", [
    ([], "empty list of polygons"),
    ([[1, 2, 3, 4]], "not a list of >= 3 finite x, y pairs"),
    ([[1, 2, 3, 4, 5]], "not a list of >= 3 finite x, y pairs"),
    ({"size": [32, 32], "counts": "abc"}, "RLE size \\[32, 32\\] is not the image's \\[64, 64\\]"),
    ("polygon", "neither polygons nor RLE"),
    (None, "neither polygons nor RLE"),
])
def test_malformed_masks_error_or_are_skipped_and_counted(coco, segmentation, message):
    ann, images = coco
    edit_json(ann, lambda d: d["annotations"][0].update(segmentation=segmentation))
    with pytest.raises(BadRecordError, match=message) as info:
        read_coco(ann, images, masks=True)
    assert "annotations.json: annotation 1" in str(info.value)
    source = read_coco(ann, images, masks=True, on_bad_record="skip")
    assert source.problems.counts == {"malformed masks": 1}
    assert sum(len(r.labels) for r in source.records) == len(json.loads(ann.read_text())["annotations"]) - 1
    boxes_only = read_coco(ann, images)  # Faster R-CNN reads no masks: the box is still used
    assert not boxes_only.problems.counts and len(boxes_only.records[0].labels) == 2


def test_mask_rcnn_config_needs_coco_masks(tmp_path):
    from detection.train import build_datasets

    cfg = load_detection_config(SMOKE, ["model.kind=mask_rcnn", "data.kind=voc"])
    with pytest.raises(ValueError, match="data.kind=voc reads boxes only"):
        build_datasets(cfg)
    with pytest.raises(ConfigError, match="'model.kind'"):
        build_datasets(load_detection_config(SMOKE, ["model.kind=keypoint_rcnn"]))


# ---- end to end -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """resnet18-C4 Mask R-CNN overfits 8 images in 75 iterations (about 45 s on 2 CPU cores; mask
    AP50 0.75 there)."""
    root = tmp_path_factory.mktemp("mask")
    ann = write_coco_dataset(root, num_images=8)
    data = coco_overrides(ann, root / "images")
    overrides = [f"output_dir={root / 'run'}", "model.kind=mask_rcnn", "schedule.total=75",
                 "schedule.milestones=[60]", "train.eval_every=75", *data]
    metrics = train_detector(load_detection_config(SMOKE, overrides))
    return root, ann, overrides, metrics


def test_c4_mask_rcnn_overfits_to_mask_ap50(trained):
    root, _, _, metrics = trained
    assert metrics["val_segm_AP50"] >= 0.5
    summary = json.loads((root / "run/eval/metrics.json").read_text())
    assert summary["kind"] == "mask_rcnn" and summary["metrics"] == metrics
    detections = json.loads((root / "run/eval/detections.json").read_text())
    assert detections and all("segmentation" in d and "bbox" in d for d in detections)


def test_evaluate_cli_mask_ap_equals_pycocotools_and_masks_are_drawn(trained):
    root, ann, overrides, _ = trained
    out = root / "cli_eval"
    checkpoint = str(root / "run/checkpoints/last.pth")
    call_tool("evaluate", "--config", str(SMOKE),
              "--checkpoint", checkpoint, "--backend", "pycocotools", "--out", str(out),
              *overrides, check=True)
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    detections = json.loads((out / "detections.json").read_text())
    masks_only = [{k: v for k, v in d.items() if k != "bbox"} for d in detections]
    for name, value in zip(COCO_METRICS, pycocotools_stats(ann, masks_only, "segm")):
        assert metrics[f"val_segm_{name}"] == pytest.approx(value, abs=1e-9), name
    compare = call_tool("compare", str(out / "metrics.json"), check=True).stdout
    assert "mask AP" in compare and f"{100 * metrics['val_segm_AP']:.1f}" in compare
    drawn = root / "drawn"
    call_tool("visualize", "--config", str(SMOKE),
              "--checkpoint", checkpoint, "--num", "2", "--out", str(drawn), *overrides, check=True)
    assert (drawn / "grid.png").is_file()
