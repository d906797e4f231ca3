"""Detectors: each head on each backbone family trains and predicts; torchvision equivalence."""

import pytest
import torch
import torchvision

from backbones import InvalidOptionError, create_backbone
from detection import build_faster_rcnn, load_detector_weights

SMALL = dict(min_size=64, max_size=96, rpn_pre_nms_top_n_train=100, rpn_post_nms_top_n_train=16,
             rpn_pre_nms_top_n_test=100, rpn_post_nms_top_n_test=16, rpn_batch_size_per_image=32,
             box_batch_size_per_image=8, box_detections_per_img=20)


def one_step_and_predict(model):
    images = [torch.rand(3, 64, 80), torch.rand(3, 72, 64)]
    targets = [{"boxes": torch.tensor([[5.0, 6, 40, 50]]), "labels": torch.tensor([1])},
               {"boxes": torch.tensor([[10.0, 10, 30, 60], [0, 0, 20, 20]]),
                "labels": torch.tensor([2, 1])}]
    trainable = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in trainable]
    optimizer = torch.optim.SGD(trainable, lr=0.01)
    losses = model.train()(images, targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    sum(losses.values()).backward()
    optimizer.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, trainable))
    with torch.no_grad():
        outputs = model.eval()(images)
    assert [o["boxes"].shape[1] for o in outputs] == [4, 4]
    assert all(o["boxes"][:, 2].le(80).all() for o in outputs)  # in original image coordinates


@pytest.mark.parametrize("backbone, head, options", [
    ("plain18", "c4", {"roi_size": 7}),
    ("resnet18", "c4", {"shortcut": "A", "roi_size": 7}),
    ("resnet18", "c4", {"shortcut": "B", "roi_pool": "max", "roi_size": 7}),
    ("resnet18", "c4", {"shortcut": "C", "roi_size": 7}),
    ("cifar_resnet20", "c4", {"roi_size": 8}),  # stem..c3 shared (stride 2), c4 per region
    ("cifar_plain20", "c4", {"roi_size": 8, "roi_pool": "max"}),
    ("vgg11", "vgg", {}),
    ("plain18", "fpn", {}),
    ("resnet18", "fpn", {"shortcut": "A"}),
    ("timm/resnet18", "fpn", {}),
])
def test_each_head_trains_and_predicts(backbone, head, options):
    anchors = [16, 32, 64] if head != "fpn" else [8, 16, 32, 64, 128]
    model = build_faster_rcnn(backbone, head=head, num_classes=3, anchor_sizes=anchors,
                              **SMALL, **options)
    one_step_and_predict(model)


def test_freeze_at_and_frozen_bn():
    model = build_faster_rcnn("resnet18", head="c4", num_classes=3, freeze_at=2)
    body = model.backbone
    assert not any(p.requires_grad for p in body.stem.parameters())
    assert not any(p.requires_grad for p in body.stages[0].parameters())
    assert all(p.requires_grad for p in body.stages[1].parameters())
    assert isinstance(body.stem.bn, torchvision.ops.FrozenBatchNorm2d)
    assert isinstance(model.roi_heads.box_head.stage[0].bn1, torchvision.ops.FrozenBatchNorm2d)
    vgg = build_faster_rcnn("vgg16", head="vgg", num_classes=3)  # no BN: norm does not apply
    assert not any(p.requires_grad for p in vgg.backbone.stages[0].parameters())


def test_backbone_weights_and_vgg_fc67_come_from_pretraining(tmp_path):
    pretrained = create_backbone("vgg11")
    path = tmp_path / "vgg11.pth"
    torch.save(pretrained.state_dict(), path)
    model = build_faster_rcnn("vgg11", head="vgg", num_classes=3, backbone_weights=path)
    torch.testing.assert_close(model.roi_heads.box_head.fc6.weight, pretrained.fc6.weight)
    torch.testing.assert_close(model.backbone.stages[3][1].weight, pretrained.stages[3][1].weight)


def test_options_are_routed_or_refused():
    model = build_faster_rcnn("resnet50", head="c4", num_classes=5, stride_in_1x1=True,
                              box_detections_per_img=7, roi_size=7)
    assert model.roi_heads.detections_per_img == 7
    assert model.backbone.stages[1][0].conv1.stride == (2, 2)
    assert model.roi_heads.box_roi_pool.output_size == (7, 7)
    with pytest.raises(InvalidOptionError, match="'warp_speed'") as info:
        build_faster_rcnn("resnet50", head="c4", num_classes=5, warp_speed=9)
    assert "min_size" in str(info.value) and "shortcut" in str(info.value)
    with pytest.raises(InvalidOptionError, match="'c4' needs a ResNet"):
        build_faster_rcnn("vgg16", head="c4", num_classes=5)


def test_same_detections_as_torchvision_fasterrcnn_resnet50_fpn(tmp_path):
    """torchvision's detector (random weights, saved, loaded into ours) -> identical outputs."""
    common = dict(min_size=128, max_size=128, box_score_thresh=0.0, box_detections_per_img=30)
    reference = torchvision.models.detection.fasterrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=91, **common).eval()
    path = tmp_path / "fasterrcnn_resnet50_fpn.pth"
    torch.save(reference.state_dict(), path)
    ours = build_faster_rcnn("resnet50", head="fpn", num_classes=91, **common)
    load_detector_weights(ours, path).eval()
    images = [torch.rand(3, 128, 128), torch.rand(3, 128, 128)]
    with torch.no_grad():
        expected, got = reference(images), ours(images)
    for e, g in zip(expected, got):
        assert len(e["boxes"]) > 0
        torch.testing.assert_close(g["boxes"], e["boxes"], atol=1e-4, rtol=0)
        torch.testing.assert_close(g["scores"], e["scores"], atol=1e-5, rtol=0)
        assert torch.equal(g["labels"], e["labels"])


def test_c4_on_a_cifar_net_shares_all_but_the_last_stage():
    model = build_faster_rcnn("cifar_resnet20", head="c4", num_classes=3, roi_pool="max")
    assert len(model.backbone.stages) == 2 and model.backbone.stride == 2
    assert model.roi_heads.box_roi_pool.spatial_scale == 0.5
    assert model.roi_heads.box_head.out_channels == 64
