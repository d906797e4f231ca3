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
