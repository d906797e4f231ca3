"""COCO as semantic segmentation with PASCAL VOC's 20 classes, as torchvision's segmentation
reference builds it (references/segmentation/coco_utils.py), the data its published fcn_resnet50
(60.5 mIoU) and deeplabv3_resnet50 (66.4) were trained and evaluated on:

- only annotations of the 20 COCO categories that are VOC classes count, mapped to VOC's indices;
- an image's mask is, per pixel, the highest class index among the instance masks covering it,
  and 255 (void) where two or more instances overlap; pixels of no instance are background;
- training keeps only the images whose VOC-class annotations cover more than 1000 pixels
  (their `area` sum); validation keeps every image.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detection.data import decode_masks, segmentation_problem
from engine.data import BadImageError

from .data import Pair
from .metrics import IGNORE_INDEX

# The COCO category id of each VOC class, by VOC index (0: background): torchvision's CAT_LIST.
VOC_CATEGORY_IDS = (0, 5, 2, 16, 9, 44, 6, 3, 17, 62, 21, 67, 18, 19, 4, 1, 64, 20, 63, 7, 72)
MIN_TRAIN_AREA = 1000  # pixels of VOC-class annotations a training image needs (torchvision's)


@dataclass(frozen=True)
class CocoClassMask:
    """The VOC-class mask of one COCO image, rendered from its annotations when read."""

    annotation_file: str
    image_id: int
    height: int
    width: int
    segmentations: tuple  # COCO polygons / RLE, one per instance
    labels: tuple  # the VOC index of each

    def __str__(self) -> str:
        return f"{self.annotation_file} (image {self.image_id})"

    def render(self) -> np.ndarray:
        mask = np.zeros((self.height, self.width), dtype=np.uint8)
        if not self.segmentations:
            return mask
        for segmentation in self.segmentations:
            problem = segmentation_problem(segmentation, self.height, self.width)
            if problem:
                raise BadImageError(f"{self}: {problem}")
        instances = decode_masks(list(self.segmentations), self.height, self.width)
        labelled = instances * np.asarray(self.labels, dtype=np.uint8)[:, None, None]
        mask = labelled.max(axis=0)
        mask[instances.sum(axis=0, dtype=np.int32) > 1] = IGNORE_INDEX
        return mask


def coco_pairs(root: str | Path, split: str, train: bool) -> list[Pair]:
    """`root/annotations/instances_<split>.json` with the images of `root/<split>/`, each mask a
    CocoClassMask; training drops the images with too little VOC-class area."""
    from pycocotools.coco import COCO

    root = Path(root)
    annotation_file = root / "annotations" / f"instances_{split}.json"
    if not annotation_file.is_file():
        raise FileNotFoundError(f"COCO annotation file not found: {annotation_file}")
    coco = COCO(str(annotation_file))
    voc_index = {cid: i for i, cid in enumerate(VOC_CATEGORY_IDS) if cid}
    pairs = []
    for image_id, info in sorted(coco.imgs.items()):
        anns = [a for a in coco.imgToAnns.get(image_id, []) if a.get("category_id") in voc_index]
        if train and sum(a.get("area", 0) for a in anns) <= MIN_TRAIN_AREA:
            continue
        mask = CocoClassMask(annotation_file.name, image_id, info["height"], info["width"],
                             tuple(a.get("segmentation") for a in anns),
                             tuple(voc_index[a["category_id"]] for a in anns))
        pairs.append(Pair(root / split / info["file_name"], mask))
    return pairs
