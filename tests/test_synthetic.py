"""The synthetic shapes set: deterministic, loadable by pycocotools, boxes inside and on masks."""

import hashlib

import numpy as np
from pycocotools.coco import COCO

from classification.data import scan_image_folder
from detection.data import read_coco
from experiments.synthetic import CLASSES, make_synthetic

SMALL = dict(num_train=6, num_val=3, size=64, num_cls_train=20, num_cls_val=10, cls_size=32)


def digest(root):
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    make_synthetic(tmp_path / "a", seed=5, **SMALL)
    make_synthetic(tmp_path / "b", seed=5, **SMALL)
    make_synthetic(tmp_path / "c", seed=6, **SMALL)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")


def test_coco_json_loads_and_boxes_match_masks(tmp_path):
    paths = make_synthetic(tmp_path, **SMALL)
    coco = COCO(str(paths["train_annotations"]))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(CLASSES)
    assert len(coco.anns) >= 6 * 2 - 3  # several objects per image (a few fully occluded)
    for ann in coco.anns.values():
        info = coco.imgs[ann["image_id"]]
        mask = coco.annToMask(ann).astype(bool)
        x, y, w, h = ann["bbox"]
        assert 0 <= x and 0 <= y and x + w <= info["width"] and y + h <= info["height"]
        ys, xs = np.nonzero(mask)
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x, y, x + w, y + h)
        assert ann["area"] == mask.sum()
    source = read_coco(paths["val_annotations"], tmp_path / "detection" / "val")
    assert len(source.records) == 3 and not source.problems.counts


def test_classification_set_is_an_image_folder(tmp_path):
    paths = make_synthetic(tmp_path, **SMALL)
    files, labels, classes = scan_image_folder(paths["classification"] / "train")
    assert classes == sorted(CLASSES) and len(files) == 20


def test_semantic_masks_are_the_instance_masks_by_class(tmp_path):
    """The folder layout the segmentation reader takes; each pixel's class is its instance's."""
    from PIL import Image

    from experiments.synthetic import SEGMENTATION_CLASSES
    from segmentation.data import folder_pairs, load_pair

    paths = make_synthetic(tmp_path, **SMALL)
    coco = COCO(str(paths["val_annotations"]))
    pairs = folder_pairs(paths["segmentation"] / "val")
    assert len(pairs) == 3
    for pair in pairs:
        image, mask = load_pair(pair, len(SEGMENTATION_CLASSES))
        info = next(i for i in coco.imgs.values() if i["file_name"] == pair.image.name)
        assert np.array_equal(image, np.asarray(Image.open(tmp_path / "detection/val" / pair.image.name)))
        expected = np.zeros_like(mask)
        for ann in coco.imgToAnns[info["id"]]:
            expected[coco.annToMask(ann).astype(bool)] = ann["category_id"]  # category id = class + 1
        assert np.array_equal(mask, expected) and len(np.unique(mask)) > 1
