"""Detection metrics: COCO's twelve for boxes and masks (through faster-coco-eval, or pycocotools
as the reference) and PASCAL VOC mAP@0.5 (VOC07 11-point and area under the curve), from the same records."""

import contextlib
import io
from dataclasses import dataclass, field

import numpy as np

from engine.config import check_choice

COCO_METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl",
                "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
BACKENDS = ("faster_coco_eval", "pycocotools")


def coco_ground_truth(records, category_ids, class_names) -> dict:
    """A COCO-format dict of the records (VOC's difficult boxes become iscrowd ones)."""
    images, annotations = [], []
    for record in records:
        images.append({"id": record.image_id, "width": record.width, "height": record.height,
                       "file_name": record.file.name})
        for box, label, ignore in zip(record.boxes, record.labels, record.ignore):
            w, h = float(box[2] - box[0]), float(box[3] - box[1])
            annotations.append({"id": len(annotations) + 1, "image_id": record.image_id,
                                "category_id": category_ids[label - 1], "iscrowd": int(ignore),
                                "bbox": [float(box[0]), float(box[1]), w, h], "area": w * h})
    categories = [{"id": c, "name": n} for c, n in zip(category_ids, class_names)]
    return {"images": images, "annotations": annotations, "categories": categories}


def coco_bbox(box) -> list[float]:
    """COCO's [x, y, width, height] of an xyxy box (in the box's own precision: predictions and
    evaluation write the same numbers)."""
    return [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])]


def encode_masks(masks) -> list[dict]:
    """Mask R-CNN's (N, 1, H, W) mask probabilities as COCO RLEs (JSON-ready), binarised at 0.5 as
    torchvision's reference and detectron2 do."""
    from pycocotools import mask as mask_utils

    binary = (masks[:, 0] > 0.5).cpu().numpy().astype(np.uint8)
    rles = mask_utils.encode(np.asfortranarray(binary.transpose(1, 2, 0))) if len(binary) else []
    return [{"size": rle["size"], "counts": rle["counts"].decode("ascii")} for rle in rles]


@dataclass
class CocoEvaluation:
    """COCOeval's summary, and per category what its precision / recall arrays hold (the numbers
    pycocotools prints when given that category alone)."""

    metrics: dict  # COCO_METRICS
    per_category: dict = field(default_factory=dict)  # name -> {AP, AP50, AR100}; None: no truth
    pr_curves: dict = field(default_factory=dict)  # name -> precision at RECALLS (IoU .5, 100 dets)


RECALLS = np.linspace(0, 1, 101)  # COCOeval's recall thresholds


def coco_evaluate(ground_truth: dict, results: list[dict], backend: str = "faster_coco_eval",
                  iou_type: str = "bbox") -> dict:
    """COCOeval's 12 metrics for COCO-format results ({image_id, category_id, bbox, score}, and
    segmentation for iou_type="segm")."""
    return evaluate_coco(ground_truth, results, backend, iou_type).metrics


def evaluate_coco(ground_truth: dict, results: list[dict], backend: str = "faster_coco_eval",
                  iou_type: str = "bbox") -> CocoEvaluation:
    """The 12 metrics and the per-category figures of one COCOeval run."""
    check_choice("backend", backend, BACKENDS)
    check_choice("iou_type", iou_type, ("bbox", "segm"))
    if backend == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    else:
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as COCOeval
    if not results:
        return CocoEvaluation(dict.fromkeys(COCO_METRICS, 0.0))
    if iou_type == "segm":  # else COCO's loadRes takes the box area as the mask's (detectron2 too)
        results = [{k: v for k, v in r.items() if k != "bbox"} for r in results]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = ground_truth
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(results), iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    metrics = {name: float(value) for name, value in zip(COCO_METRICS, evaluator.stats[:12])}
    names = {c["id"]: c["name"] for c in ground_truth.get("categories", [])}
    per_category, curves = _per_category(evaluator, [names.get(c, str(c)) for c in evaluator.params.catIds])
    return CocoEvaluation(metrics, per_category, curves)


