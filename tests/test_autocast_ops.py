"""Ops with no kernel for the autocast dtype run in fp32 inside CPU bf16 autocast (issue 32)."""

import pytest
import torch
from torchvision.ops import deform_conv2d, ps_roi_align, ps_roi_pool, roi_pool

import engine.precision  # noqa: F401  (registers the fallbacks, as every training run does)
from detection import build_faster_rcnn
from engine.autocast_ops import REGISTERED

ROIS = torch.tensor([[0, 1.0, 1.0, 9.0, 11.0], [0, 3.0, 0.0, 15.0, 7.0]])


def test_roi_pool_under_bf16_autocast_equals_fp32_of_the_same_input():
    """The wrapper casts to fp32, runs torchvision's kernel, casts back: max pooling picks one of
    the bf16 inputs, so the result equals fp32 pooling of those same values exactly."""
    assert "roi_pool@AutocastCPU" in REGISTERED or torch._C._dispatch_has_kernel_for_dispatch_key(
        "torchvision::roi_pool", "AutocastCPU")
    x = torch.randn(1, 8, 16, 16).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pooled = roi_pool(x, ROIS, 4, 1.0)
    assert pooled.dtype == torch.bfloat16
    torch.testing.assert_close(pooled.float(), roi_pool(x.float(), ROIS, 4, 1.0), rtol=0, atol=0)


def test_roi_pool_backward_under_bf16_autocast():
    x = torch.randn(1, 8, 16, 16, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        features = torch.nn.functional.conv2d(x, torch.eye(8).view(8, 8, 1, 1))  # bf16 under autocast
        roi_pool(features, ROIS, 4, 1.0).float().sum().backward()
    # each pooled cell's gradient goes to one input position: at most 2 RoIs x 16 cells x 8 channels
    assert 0 < int(x.grad.ne(0).sum()) <= 2 * 16 * 8
    assert x.grad.sum().item() == pytest.approx(2 * 16 * 8, rel=0)


def test_other_cuda_only_autocast_ops_run_on_cpu_bf16():
    x = torch.randn(1, 8, 16, 16).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert ps_roi_pool(x, ROIS, 2, 1.0).dtype == torch.bfloat16
        assert ps_roi_align(x, ROIS, 2, 1.0).dtype == torch.bfloat16
        out = deform_conv2d(x, torch.zeros(1, 18, 14, 14), torch.randn(4, 8, 3, 3))
    assert out.dtype == torch.bfloat16
    assert out.shape == (1, 4, 14, 14)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_max_pooling_detectors_train_and_predict_in_both_precisions(precision):
    """The paper's Table 7/8 heads (RoI max pooling, C4 and VGG) on a CPU, fp32 and bf16 autocast."""
    torch.manual_seed(0)
    small = dict(min_size=64, max_size=96, rpn_pre_nms_top_n_train=100, rpn_post_nms_top_n_train=16,
                 rpn_pre_nms_top_n_test=100, rpn_post_nms_top_n_test=16, rpn_batch_size_per_image=32,
                 box_batch_size_per_image=8, box_detections_per_img=20, roi_pool="max")
    images = [torch.rand(3, 64, 80), torch.rand(3, 72, 64)]
    targets = [{"boxes": torch.tensor([[5.0, 6, 40, 50]]), "labels": torch.tensor([1])},
               {"boxes": torch.tensor([[10.0, 10, 30, 60]]), "labels": torch.tensor([2])}]
    for backbone, head, size in (("resnet18", "c4", 7), ("vgg11", "vgg", 7)):
        model = build_faster_rcnn(backbone, head=head, num_classes=3, anchor_sizes=[16, 32, 64],
                                  roi_size=size, **small)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            losses = model.train()(images, targets)
            sum(losses.values()).backward()
            with torch.no_grad():
                outputs = model.eval()(images)
        assert all(torch.isfinite(v) for v in losses.values())
        grads = [p.grad for p in model.roi_heads.box_head.parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads)
        assert [o["boxes"].shape[1] for o in outputs] == [4, 4]
