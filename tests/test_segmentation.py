"""Semantic segmentation: dilated backbones, parity with torchvision's FCN and DeepLabV3, mIoU from
one confusion matrix, data errors, and a segmenter that learns."""

import json

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from backbones import create_backbone
from backbones.errors import InvalidOptionError
from engine.data import BadImageError
from helpers import REPO, call_tool
from segmentation import (
    build_segmenter,
    confusion_matrix,
    load_segmentation_config,
    load_segmenter_weights,
    segmentation_metrics,
    train_segmenter,
)

SMOKE = REPO / "configs" / "segmentation" / "smoke.yaml"


def _convs(model) -> list[tuple]:
    return [(m.stride, m.dilation, m.padding) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]


@pytest.mark.parametrize("output_stride, dilate", [(8, [False, True, True]), (16, [False, False, True])])
def test_output_stride_dilates_as_torchvision(output_stride, dilate):
    ours = create_backbone("resnet50", output_stride=output_stride).eval()
    reference = torchvision.models.resnet50(replace_stride_with_dilation=dilate).eval()
    strides = [f["stride"] for f in ours.feature_info]
    assert strides == [4, 8, min(16, output_stride), output_stride]
    assert _convs(ours) == _convs(torchvision.models._utils.IntermediateLayerGetter(
        reference, {"layer4": "out"}))  # same convolutions in the same order: stride, dilation, padding
    ours.load_state_dict(ours.remap_state_dict(reference.state_dict()))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        c5 = ours.forward_features(x)["c5"]
        expected = torchvision.models._utils.IntermediateLayerGetter(reference, {"layer4": "c5"})(x)["c5"]
    assert c5.shape[-1] == 64 // output_stride
    torch.testing.assert_close(c5, expected)


def test_output_stride_of_basic_blocks_and_plain_nets():
    for name in ("resnet18", "plain34"):
        net = create_backbone(name, output_stride=8)
        assert [f["stride"] for f in net.feature_info] == [4, 8, 8, 8]
        assert net.forward_features(torch.randn(1, 3, 64, 64))["c5"].shape[-1] == 8
    with pytest.raises(InvalidOptionError, match="output_stride"):
        create_backbone("resnet18", output_stride=4)


@pytest.mark.parametrize("head, factory", [("fcn", torchvision.models.segmentation.fcn_resnet50),
                                           ("deeplabv3", torchvision.models.segmentation.deeplabv3_resnet50)])
def test_torchvision_weights_give_torchvision_logits(head, factory):
    torch.manual_seed(0)
    reference = factory(weights=None, weights_backbone=None, num_classes=21, aux_loss=True).eval()
    ours = build_segmenter("resnet50", head=head, num_classes=21, aux_loss=True)
    load_segmenter_weights(ours, reference.state_dict()).eval()
    x = torch.randn(2, 3, 72, 64)
    with torch.no_grad():
        got, expected = ours(x), reference(x)
    assert set(got) == {"out", "aux"} and got["out"].shape == (2, 21, 72, 64)
    for key in ("out", "aux"):
        torch.testing.assert_close(got[key], expected[key])


def test_miou_from_a_hand_computed_confusion_matrix():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 255]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 1]])
    matrix = confusion_matrix(pred, target, num_classes=4)
    expected = torch.zeros(4, 4, dtype=torch.long)
    for t, p in [(0, 0), (0, 1), (1, 1), (1, 1), (2, 2), (2, 0)]:  # the void pixels count nowhere
        expected[t, p] += 1
    assert torch.equal(matrix, expected)
    metrics = segmentation_metrics(matrix, ["a", "b", "c", "d"])
    iou = {"a": 1 / 3, "b": 2 / 3, "c": 1 / 2}  # TP / (TP + FP + FN); d absent everywhere: no IoU
    assert metrics["IoU/d"] is None
    for name, value in iou.items():
        assert metrics[f"IoU/{name}"] == pytest.approx(value)
    assert metrics["mIoU"] == pytest.approx(sum(iou.values()) / 3)
    assert metrics["pixel_accuracy"] == pytest.approx(4 / 6) and metrics["pixels"] == 6


