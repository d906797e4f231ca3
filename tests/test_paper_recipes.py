"""The paper's detection recipes (Tables 7, 8): VGG-16 and ResNet-101 configs identical but for the
backbone's own keys, RoI max pooling for both, no silent random start; each trains as a smoke run."""

import math

import pytest
import torch
from omegaconf import OmegaConf

from backbones import register_backbone
from backbones.vgg import VGG
from detection import build_faster_rcnn, load_detection_config, train_detector
from detection.sampling import BackgroundRangeMatcher
from engine.config import ConfigError
from engine.metrics import read_metrics
from helpers import REPO, write_coco_dataset

PAPER = REPO / "configs/detection/paper"
PAIRS = {"coco2014": ("coco2014_vgg16", "coco2014_r101_c4"), "voc0712": ("voc0712_vgg16", "voc0712_r101_c4")}
# What may differ between the two backbones' runs: the backbone and its own head.
BACKBONE_KEYS = {"name", "output_dir", "model.backbone", "model.head", "model.options.roi_size",
                 "model.freeze_at", "model.backbone_weights"}
WEIGHTS = "model.backbone_weights=pretrained.safetensors"


def flat(node, prefix=""):
    if isinstance(node, dict):
        return {k: v for key, value in node.items() for k, v in flat(value, f"{prefix}{key}.").items()}
    return {prefix[:-1]: node}


@pytest.mark.parametrize("dataset", sorted(PAIRS))
def test_vgg16_and_resnet101_differ_only_in_the_backbone(dataset):
    vgg, resnet = (flat(OmegaConf.to_container(load_detection_config(PAPER / f"{n}.yaml", [WEIGHTS])))
                   for n in PAIRS[dataset])
    differing = {k for k in set(vgg) | set(resnet) if vgg.get(k) != resnet.get(k)}
    assert differing <= BACKBONE_KEYS, differing - BACKBONE_KEYS
    assert {"model.backbone", "model.head"} <= differing
    for cfg in (vgg, resnet):
        assert cfg["model.options.roi_pool"] == "max" and cfg["model.norm"] == "frozen_bn"
        assert cfg["model.options.rpn_post_nms_top_n_test"] == 300 and cfg["model.options.min_size"] == 600
        assert cfg["optim.lr"] == 0.001 and cfg["schedule.kind"] == "step" and cfg["schedule.warmup"] == 0


def test_paper_schedules_and_data():
    coco = load_detection_config(PAPER / "coco2014_r101_c4.yaml", [WEIGHTS])
    assert coco.data.train_annotations.endswith("instances_train2014.json")
    assert coco.data.val_images.endswith("val2014")
    assert (coco.schedule.total, list(coco.schedule.milestones)) == (320000, [240000])  # 240k + 80k
    assert coco.train.batch_size == 8 and coco.optim.lr_batch == 8
    assert list(coco.model.options.anchor_sizes) == [64, 128, 256, 512]
    assert coco.model.options.box_bg_iou_low == 0.0  # Faster R-CNN's COCO: [0, 0.5)
    voc = load_detection_config(PAPER / "voc0712_vgg16.yaml", [WEIGHTS])
    assert (voc.schedule.total, list(voc.schedule.milestones)) == (80000, [60000])  # 60k + 20k
    assert voc.optim.weight_decay == 0.0005 and voc.optim.momentum == 0.9
    assert list(voc.model.options.anchor_sizes) == [128, 256, 512]
    assert voc.model.options.box_bg_iou_low == 0.1  # Fast R-CNN's [0.1, 0.5)
    assert list(voc.data.voc_train) == ["VOC2007/trainval", "VOC2012/trainval"]
    assert list(voc.data.voc_val) == ["VOC2007/test"]


