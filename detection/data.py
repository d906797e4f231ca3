"""Detection data: COCO (instances JSON through pycocotools) and PASCAL VOC (devkit XML).

Both are read into the same records: one per image with its file, size, xyxy boxes, contiguous
labels (1..K; 0 is torchvision's background) and an `ignore` flag (COCO crowd, VOC difficult)
that keeps a box out of training and tells evaluation to neither reward nor punish it; with
`masks=True` (Mask R-CNN) also each object's COCO segmentation (polygons or RLE), decoded to a
mask only when a training sample is drawn.
Bad input is an error naming the file and record, or, with `on_bad_record="skip"`, a counted
skip listed in `problems` (and unreadable images are skipped and reported by the trainer).
"""

import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath

import numpy as np
import torch
from torch.utils.data import Dataset

from engine.config import check_choice
from engine.data import (
    BadImageError,
    BadSample,
    check_images,
    decode_image,
    report_dropped,
    sample_seed,
    seed_transform,
)

from .evaluation import coco_ground_truth

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)


class BadRecordError(ValueError):
    """An annotation that cannot be used; the message names the file and the record."""


@dataclass
class ImageRecord:
    image_id: int
    file: Path
    width: int
    height: int
    boxes: np.ndarray  # (N, 4) float32 xyxy, clipped to the image
    labels: np.ndarray  # (N,) int64 in 1..K
    ignore: np.ndarray  # (N,) bool: crowd (COCO) or difficult (VOC)
    segmentations: list | None = None  # COCO polygons or RLE per box, when masks are read


@dataclass
class Source:
    """What a reader returns: records, the label <-> category mapping and the ground truth in COCO
    format for evaluation (COCO's own file as loaded; VOC's converted)."""

    records: list
    category_ids: list  # contiguous label i <-> category_ids[i - 1]
    class_names: list
    ground_truth: dict
    problems: "Problems"


@dataclass
class Problems:
    """Counts of bad or dropped annotations, with a few examples, for the end-of-load report."""

    counts: Counter = field(default_factory=Counter)
    examples: list = field(default_factory=list)

    def add(self, kind: str, message: str, on_bad_record: str, fatal: bool = True) -> None:
        if fatal and on_bad_record == "error":
            raise BadRecordError(message)
        self.counts[kind] += 1
        if len(self.examples) < 20:
            self.examples.append(message)

    def report(self) -> str:
        return ", ".join(f"{n} {kind}" for kind, n in sorted(self.counts.items())) or "none"