def test_labels_outside_the_classes_are_refused():
    with pytest.raises(ValueError, match="label 7"):
        confusion_matrix(torch.zeros(2, 2), torch.tensor([[0, 7], [1, 255]]), num_classes=3)


def write_shapes(root, count=6, size=64, seed=0):
    """Images with a square (class 1) and a disc (class 2) on noise, their masks, void borders."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir(parents=True)
    yy, xx = np.mgrid[:size, :size]
    for i in range(count):
        image = rng.integers(60, 120, (size, size, 3)).astype(np.uint8)
        mask = np.zeros((size, size), np.uint8)
        x, y = rng.integers(4, size // 2 - 8, 2)
        mask[y:y + 20, x:x + 20] = 1
        cx, cy = rng.integers(size // 2 + 8, size - 12, 2)
        mask[(yy - cy) ** 2 + (xx - cx) ** 2 < 100] = 2
        image[mask == 1] = (230, 40, 40)
        image[mask == 2] = (40, 40, 230)
        mask[0, :] = 255  # a void row, as VOC's object borders
        Image.fromarray(image).save(root / "images" / f"{i:03d}.png")
        Image.fromarray(mask, mode="L").save(root / "masks" / f"{i:03d}.png")
    return root


def _config(tmp_path, *overrides):
    return load_segmentation_config(
        SMOKE, [f"output_dir={tmp_path / 'run'}", f"data.root={tmp_path / 'data'}", *overrides])


def test_a_segmenter_overfits_a_few_images(tmp_path):
    write_shapes(tmp_path / "data" / "train")
    final = train_segmenter(_config(tmp_path, "data.val_split=train"))
    assert final["val_mIoU"] >= 0.6
    assert final["val_pixels"] == 6 * 63 * 64  # every labelled pixel once, the void row nowhere
    written = json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())
    assert written["metrics"]["val_mIoU"] == final["val_mIoU"]
    out = tmp_path / "cli_eval"  # the evaluation command, on the trained checkpoint
    call_tool("evaluate", "--config", str(SMOKE),
              "--checkpoint", str(tmp_path / "run/checkpoints/last.pth"), "--out", str(out),
              f"data.root={tmp_path / 'data'}", "data.val_split=train", check=True)
    again = json.loads((out / "metrics.json").read_text())["metrics"]
    assert again["val_pixels"] == final["val_pixels"]
    assert again["val_mIoU"] == pytest.approx(final["val_mIoU"], abs=0.01)  # batch 1 vs 4: float sums


@pytest.mark.parametrize("problem, message", [
    ("size", r"mask .*001.png is 32x32 but image .*001.png is 64x64"),
    ("rgb", r"mask .*001.png is a RGB image"),
    ("label", r"mask .*001.png holds label 9; the config names 3 classes .* "
              r"data.classes=\[background, \.\.\.\] \(at least 10 names\)"),
])
def test_malformed_masks_are_errors_naming_the_files_or_counted_skips(tmp_path, problem, message):
    root = write_shapes(tmp_path / "data" / "train", count=4)
    mask = root / "masks" / "001.png"
    if problem == "size":
        Image.new("L", (32, 32)).save(mask)
    elif problem == "rgb":
        Image.new("RGB", (64, 64)).save(mask)
    else:
        Image.fromarray(np.full((64, 64), 9, np.uint8), mode="L").save(mask)
    with pytest.raises(BadImageError, match=message):
        train_segmenter(_config(tmp_path, "data.val_split=train"))
    final = train_segmenter(_config(tmp_path, "data.val_split=train", "data.on_bad_sample=skip",
                                    "schedule.total=2", "train.batch_size=2"))
    assert final["val_pixels"] == 3 * 63 * 64


def test_voc_segmentation_class_palette_masks(tmp_path):
    """VOC 2012's layout: the ImageSets list, JPEG images, palette PNGs whose indices are classes."""
    from segmentation.train import build_dataset

    root = tmp_path / "VOC2012"
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / folder).mkdir(parents=True)
    (root / "ImageSets/Segmentation/val.txt").write_text("2007_000032\n2007_000033\n")
    for name in ("2007_000032", "2007_000033"):
        Image.new("RGB", (40, 30), (90, 90, 90)).save(root / "JPEGImages" / f"{name}.jpg")
        mask = Image.fromarray(np.array([[0] * 40] * 29 + [[255] * 40], np.uint8), mode="L").convert("P")
        mask.putpixel((5, 5), 15)  # person
        mask.save(root / "SegmentationClass" / f"{name}.png")
    cfg = load_segmentation_config(None, ["data.kind=voc", f"data.root={root}"], training=False)
    val = build_dataset(cfg, "val", train=False)
    image, mask = val[0]
    assert len(val) == 2 and len(val.classes) == 21 and image.shape == (3, 30, 40)
    assert mask[5, 5] == 15 and (mask[29] == 255).all() and mask.dtype == torch.long


