"""What a documented command reads, generated in the work folder where it is missing: the data and
backbone file a config names (after the command's own overrides), and the files the docs name
outright (a photo folder, a LabelMe folder, a torchvision file). Data comes in each real format
at real image sizes (`config_data`); weights are random (`weights_files`): the commands are
checked for running, not for accuracy.
"""

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from config_data import (
    IMAGENET_SIZE,
    VOC_SIZE,
    write_coco,
    write_coco_voc_segmentation,
    write_image_folder,
    write_mask_folder,
    write_voc_detection,
    write_voc_segmentation,
)
from weights_files import write_backbone

TRAIN_IMAGES, VAL_IMAGES = 4, 2
PUBLISHED = ("torchvision", "timm", "scratch", "")  # backbone_weights values that are not files


def _photos(path: Path) -> None:
    rng = np.random.default_rng(0)
    path.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (375, 500, 3), dtype=np.uint8)).save(path / f"photo{i}.jpg")


def _labelme(path: Path) -> None:
    """A LabelMe folder: an image and its JSON (a polygon and a rectangle) per file."""
    _photos(path)
    for image in sorted(path.glob("*.jpg")):
        shapes = [{"label": "cat", "shape_type": "polygon", "points": [[40, 40], [200, 60], [120, 220]]},
                  {"label": "dog", "shape_type": "rectangle", "points": [[250, 100], [450, 300]]}]
        image.with_suffix(".json").write_text(json.dumps(
            {"imagePath": image.name, "imageHeight": 375, "imageWidth": 500, "shapes": shapes}))


def _cifar_folder(path: Path) -> None:
    write_image_folder(path, {"train": 40, "test": 10}, 10, (32, 32))


# files the docs name outright (relative to the work folder): written when a command mentions one
NAMED: dict[str, Callable[[Path], object]] = {
    "photos": _photos,
    "my_labelme": _labelme,
    "data/cifar10-jpeg": _cifar_folder,
    "resnet50.pth": lambda p: write_backbone("resnet50", p),
    "vgg16.pth": lambda p: write_backbone("vgg16", p),
}
# a pretraining run's backbone file the docs take as given: outputs/imagenet_<net>/backbone*.safetensors
IMAGENET_RUN_FILE = re.compile(r"outputs/imagenet_(?P<net>\w+?)/backbone(?:_bn)?\.safetensors")


def ensure_named(text: str, work: Path) -> list[str]:
    """Write the files `text` names that are missing; what was written."""
    written = []
    for name, write in NAMED.items():
        if re.search(rf"(?<![\w/.-]){re.escape(name)}(?![\w.-])", text) and not (work / name).exists():
            write(work / name)
            written.append(name)
    for found in IMAGENET_RUN_FILE.finditer(text):
        if not (work / found.group(0)).exists():
            write_backbone(found.group("net"), work / found.group(0))
            written.append(found.group(0))
    return written


def ensure_config_inputs(cfg, work: Path) -> list[str]:
    """Write the data and backbone file a run config reads where they are missing; what was written."""
    writers = {"classification": _classification, "detection": _detection, "segmentation": _segmentation}
    written = writers[cfg.task](cfg.data, work) if cfg.task in writers else []
    weights = str(cfg.model.get("backbone_weights") or "")
    if weights not in PUBLISHED and not _at(work, weights).exists():
        write_backbone(cfg.model.backbone, _at(work, weights))
        written.append(weights)
    elif weights == "torchvision":
        written += _torchvision_cache(cfg.model.backbone)
    return written


def _at(work: Path, path: str) -> Path:
    return Path(path) if Path(path).is_absolute() else work / path


def _classification(data, work: Path) -> list[str]:
    root = _at(work, data.root)
    if data.kind != "imagefolder" or (root / data.train_split).exists():
        return []
    cifar = data.preset == "cifar"
    classes, size = (10, (32, 32)) if cifar else (6, IMAGENET_SIZE)  # 6: top-5 error means something
    write_image_folder(root, {data.train_split: 4 * classes, data.val_split: classes}, classes, size)
    return [data.root]


def _detection(data, work: Path) -> list[str]:
    written = []
    if data.kind == "coco":
        for split, count in (("train", TRAIN_IMAGES), ("val", VAL_IMAGES)):
            annotations = _at(work, data[f"{split}_annotations"])
            if not annotations.exists():
                write_coco(annotations, _at(work, data[f"{split}_images"]), count, seed=count)
                written.append(data[f"{split}_annotations"])
        return written
    for i, entry in enumerate([*data.voc_train, *data.voc_val]):
        folder, _, split = entry.rpartition("/")
        year = _at(work, data.voc_root) / folder
        if not (year / "ImageSets" / "Main" / f"{split}.txt").exists():
            write_voc_detection(year, split, TRAIN_IMAGES if entry in data.voc_train else VAL_IMAGES,
                                seed=i, size=VOC_SIZE)
            written.append(f"{data.voc_root}/{entry}")
    return written


def _segmentation(data, work: Path) -> list[str]:
    root = _at(work, data.root)
    splits = {data.train_split: TRAIN_IMAGES, data.val_split: VAL_IMAGES}
    if data.kind == "voc" and not (root / "ImageSets" / "Segmentation").exists():
        write_voc_segmentation(root, splits)
    elif data.kind == "coco" and not (root / "annotations").exists():
        from segmentation.coco import VOC_CATEGORY_IDS

        write_coco_voc_segmentation(root, splits, VOC_CATEGORY_IDS[1:])
    elif data.kind == "folder" and not (root / data.train_split).exists():
        write_mask_folder(root, splits, len(data.classes) if data.classes else 21)
    else:
        return []
    return [data.root]


def _torchvision_cache(name: str) -> list[str]:
    """torchvision's published file of `name` where `backbones.hub` looks ($TORCH_HOME), random."""
    from backbones.hub import torchvision_cached

    _, cached = torchvision_cached(name)
    if cached.exists():
        return []
    write_backbone(name, cached)
    return [str(cached)]