def test_no_silent_random_start():
    for name in (*PAIRS["coco2014"], *PAIRS["voc0712"]):
        with pytest.raises(ConfigError, match="starts from an ImageNet-pretrained backbone: set "
                                              "model.backbone_weights=<file>"):
            load_detection_config(PAPER / f"{name}.yaml")
    with pytest.raises(ConfigError, match="scratch with model.norm=frozen_bn"):
        load_detection_config(PAPER / "coco2014_r101_c4.yaml", ["model.backbone_weights=scratch"])
    for d2 in sorted((REPO / "configs/detection/d2_1x").glob("*_faster_*.yaml")):
        with pytest.raises(ConfigError, match="model.backbone_weights is not set"):
            load_detection_config(d2)
    from segmentation import load_segmentation_config

    with pytest.raises(ConfigError, match="model.backbone_weights is not set"):
        load_segmentation_config(REPO / "configs/segmentation/voc12_fcn_r50.yaml")
    assert load_detection_config(PAPER / "coco2014_r101_c4.yaml", [
        "model.backbone_weights=scratch", "model.norm=gn"]).model.backbone_weights == "scratch"
    # evaluating, predicting, exporting: the checkpoint holds the weights
    evaluating = load_detection_config(PAPER / "coco2014_r101_c4.yaml", training=False)
    assert evaluating.model.backbone_weights is None


def test_vgg16_fine_tunes_conv3_1_and_up():
    cfg = load_detection_config(PAPER / "coco2014_vgg16.yaml", [WEIGHTS])
    model = build_faster_rcnn("vgg16", head="vgg", num_classes=3, freeze_at=cfg.model.freeze_at)
    body = model.backbone
    assert not any(p.requires_grad for p in body.stem.parameters())  # conv1_x
    assert not any(p.requires_grad for p in body.stages[0].parameters())  # conv2_x
    assert all(p.requires_grad for p in body.stages[1].parameters())  # conv3_1 ...


def test_background_range_ignores_proposals_below_the_low_bound():
    # IoU of 5 proposals with two ground-truth boxes: foreground; background (the second box's best
    # proposal, at 0.35: not a match, as torchvision's RoI heads' matcher has no low-quality
    # matches); below 0.1; zero; at 0.1 exactly (background).
    quality = torch.tensor([[0.7, 0.3, 0.05, 0.0, 0.1], [0.0, 0.35, 0.0, 0.0, 0.0]])
    matcher = BackgroundRangeMatcher(0.5, 0.5, 0.1)
    assert matcher(quality).tolist() == [0, matcher.BELOW_LOW_THRESHOLD, matcher.BETWEEN_THRESHOLDS,
                                         matcher.BETWEEN_THRESHOLDS, matcher.BELOW_LOW_THRESHOLD]
    BackgroundRangeMatcher(0.5, 0.5, 0.0), BackgroundRangeMatcher(0.5, 0.5, 0.5)  # the range's ends
    model = build_faster_rcnn("cifar_resnet20", head="c4", num_classes=3, norm="gn", anchor_sizes=[16],
                              box_bg_iou_low=0.1)
    assert isinstance(model.roi_heads.proposal_matcher, BackgroundRangeMatcher)
    with pytest.raises(ValueError, match="box_bg_iou_low=0.6"):
        build_faster_rcnn("cifar_resnet20", head="c4", num_classes=3, norm="gn", box_bg_iou_low=0.6)


def test_seeded_samplers_draw_apart_for_each_image_and_each_stage():
    """The RPN's and the RoI heads' draws of images seeded 0..5, on the same matches: twelve
    different foreground samples (no seed shared between an image's stages or across images)."""
    from detection.sampling import seed_sampling

    model = build_faster_rcnn("cifar_resnet20", head="c4", num_classes=3, norm="gn", anchor_sizes=[16])
    seed_sampling(model)
    matched = [torch.cat([torch.ones(1000, dtype=torch.long), torch.zeros(5000, dtype=torch.long)])]
    draws = set()
    for sampler in (model.rpn.fg_bg_sampler, model.roi_heads.fg_bg_sampler):
        for seed in range(6):
            sampler.seeds = [seed]
            (positive,), _ = sampler(matched)
            draws.add(tuple(positive.nonzero().flatten().tolist()))  # 128 of 1000 at both stages
        sampler.seeds = [0, 1]
        with pytest.raises(RuntimeError, match="^2 sampling seeds for 1 images$"):
            sampler(matched)
    assert len(draws) == 12