def write_coco_for_voc(root, image_size=(40, 60)):
    """Two images: person over car (overlapping) plus a toothbrush (not a VOC class); and one
    whose only VOC-class instance covers under 1000 pixels."""
    height, width = image_size
    (root / "val2017").mkdir(parents=True)
    (root / "annotations").mkdir()
    images = []
    for image_id in (1, 2):
        name = f"{image_id:012d}.jpg"
        Image.fromarray(np.zeros((height, width, 3), dtype=np.uint8)).save(root / "val2017" / name)
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})

    def square(ann_id, image_id, category, x0, y0, x1, y1):
        return {"id": ann_id, "image_id": image_id, "category_id": category, "iscrowd": 0,
                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0),
                "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]]}

    annotations = [square(1, 1, 1, 0, 0, 30, 30),  # person: VOC 15
                   square(2, 1, 3, 20, 10, 50, 35),  # car: VOC 7, overlapping the person
                   square(3, 1, 90, 52, 0, 60, 8),  # toothbrush: not a VOC class
                   square(4, 2, 1, 0, 0, 10, 10)]  # 100 px of person: too little to train on
    categories = [{"id": c, "name": n} for c, n in ((1, "person"), (3, "car"), (90, "toothbrush"))]
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(
        {"images": images, "annotations": annotations, "categories": categories}))


def test_coco_with_voc_classes_as_torchvision_reference(tmp_path):
    from segmentation.coco import coco_pairs
    from segmentation.data import pair_labels

    write_coco_for_voc(tmp_path)
    pairs = coco_pairs(tmp_path, "val2017", train=False)
    assert [p.image.name for p in pairs] == ["000000000001.jpg", "000000000002.jpg"]
    mask = pair_labels(pairs[0], 21)
    from pycocotools import mask as mask_utils  # the rasteriser torchvision's reference uses

    def instance(x0, y0, x1, y1):
        return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(
            [[x0, y0, x1, y0, x1, y1, x0, y1]], 40, 60))).astype(bool)

    person, car = instance(0, 0, 30, 30), instance(20, 10, 50, 35)
    expected = np.zeros((40, 60), dtype=np.uint8)
    expected[person], expected[car] = 15, 7  # VOC's person and car
    expected[person & car] = 255  # overlapping instances: void
    assert np.array_equal(mask, expected) and (person & car).sum() > 50
    assert (mask[:, 52:] == 0).all()  # the toothbrush is no VOC class
    train = coco_pairs(tmp_path, "val2017", train=True)
    assert [p.image.name for p in train] == ["000000000001.jpg"]  # image 2: 100 px <= 1000


def test_coco_segmentation_config_trains_on_voc_classes(tmp_path):
    write_coco_for_voc(tmp_path)
    cfg = load_segmentation_config(REPO / "configs/segmentation/smoke.yaml", [
        "data.kind=coco", f"data.root={tmp_path}", "data.train_split=val2017",
        "data.val_split=val2017", "data.crop_size=32", "data.classes=null"])
    from segmentation.train import build_datasets

    train, val = build_datasets(cfg)
    assert len(train) == 1 and len(val) == 2 and len(val.classes) == 21
    image, mask = train[0]
    assert set(mask.unique().tolist()) <= {0, 7, 15, 255}


