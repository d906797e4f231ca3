"""Annotations to COCO JSON, for tools that read COCO only: a VOC-format folder (LabelImg's XML)
or a LabelMe folder (one JSON per image: polygons and rectangles).

Class names are given, or read from the annotations and sorted; category ids count from 1 in
that order. An annotation file that cannot be read, or a name outside the given classes, is an
error naming the file (or, with on_bad_record="skip", a counted skip in `Problems`).
"""

import json
from pathlib import Path, PureWindowsPath

import numpy as np

from engine.config import check_choice

from .data import Problems, clean_boxes, read_voc, voc_class_names

LABELME_SHAPES = ("polygon", "rectangle")  # what becomes a COCO object; others are counted skips


def voc_to_coco(root: str | Path, split: str, classes=None,
                on_bad_record: str = "error") -> tuple[dict, Problems]:
    """The COCO dict of a VOC folder's split (file names relative to JPEGImages/; difficult
    objects become iscrowd ones, which COCO evaluation ignores as VOC's does)."""
    names = sorted(voc_class_names(root, split)) if classes in (None, "auto") else list(classes)
    source = read_voc(root, split, names, on_bad_record=on_bad_record, first_id=1)
    return source.ground_truth, source.problems


def labelme_to_coco(folder: str | Path, classes=None, on_bad_record: str = "error") -> tuple[dict, Problems]:
    """The COCO dict of a LabelMe folder: polygons keep their outline as the segmentation,
    rectangles become boxes (and box-shaped segmentations); file names relative to `folder`."""
    check_choice("on_bad_record", on_bad_record, ("error", "skip"))
    folder, problems = Path(folder), Problems()
    documents = []
    for path in sorted(folder.rglob("*.json")):
        try:
            document = json.loads(path.read_text())
            shapes = [(s["label"], s.get("shape_type") or "polygon", s["points"]) for s in document["shapes"]]
            size = int(document["imageHeight"]), int(document["imageWidth"])
            image = path.parent / PureWindowsPath(document["imagePath"]).name
        except (OSError, ValueError, KeyError, TypeError) as error:
            problems.add("unreadable annotation files", f"{path}: {error!r}", on_bad_record)
            continue
        documents.append((path, image, size, shapes))
    if not documents:
        raise FileNotFoundError(f"no readable LabelMe JSON files in {folder}")
    found = sorted({label for *_, shapes in documents for label, _, _ in shapes})
    category = {name: i + 1 for i, name in enumerate(found if classes in (None, "auto") else classes)}
    coco = {"images": [], "annotations": [],
            "categories": [{"id": i, "name": n} for n, i in category.items()]}
    for image_id, (path, image, (height, width), shapes) in enumerate(documents, start=1):
        coco["images"].append({"id": image_id, "file_name": image.relative_to(folder).as_posix(),
                               "width": width, "height": height})
        for label, kind, points in shapes:
            _add_shape(coco, image_id, path, label, kind, points, (width, height), category, problems,
                       on_bad_record)
    return coco, problems


def _add_shape(coco, image_id, path, label, kind, points, size, category, problems, on_bad_record):
    if label not in category:
        problems.add("objects of unknown classes", f"{path}: unknown class {label!r}", on_bad_record)
        return
    if kind not in LABELME_SHAPES:
        problems.add(f"{kind} shapes skipped", f"{path}: {kind} shape of {label!r}", on_bad_record,
                     fatal=False)
        return
    xy = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if kind == "rectangle":
        (x0, y0), (x1, y1) = xy.min(0), xy.max(0)
        xy = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    box = np.concatenate([xy.min(0), xy.max(0)])
    boxes, keep = clean_boxes(box, *size, f"{path} ({label})", problems, on_bad_record)
    if len(xy) < 3 or not keep[0]:
        problems.add("degenerate shapes skipped", f"{path}: {kind} of {label!r} has no area",
                     on_bad_record, fatal=False)
        return
    x0, y0, x1, y1 = (float(v) for v in boxes[0])
    polygon = xy.ravel()
    area = 0.5 * abs(np.dot(xy[:, 0], np.roll(xy[:, 1], 1)) - np.dot(xy[:, 1], np.roll(xy[:, 0], 1)))
    coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": image_id,
                                "category_id": category[label], "iscrowd": 0, "area": float(area),
                                "bbox": [x0, y0, x1 - x0, y1 - y0], "segmentation": [polygon.tolist()]})