def test_a_training_pass_samples_from_the_targets_seeds_not_the_global_generator():
    from detection.sampling import seed_sampling

    torch.manual_seed(0)
    model = build_faster_rcnn("cifar_resnet20", head="c4", num_classes=3, norm="gn", anchor_sizes=[8, 16],
                              min_size=64, max_size=64).train()
    seed_sampling(model)
    images = [torch.rand(3, 64, 64), torch.rand(3, 64, 64)]
    boxes = torch.tensor([[4.0, 4.0, 30.0, 30.0], [30.0, 20.0, 60.0, 50.0]])
    targets = [{"boxes": boxes, "labels": torch.tensor([1, 2]), "seed": torch.tensor(s)} for s in (3, 4)]

    def losses(global_seed, **call):
        torch.manual_seed(global_seed)
        out = model(images, targets) if not call else model(images, targets=targets)
        return torch.stack([out[k] for k in sorted(out)])

    torch.testing.assert_close(losses(0), losses(1), atol=0, rtol=0)
    torch.testing.assert_close(losses(0), losses(2, keyword=True), atol=0, rtol=0)
    unseeded = [{k: v for k, v in t.items() if k != "seed"} for t in targets]
    torch.manual_seed(0)
    a = model(images, unseeded)
    torch.manual_seed(1)
    b = model(images, unseeded)
    assert any(a[k] != b[k] for k in a)  # without seeds the global generator draws: the check can fail


@register_backbone(name="test_tiny_vgg", family="vgg")
def tiny_vgg(*, num_classes=1000, dropout=0.5):
    """VGG-16's layout (2, 2, 3, 3, 3 convs; fc6, fc7) at 1/16 the width: VGG-16's fc6 alone is
    100M weights, a minute of CPU for 20 steps."""
    return VGG((2, 2, 3, 3, 3), num_classes=num_classes, dropout=dropout, widths=(8, 16, 32, 32, 32),
               fc_width=64)


SMALL = {"vgg16": "test_tiny_vgg", "resnet101": "cifar_resnet20"}  # the backbone swapped


@pytest.mark.parametrize("name", [*PAIRS["coco2014"], *PAIRS["voc0712"]])
def test_paper_config_trains_20_iterations_with_a_small_backbone(name, tmp_path):
    """Everything of the paper config but the backbone, the image size, the test proposals and the
    data (tiny generated COCO sets: the VOC reader has its own tests); one epoch of 20 iterations."""
    paper = load_detection_config(PAPER / f"{name}.yaml", [WEIGHTS])
    train = write_coco_dataset(tmp_path / "train", num_images=20, size=96)
    val = write_coco_dataset(tmp_path / "val", num_images=2, size=96, seed=1)
    cfg = load_detection_config(PAPER / f"{name}.yaml", [
        "data.kind=coco", f"data.train_annotations={train}", f"data.train_images={train.parent / 'images'}",
        f"data.val_annotations={val}", f"data.val_images={val.parent / 'images'}",
        f"output_dir={tmp_path / 'run'}", f"model.backbone={SMALL[paper.model.backbone]}",
        "model.backbone_weights=scratch", "model.norm=gn", "model.options.min_size=96",
        "model.options.max_size=96", "model.options.anchor_sizes=[16,32,64]",
        "model.options.rpn_post_nms_top_n_test=50", "schedule.total=20", "schedule.milestones=[15]",
        "train.batch_size=1", "optim.lr_batch=1", "train.num_workers=0", "train.precision=fp32",
        "train.log_every=10", "eval.voc_convention=null"])  # COCO data: no devkit pixel counting
    assert cfg.model.options.roi_pool == "max"
    assert cfg.model.options.box_bg_iou_low == paper.model.options.box_bg_iou_low
    metrics = train_detector(cfg)
    assert "val_AP" in metrics and (tmp_path / "run/done.json").exists()
    losses = [r["train_loss"] for r in read_metrics(tmp_path / "run") if "train_loss" in r]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