@pytest.mark.parametrize("output_stride, strides", [(16, [4, 8, 16, 16]), (8, [4, 8, 8, 8])])
def test_timm_models_dilate_by_timms_own_output_stride(output_stride, strides):
    """Levels keep their c2..c5 names; feature_info gives the real strides; the maps are timm's."""
    import timm

    net = create_backbone("timm/resnet18", features_only=True, output_stride=output_stride)
    assert [f["name"] for f in net.feature_info] == ["c2", "c3", "c4", "c5"]
    assert [f["stride"] for f in net.feature_info] == strides
    reference = timm.create_model("resnet18", features_only=True, out_indices=(1, 2, 3, 4),
                                  output_stride=output_stride)
    reference.load_state_dict(net.model.state_dict())
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ours, theirs = list(net.forward_features(x).values()), reference(x)
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))
    assert [m.shape[-1] for m in ours] == [64 // s for s in strides]
    model = build_segmenter("timm/resnet18", head="deeplabv3", num_classes=4, aux_loss=True,
                            output_stride=output_stride)
    out = model(torch.rand(2, 3, 64, 64))
    assert out["out"].shape == out["aux"].shape == (2, 4, 64, 64)


def test_batched_confusion_matrices_are_each_images_own():
    from segmentation.metrics import confusion_matrices

    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, 5, (3, 7, 9), generator=generator)
    target[:, 0] = 255  # void rows
    pred = torch.randint(0, 5, (3, 7, 9), generator=generator)
    batched = confusion_matrices(pred, target, 5)
    for b in range(3):
        expected = torch.zeros(5, 5, dtype=torch.long)
        for t, p in zip(target[b].flatten().tolist(), pred[b].flatten().tolist()):
            if t != 255:
                expected[t, p] += 1
        assert torch.equal(batched[b], expected)
    assert batched.sum() == 3 * 6 * 9


# ---- torchvision's reference settings: per-module lr, base and evaluation sizes ------------------

def test_the_aux_head_trains_at_its_lr_multiplier_through_the_schedule():
    """optim.lr_multipliers={aux_classifier: 10}: the aux head's parameters in a group of their own
    at 10x the lr, every other parameter at the lr, the ratio kept by the poly schedule."""
    from omegaconf import OmegaConf

    from engine.optim import build_optimizer
    from engine.schedule import ScheduleConfig, build_scheduler

    model = build_segmenter("cifar_resnet20", head="fcn", num_classes=3, aux_loss=True, output_stride=None)
    cfg = OmegaConf.create({"name": "sgd", "momentum": 0.9, "weight_decay": 1e-4, "nesterov": False,
                            "no_decay": [], "layer_decay": None, "lr_multipliers": {"aux_classifier": 10}})
    optimizer = build_optimizer(model, cfg, lr=0.02)
    aux = {id(p) for p in model.aux_classifier.parameters()}
    by_lr = {}
    for group in optimizer.param_groups:
        by_lr.setdefault(round(group["lr"], 12), set()).update(id(p) for p in group["params"])
    assert by_lr == {0.2: aux, 0.02: {id(p) for p in model.parameters()} - aux}
    scheduler = build_scheduler(optimizer, ScheduleConfig(kind="poly", total=10, milestones=[]), 10)
    for _ in range(4):
        optimizer.step()
        scheduler.step()
    lrs = sorted(group["lr"] for group in optimizer.param_groups)
    assert lrs[-1] == pytest.approx(10 * lrs[0]) and lrs[0] == pytest.approx(0.02 * 0.6 ** 0.9)
    with pytest.raises(ValueError, match="names 'aux', no module of this model"):
        build_optimizer(model, OmegaConf.merge(cfg, {"lr_multipliers": {"aux": 10}}), lr=0.02)


