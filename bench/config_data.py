"""Small data sets in each real format at real image sizes, for running shipped configs as shipped.

`make test-configs` trains every config for two iterations; its data must be read by the same code
as the real sets: ImageNet-style ImageFolders of JPEGs (500x375), the CIFAR-10
JPEG copy (32x32, 10 classes), COCO JSON with polygon masks (640x480, COCO's 80 category ids), VOC
devkit folders (XML boxes, `SegmentationClass` PNGs; 500x375) and COCO with VOC's classes for
segmentation. Objects are rectangles on noise: content is irrelevant to a run that checks the path.
"""

import json
from pathlib import Path

import numpy as np
from PIL import Image

COCO_CATEGORY_IDS = tuple(i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83))
VOC_NAMES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
             "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
             "train", "tvmonitor")
COCO_SIZE, VOC_SIZE, IMAGENET_SIZE = (640, 480), (500, 375), (500, 375)  # (width, height)


def _image(rng, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def _boxes(rng, size: tuple[int, int], count: int) -> list[tuple[int, int, int, int]]:
    """`count` boxes (x1, y1, x2, y2) of a fifth to a half of the image's sides."""
    width, height = size
    boxes = []
    for _ in range(count):
        w, h = (int(rng.uniform(0.2, 0.5) * s) for s in (width, height))
        x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
        boxes.append((x, y, x + w, y + h))
    return boxes


def write_image_folder(root: Path, splits: dict[str, int], num_classes: int, size: tuple[int, int],
                       seed: int = 0) -> Path:
    """root/<split>/<class>/*.JPEG: `num_classes` class folders in every split, the split's images
    spread over them in turn."""
    rng = np.random.default_rng(seed)
    for split, count in splits.items():
        for c in range(num_classes):
            (root / split / f"n{c:08d}").mkdir(parents=True, exist_ok=True)
        for i in range(count):
            folder = root / split / f"n{i % num_classes:08d}"
            Image.fromarray(_image(rng, size)).save(folder / f"{i:05d}.JPEG", quality=90)
    return root


def write_coco(annotation_file: Path, images: Path, count: int, *, category_ids=COCO_CATEGORY_IDS,
               size: tuple[int, int] = COCO_SIZE, seed: int = 0) -> Path:
    """COCO instances JSON with polygon segmentations; every category listed, two objects an image."""
    rng = np.random.default_rng(seed)
    images.mkdir(parents=True, exist_ok=True)
    annotation_file.parent.mkdir(parents=True, exist_ok=True)
    entries, annotations = [], []
    for image_id in range(1, count + 1):
        name = f"{image_id:012d}.jpg"
        Image.fromarray(_image(rng, size)).save(images / name, quality=90)
        entries.append({"id": image_id, "file_name": name, "width": size[0], "height": size[1]})
        for x1, y1, x2, y2 in _boxes(rng, size, 2):
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id,
                "category_id": int(category_ids[int(rng.integers(len(category_ids)))]),
                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": float((x2 - x1) * (y2 - y1)), "iscrowd": 0,
                "segmentation": [[x1, y1, x2, y1, x2, y2, x1, y2]]})
    categories = [{"id": i, "name": f"category{i}", "supercategory": "thing"} for i in category_ids]
    annotation_file.write_text(json.dumps({"images": entries, "annotations": annotations,
                                           "categories": categories}))
    return annotation_file


def write_voc_detection(folder: Path, split: str, count: int, *, seed: int = 0,
                        size: tuple[int, int] = VOC_SIZE) -> Path:
    """A devkit year folder (VOC2007/...): Annotations/*.xml (1-based pixel boxes), JPEGImages,
    ImageSets/Main/<split>.txt; ids unique to the folder and split."""
    rng = np.random.default_rng(seed)
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    ids = [f"{split}_{i:06d}" for i in range(count)]
    for name in ids:
        Image.fromarray(_image(rng, size)).save(folder / "JPEGImages" / f"{name}.jpg", quality=90)
        objects = "".join(
            f"<object><name>{VOC_NAMES[int(rng.integers(len(VOC_NAMES)))]}</name><difficult>0</difficult>"
            f"<bndbox><xmin>{x1 + 1}</xmin><ymin>{y1 + 1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox>"
            f"</object>" for x1, y1, x2, y2 in _boxes(rng, size, 2))
        (folder / "Annotations" / f"{name}.xml").write_text(
            f"<annotation><filename>{name}.jpg</filename><size><width>{size[0]}</width>"
            f"<height>{size[1]}</height><depth>3</depth></size>{objects}</annotation>")
    (folder / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return folder


def write_voc_segmentation(root: Path, splits: dict[str, int], *, seed: int = 0,
                           size: tuple[int, int] = VOC_SIZE) -> Path:
    """VOC2012's segmentation layout: JPEGImages, SegmentationClass (class index PNGs, 255 on the
    objects' borders as the devkit's), ImageSets/Segmentation/<split>.txt."""
    rng = np.random.default_rng(seed)
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for split, count in splits.items():
        ids = [f"{split}_{i:06d}" for i in range(count)]
        for name in ids:
            Image.fromarray(_image(rng, size)).save(root / "JPEGImages" / f"{name}.jpg", quality=90)
            mask = np.zeros((size[1], size[0]), dtype=np.uint8)
            for x1, y1, x2, y2 in _boxes(rng, size, 2):
                mask[y1:y2, x1:x2] = 255
                mask[y1 + 2:y2 - 2, x1 + 2:x2 - 2] = int(rng.integers(1, len(VOC_NAMES) + 1))
            Image.fromarray(mask).save(root / "SegmentationClass" / f"{name}.png")
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return root


def write_coco_voc_segmentation(root: Path, splits: dict[str, int], voc_category_ids, *, seed: int = 0,
                                size: tuple[int, int] = COCO_SIZE) -> Path:
    """COCO as torchvision's segmentation reference reads it: root/annotations/instances_<split>.json
    and root/<split>/, the objects in COCO categories that are VOC classes."""
    for offset, (split, count) in enumerate(splits.items()):
        write_coco(root / "annotations" / f"instances_{split}.json", root / split, count,
                   category_ids=tuple(voc_category_ids), size=size, seed=seed + offset)
    return root


def write_mask_folder(root: Path, splits: dict[str, int], num_classes: int, *, seed: int = 0,
                      size: tuple[int, int] = VOC_SIZE) -> Path:
    """The `data.kind: folder` layout: root/<split>/images/*.jpg with root/<split>/masks/*.png of
    class indices below `num_classes`."""
    rng = np.random.default_rng(seed)
    for split, count in splits.items():
        for sub in ("images", "masks"):
            (root / split / sub).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.fromarray(_image(rng, size)).save(root / split / "images" / f"{i:05d}.jpg", quality=90)
            mask = np.zeros((size[1], size[0]), dtype=np.uint8)
            for x1, y1, x2, y2 in _boxes(rng, size, 2):
                mask[y1:y2, x1:x2] = int(rng.integers(1, num_classes))
            Image.fromarray(mask).save(root / split / "masks" / f"{i:05d}.png")
    return root