def clean_boxes(boxes, width, height, where: str, problems: Problems, on_bad_record: str):
    """Clip to the image; a box with negative size is bad input, one clipped to nothing dropped."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    negative = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    for index in np.flatnonzero(negative):
        problems.add("boxes with negative size", f"{where}: box {boxes[index].tolist()} has "
                     f"negative width or height", on_bad_record)
    clipped = boxes.copy()
    clipped[:, 0::2] = clipped[:, 0::2].clip(0, width)
    clipped[:, 1::2] = clipped[:, 1::2].clip(0, height)
    empty = ~negative & ((clipped[:, 2] <= clipped[:, 0]) | (clipped[:, 3] <= clipped[:, 1]))
    for _ in np.flatnonzero(empty):
        problems.add("zero-area boxes dropped", f"{where}: zero-area box", on_bad_record,
                     fatal=False)
    return clipped, ~(negative | empty)


def read_coco(annotation_file: str | Path, image_dir: str | Path, on_bad_record: str = "error",
              masks: bool = False) -> Source:
    """A COCO instances file (2014 or 2017) and its image folder; `masks`: the instance
    segmentations too (an annotation whose segmentation is malformed is bad input)."""
    from pycocotools.coco import COCO

    check_choice("data.on_bad_sample", on_bad_record, ("skip", "error"))
    annotation_file, image_dir = Path(annotation_file), Path(image_dir)
    if not annotation_file.is_file():
        raise FileNotFoundError(f"COCO annotation file not found: {annotation_file}")
    if not image_dir.is_dir():
        raise FileNotFoundError(f"COCO image folder not found: {image_dir}")
    try:
        coco = COCO(str(annotation_file))
    except (ValueError, TypeError, KeyError) as error:  # json's JSONDecodeError is a ValueError
        what = "is empty" if annotation_file.stat().st_size == 0 else f"is not COCO JSON ({error})"
        raise BadRecordError(f"COCO annotation file {annotation_file} {what}") from None
    category_ids = sorted(coco.cats)
    label_of = {cid: i + 1 for i, cid in enumerate(category_ids)}
    problems = Problems()
    per_image = {image_id: [] for image_id in coco.imgs}  # usable annotations of usable images
    images = {}
    for image_id, info in sorted(coco.imgs.items()):
        problem = _image_entry_problem(info)
        if problem:
            problems.add("malformed image entries", f"{annotation_file.name}: image {image_id}: "
                         f"{problem}", on_bad_record)
        else:
            images[image_id] = info
    for ann in coco.dataset.get("annotations", []):
        where = f"{annotation_file.name}: annotation {ann.get('id')}"
        kind, problem = _annotation_problem(ann, images.get(ann.get("image_id")), masks)
        if problem:
            problems.add(kind, f"{where} (image {ann.get('image_id')}): {problem}", on_bad_record)
        elif ann.get("image_id") not in per_image:
            problems.add("annotations of unknown images", f"{where} names unknown image_id "
                         f"{ann.get('image_id')}", on_bad_record)
        elif ann["image_id"] not in images:
            continue  # its image entry was malformed and skipped: the annotation goes with it
        elif ann.get("category_id") not in label_of:
            problems.add("annotations of unknown categories", f"{where} names unknown "
                         f"category_id {ann.get('category_id')}", on_bad_record)
        else:
            per_image[ann["image_id"]].append(ann)
    records = []
    for image_id, info in images.items():
        anns = per_image[image_id]
        xywh = np.array([a["bbox"] for a in anns], dtype=np.float32).reshape(-1, 4)
        xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        where = f"{annotation_file.name}: image {image_id} ({info.get('file_name')})"
        boxes, keep = clean_boxes(xyxy, info["width"], info["height"], where, problems, on_bad_record)
        records.append(ImageRecord(
            image_id, image_dir / info["file_name"], info["width"], info["height"], boxes[keep],
            np.array([label_of[a["category_id"]] for a in anns], dtype=np.int64)[keep],
            np.array([bool(a.get("iscrowd", 0)) for a in anns], dtype=bool)[keep],
            [a["segmentation"] for a, k in zip(anns, keep) if k] if masks else None,
        ))
    names = [coco.cats[c]["name"] for c in category_ids]
    used = {id(a) for anns in per_image.values() for a in anns}
    return Source(records, category_ids, names,
                  restrict_ground_truth(coco.dataset, set(images), lambda a: id(a) in used), problems)


def restrict_ground_truth(ground_truth: dict, image_ids: set, keep_annotation=None) -> dict:
    """The COCO dict without the images (and annotations) that were dropped as bad input, so
    evaluation neither counts their boxes as misses nor reads malformed records."""
    annotations = [a for a in ground_truth.get("annotations", []) if a.get("image_id") in image_ids
                   and (keep_annotation is None or keep_annotation(a))]
    images = [i for i in ground_truth.get("images", []) if i.get("id") in image_ids]
    return {**ground_truth, "images": images, "annotations": annotations}


def _image_entry_problem(info: dict) -> str | None:
    """Why an `images` entry cannot be used, or None."""
    if not info.get("file_name"):
        return "no file_name"
    for key in ("width", "height"):
        value = info.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
            return f"{key} is {value!r}, not a positive number"
    return None


def _annotation_problem(ann: dict, image: dict | None, masks: bool) -> tuple[str, str | None]:
    """(kind, why) when the annotation's box, or its mask where masks are read, is malformed."""
    problem = _bbox_problem(ann.get("bbox"))
    if problem or not masks or image is None:
        return "malformed boxes", problem
    return "malformed masks", segmentation_problem(ann.get("segmentation"), image["height"], image["width"])


def _bbox_problem(bbox) -> str | None:
    """Why an annotation's bbox is not [x, y, width, height] of four finite numbers, or None."""
    if bbox is None:
        return "no bbox"
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        return f"bbox {bbox!r} is not [x, y, width, height]"
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in bbox):
        return f"bbox {bbox!r} holds a value that is not a finite number"
    return None