def test_base_size_draws_the_shorter_side_around_it_and_eval_size_resizes_to_it():
    """Training with data.base_size=40, scale_range [0.5, 2.0]: the shorter side a whole number in
    [20, 80] (seen through a crop larger than any draw: the padding is void); evaluation with
    data.eval_size=30: the shorter side 30, the mask's labels kept as they are (nearest)."""
    from engine.data import seed_transform
    from segmentation.data import build_transform

    image = np.random.default_rng(0).integers(0, 255, (60, 90, 3), dtype=np.uint8)
    mask = np.zeros((60, 90), np.uint8)
    mask[10:50, 20:70] = 2
    train = build_transform(True, crop_size=200, scale_range=(0.5, 2.0), flip=False, base_size=40)
    sides = set()
    for seed in range(40):
        seed_transform(train, seed)
        out = train(image=image, mask=mask)["mask"]
        rows, cols = int((out != 255).any(1).sum()), int((out != 255).any(0).sum())
        assert abs(cols - rows * 1.5) <= 1
        sides.add(int(rows))
    assert min(sides) >= 20 and max(sides) <= 80 and min(sides) < 35 and max(sides) > 65
    evaluation = build_transform(False, eval_size=30)(image=image, mask=mask)
    assert tuple(evaluation["image"].shape[1:]) == (30, 45)
    assert set(np.unique(evaluation["mask"])) == {0, 2}


def test_confusion_matrix_leaves_out_the_ignore_index_it_is_given():
    """A void label other than 255 (here 0, as some data sets mark unlabelled pixels): its pixels
    counted nowhere; 255 is then an ordinary, out-of-range label and refused."""
    target = torch.tensor([[0, 1, 2], [2, 0, 1]])
    pred = torch.tensor([[1, 1, 2], [1, 2, 1]])
    counts = confusion_matrix(pred, target, num_classes=3, ignore_index=0)
    assert counts.sum() == 4 and counts[1, 1] == 2 and counts[2, 2] == 1 and counts[2, 1] == 1
    with pytest.raises(ValueError, match="255"):
        confusion_matrix(pred, torch.full_like(target, 255), num_classes=3, ignore_index=0)


def test_mean_class_accuracy_and_unnamed_classes_by_hand():
    """Rows: true class. Class 0: 3 of 4 right, class 1: 1 of 2, class 2: 2 of 2 -> mean class
    accuracy (3/4 + 1/2 + 1) / 3; pixel accuracy 6/8; classes without names are numbered."""
    from segmentation.metrics import segmentation_metrics

    matrix = torch.tensor([[3, 1, 0], [1, 1, 0], [0, 0, 2]])
    metrics = segmentation_metrics(matrix)
    assert metrics["mean_class_accuracy"] == pytest.approx((3 / 4 + 1 / 2 + 1) / 3)
    assert metrics["pixel_accuracy"] == pytest.approx(6 / 8)
    assert metrics["IoU/0"] == pytest.approx(3 / 5) and metrics["IoU/2"] == pytest.approx(1.0)
    one_pixel = segmentation_metrics(torch.tensor([[1, 0], [0, 0]]))
    assert one_pixel["pixel_accuracy"] == 1.0 and one_pixel["IoU/1"] is None


def test_a_label_equal_to_the_number_of_classes_is_refused_by_name():
    from segmentation.metrics import confusion_matrices

    target = torch.tensor([[[0, 3]]])
    with pytest.raises(ValueError, match=r"label 3 is outside 0\.\.2"):
        confusion_matrices(torch.zeros_like(target), target, num_classes=3)


def test_confusion_matrix_of_maps_without_void_pixels_or_the_last_class():
    """No ignored pixel and nothing in the last cell: the bincount still has every cell."""
    from segmentation.metrics import confusion_matrix

    target, pred = torch.tensor([[0, 1], [1, 0]]), torch.tensor([[0, 0], [1, 1]])
    assert confusion_matrix(pred, target, num_classes=3).tolist() == [[1, 1, 0], [1, 1, 0], [0, 0, 0]]