def _mean_defined(values: np.ndarray) -> float | None:
    """COCOeval's mean over the cells it filled (-1: no ground truth there), or None."""
    defined = values[values > -1]
    return float(defined.mean()) if defined.size else None


def _per_category(evaluator, names: list[str]) -> tuple[dict, dict]:
    """AP, AP50 and AR100 of each category over all areas, as COCOeval's summarize computes them
    for one category: slices of its precision [T, R, K, A, M] and recall [T, K, A, M] arrays."""
    precision, recall = evaluator.eval["precision"], evaluator.eval["recall"]
    per_category, curves = {}, {}
    for k, name in enumerate(names):
        per_category[name] = {"AP": _mean_defined(precision[:, :, k, 0, -1]),
                              "AP50": _mean_defined(precision[0, :, k, 0, -1]),
                              "AR100": _mean_defined(recall[:, k, 0, -1])}
        curves[name] = np.clip(precision[0, :, k, 0, -1], 0, None).tolist()
    return per_category, curves


def recall_at_score(ground_truth: dict, results: list[dict], score: float, iou: float = 0.5) -> float:
    """The fraction of ground-truth objects (crowds left out) that a detection of their class
    with `score` or more covers at IoU >= `iou`, each detection taking at most one object, best
    score first (COCO's greedy matching): what a picture drawn at that threshold shows found."""
    xyxy = lambda b: np.array([b[0], b[1], b[0] + b[2], b[1] + b[3]], dtype=float)  # noqa: E731
    objects = {}
    for a in ground_truth["annotations"]:
        if not a.get("iscrowd", 0):
            objects.setdefault((a["image_id"], a["category_id"]), []).append(xyxy(a["bbox"]))
    if not objects:
        raise ValueError("recall_at_score: the ground truth holds no (non-crowd) objects")
    unmatched = {key: np.stack(boxes) for key, boxes in objects.items()}
    found = 0
    for r in sorted((r for r in results if r["score"] >= score), key=lambda r: -r["score"]):
        boxes = unmatched.get((r["image_id"], r["category_id"]))
        if boxes is None or not len(boxes):
            continue
        overlaps = one_to_many_iou(xyxy(r["bbox"]), boxes)
        best = int(overlaps.argmax())
        if overlaps[best] >= iou:
            unmatched[(r["image_id"], r["category_id"])] = np.delete(boxes, best, axis=0)
            found += 1
    return found / sum(len(boxes) for boxes in objects.values())


VOC_CONVENTIONS = ("devkit", "continuous")


def pixel_indices(boxes: np.ndarray) -> np.ndarray:
    """Boxes as this toolkit reads VOC XML (the pixels' extent: xmin - 1, ymin - 1, xmax, ymax) back
    in the devkit's 1-based inclusive pixel indices, the XML's own numbers; detections are written
    so too (detectron2's VOC evaluator: the inverse of its loading)."""
    indices = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    indices[:, :2] += 1
    return indices


def one_to_many_iou(box: np.ndarray, boxes: np.ndarray, convention: str = "continuous") -> np.ndarray:
    """IoU of `box` with each of `boxes`. devkit: the PASCAL devkit's (VOCevaldet.m) on pixel
    indices: a width, height or intersection counts pixels inclusively (x2 - x1 + 1), and boxes
    overlap only where both sides of the intersection are positive. continuous: the same numbers
    as continuous coordinates (x2 - x1)."""
    one = 1.0 if convention == "devkit" else 0.0
    iw = np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]) + one
    ih = np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]) + one
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    area = (box[2] - box[0] + one) * (box[3] - box[1] + one)
    areas = (boxes[:, 2] - boxes[:, 0] + one) * (boxes[:, 3] - boxes[:, 1] + one)
    return inter / (area + areas - inter)