def segmentation_problem(segmentation, height: int, width: int) -> str | None:
    """Why a COCO segmentation is neither polygons (lists of >= 3 x, y points) nor an RLE of its
    image's size, or None."""
    if isinstance(segmentation, list):
        if not segmentation:
            return "segmentation is an empty list of polygons"
        for polygon in segmentation:
            if (not isinstance(polygon, list) or len(polygon) < 6 or len(polygon) % 2
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                               and np.isfinite(v) for v in polygon)):
                return f"polygon {str(polygon)[:60]} is not a list of >= 3 finite x, y pairs"
        return None
    if isinstance(segmentation, dict):
        if list(segmentation.get("size", ())) != [height, width]:
            return f"RLE size {segmentation.get('size')!r} is not the image's [{height}, {width}]"
        if not isinstance(segmentation.get("counts"), (str, bytes, list)):
            return "RLE has no counts"
        return None
    return f"segmentation {str(segmentation)[:60]!r} is neither polygons nor RLE"


def decode_masks(segmentations: list, height: int, width: int) -> np.ndarray:
    """(N, H, W) uint8 masks of COCO polygons / RLE (compressed or not), as COCO.annToMask."""
    from pycocotools import mask as mask_utils

    masks = np.zeros((len(segmentations), height, width), dtype=np.uint8)
    for i, segmentation in enumerate(segmentations):
        if isinstance(segmentation, list) or isinstance(segmentation.get("counts"), list):
            rles = mask_utils.frPyObjects(segmentation, height, width)
            rle = mask_utils.merge(rles) if isinstance(rles, list) else rles
        else:
            rle = segmentation
        masks[i] = mask_utils.decode(rle)
    return masks


def read_voc(root: str | Path, split: str, classes=VOC_CLASSES, on_bad_record: str = "error",
             first_id: int = 0) -> Source:
    """A VOC devkit year folder (Annotations/, JPEGImages/, ImageSets/Main/<split>.txt); image
    ids count from `first_id`, so several years can be joined."""
    check_choice("data.on_bad_sample", on_bad_record, ("skip", "error"))
    root = Path(root)
    split_file = root / "ImageSets" / "Main" / f"{split}.txt"
    if not split_file.is_file():
        raise FileNotFoundError(f"VOC split file not found: {split_file}")
    label_of = {name: i + 1 for i, name in enumerate(classes)}
    problems, records = Problems(), []
    for image_id, name in enumerate(split_file.read_text().split(), start=first_id):
        record = _read_voc_xml(root / "Annotations" / f"{name}.xml", root / "JPEGImages",
                               image_id, label_of, problems, on_bad_record)
        if record is not None:
            records.append(record)
    category_ids = list(range(1, len(classes) + 1))
    return Source(records, category_ids, list(classes),
                  coco_ground_truth(records, category_ids, classes), problems)


def voc_class_names(root: str | Path, split: str) -> set[str]:
    """The object names the XML files of a split use (unreadable files are read_voc's to report)."""
    root = Path(root)
    split_file = root / "ImageSets" / "Main" / f"{split}.txt"
    if not split_file.is_file():
        raise FileNotFoundError(f"VOC split file not found: {split_file}")
    names = set()
    for name in split_file.read_text().split():
        try:
            tree = ET.parse(root / "Annotations" / f"{name}.xml").getroot()
        except (ET.ParseError, OSError):
            continue
        names.update(o.findtext("name", "").strip() for o in tree.findall("object"))
    return names - {""}


def _read_voc_xml(path: Path, image_dir: Path, image_id, label_of, problems, on_bad_record):
    try:
        tree = ET.parse(path).getroot()
        width, height = (int(tree.find("size").find(k).text) for k in ("width", "height"))
        objects = []
        for obj in tree.findall("object"):
            box = obj.find("bndbox")
            # VOC pixel indices are 1-based and inclusive; continuous coordinates start at 0.
            coords = [float(box.find(k).text) - (1 if k.endswith("min") else 0)
                      for k in ("xmin", "ymin", "xmax", "ymax")]
            difficult = obj.find("difficult")
            objects.append((obj.find("name").text.strip(), coords,
                            difficult is not None and difficult.text.strip() == "1"))
        file_name = (tree.findtext("filename") or f"{path.stem}.jpg").strip()  # some tools omit it
        file_name = PureWindowsPath(file_name).name  # some write a path of their machine (/ or \\)
    except (ET.ParseError, AttributeError, ValueError, OSError) as error:
        problems.add("unreadable annotation files", f"{path}: {error}", on_bad_record)
        return None
    for cls, _, _ in objects:
        if cls not in label_of:
            problems.add("objects of unknown classes", f"{path}: unknown class {cls!r}",
                         on_bad_record)
    objects = [o for o in objects if o[0] in label_of]
    boxes, keep = clean_boxes([o[1] for o in objects], width, height, str(path), problems,
                              on_bad_record)
    return ImageRecord(image_id, image_dir / file_name, width, height, boxes[keep],
                       np.array([label_of[o[0]] for o in objects], dtype=np.int64)[keep],
                       np.array([o[2] for o in objects], dtype=bool)[keep])


class DetectionDataset(Dataset):
    """A source's records -> (float image CHW in [0, 1], target) for torchvision's detectors.

    Training drops images with no usable box and keeps ignored boxes out of the targets;
    `transform` is an albumentations Compose with bbox parameters (labels in "labels").
    """

    def __init__(self, source: Source, transform=None, *, train: bool, seed: int = 0,
                 on_bad_record: str = "error"):
        records, self.problems = source.records, source.problems
        if train:
            kept = [r for r in records if (~r.ignore).any()]
            self.problems.counts["training images without boxes skipped"] += len(records) - len(kept)
            records = kept
        self.records, self.category_ids = records, source.category_ids
        self.classes, self.ground_truth = source.class_names, source.ground_truth
        self.transform, self.train, self.seed, self.epoch = transform, train, seed, 0
        self.on_bad_record = on_bad_record

    def __len__(self) -> int:
        return len(self.records)

    def checked(self, what: str) -> "DetectionDataset":
        """Without the images whose files cannot be read (refused or reported by
        `on_bad_record`); their ground truth leaves with them."""
        bad = check_images([r.file for r in self.records], what=what)
        report_dropped(bad, what, self.on_bad_record, "data.on_bad_sample")
        if bad:
            self.skipped_files = [str(self.records[i].file) for i in sorted(bad)]
            self.problems.counts["unreadable images skipped"] += len(bad)
            self.records = [r for i, r in enumerate(self.records) if i not in bad]
            self.ground_truth = restrict_ground_truth(self.ground_truth, {r.image_id for r in self.records})
        return self

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int):
        record = self.records[index]
        try:
            image = decode_image(record.file)
        except BadImageError as error:
            if self.on_bad_record == "error":
                raise
            return BadSample(str(record.file), str(error))
        keep = ~record.ignore if self.train else np.ones(len(record.labels), dtype=bool)
        boxes, labels = record.boxes[keep], record.labels[keep]
        inputs = {"image": image, "bboxes": boxes, "labels": labels}
        if self.train and record.segmentations is not None:  # evaluation reads the COCO masks
            inputs["masks"] = decode_masks([s for s, k in zip(record.segmentations, keep) if k],
                                           record.height, record.width)
        seed = sample_seed(self.seed, self.epoch, index)
        if self.transform is not None:
            seed_transform(self.transform, seed)
            inputs = self.transform(**inputs)
        target = {
            "boxes": torch.as_tensor(np.asarray(inputs["bboxes"], dtype=np.float32).reshape(-1, 4)),
            "labels": torch.as_tensor(np.asarray(inputs["labels"], dtype=np.int64)),
            "image_id": record.image_id,
            "seed": seed,  # also of the anchor and RoI sampling (detection.sampling)
        }
        if "masks" in inputs:
            target["masks"] = torch.as_tensor(np.asarray(inputs["masks"], dtype=np.uint8))
            if len(target["masks"]) != len(target["boxes"]):
                raise RuntimeError(f"{record.file}: the transform kept {len(target['boxes'])} boxes "
                                   f"but {len(target['masks'])} masks")
        return torch.from_numpy(np.array(inputs["image"])).permute(2, 0, 1).float() / 255, target