def _average_precision(recall, precision, use_07_metric: bool) -> float:
    if use_07_metric:  # VOC2007: mean of the best precision at recall >= 0, 0.1, ..., 1
        return float(np.mean([precision[recall >= t].max() if (recall >= t).any() else 0.0
                              for t in np.linspace(0, 1, 11)]))
    r = np.concatenate([[0.0], recall, [1.0]])  # VOC2010+: area under the monotone curve
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.flatnonzero(r[1:] != r[:-1])
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def voc_evaluate(records, detections: dict, num_classes: int, iou_threshold: float = 0.5,
                 convention: str = "continuous", voc_boxes: bool = False) -> dict:
    """VOC mAP over the classes with ground truth (VOC07 11-point and area under the curve)."""
    return voc_means(voc_per_class(records, detections, num_classes, iou_threshold, convention, voc_boxes))


def voc_means(per_class: dict) -> dict:
    """VOC07_mAP50 and VOC_mAP50: the means of voc_per_class's APs."""
    aps07 = [ap07 for ap07, _ in per_class.values()]
    aps = [ap for _, ap in per_class.values()]
    return {"VOC07_mAP50": float(np.mean(aps07)) if aps07 else 0.0,
            "VOC_mAP50": float(np.mean(aps)) if aps else 0.0}


def voc_per_class(records, detections: dict, num_classes: int, iou_threshold: float = 0.5,
                  convention: str = "continuous", voc_boxes: bool = False) -> dict:
    """label -> (VOC07 AP, area AP) at `iou_threshold`, for each label with ground truth.
    `detections[image_id]` = (boxes xyxy, scores, labels 1..K) arrays (masks after them are not
    read). `voc_boxes`: the records were read from VOC XML, so ground truth and detections are
    scored in the devkit's pixel indices (`pixel_indices`) with `convention`'s IoU (`one_to_many_iou`).

    As the devkit: a detection matches the unclaimed ground truth it overlaps most if the IoU is
    at least `iou_threshold`; ignored (difficult) ground truth neither counts as a miss nor makes
    a detection false.
    """
    if convention not in VOC_CONVENTIONS:
        raise ValueError(f"eval.voc_convention={convention!r}: valid: {', '.join(VOC_CONVENTIONS)}")
    frame = pixel_indices if voc_boxes else (lambda b: np.asarray(b, dtype=np.float64).reshape(-1, 4))
    truth = {r.image_id: (frame(r.boxes), r.labels, r.ignore) for r in records}  # scored boxes, once
    scored = {image_id: (frame(boxes), scores, labels)
              for image_id, (boxes, scores, labels, *_) in detections.items() if image_id in truth}
    per_class = {}
    for label in range(1, num_classes + 1):
        gt = {image_id: (boxes[labels == label], ignore[labels == label])
              for image_id, (boxes, labels, ignore) in truth.items()}
        positives = sum(int((~ignore).sum()) for _, ignore in gt.values())
        if positives == 0:
            continue
        found = [(score, image_id, box) for image_id, (boxes, scores, labels) in scored.items()
                 for box, score, lab in zip(boxes, scores, labels) if lab == label]
        found.sort(key=lambda d: -d[0])
        used = {image_id: np.zeros(len(g[0]), dtype=bool) for image_id, g in gt.items()}
        tp, fp = np.zeros(len(found)), np.zeros(len(found))
        for i, (_, image_id, box) in enumerate(found):
            boxes, ignore = gt[image_id]
            overlaps = one_to_many_iou(box, boxes, convention) if len(boxes) else np.zeros(0)
            best = int(overlaps.argmax()) if len(overlaps) else -1
            if best < 0 or overlaps[best] < iou_threshold:
                fp[i] = 1
            elif ignore[best]:
                continue
            elif not used[image_id][best]:
                tp[i], used[image_id][best] = 1, True
            else:
                fp[i] = 1
        tp, fp = np.cumsum(tp), np.cumsum(fp)
        recall = tp / positives
        precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        per_class[label] = (_average_precision(recall, precision, True),
                            _average_precision(recall, precision, False))
    return per_class
