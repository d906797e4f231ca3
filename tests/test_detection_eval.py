"""Evaluation parity: faster-coco-eval and pycocotools give the same twelve numbers; VOC AP."""

import json

import numpy as np
import pytest

from detection.data import read_coco
from detection.evaluation import COCO_METRICS, coco_evaluate, recall_at_score, voc_evaluate
from helpers import REPO, pycocotools_stats, write_coco_dataset


@pytest.fixture
def source(tmp_path):
    ann = write_coco_dataset(tmp_path, num_images=12, size=64, seed=3)
    return read_coco(ann, tmp_path / "images"), ann


def noisy_results(source, seed=0, copies=3, jitter=4.0):
    rng = np.random.default_rng(seed)
    results = []
    for record in source.records:
        for box, label in zip(record.boxes, record.labels):
            for _ in range(copies):
                x0, y0, x1, y1 = (box + rng.normal(0, jitter, 4)).tolist()
                results.append({"image_id": record.image_id, "score": float(rng.uniform()),
                                "category_id": source.category_ids[int(rng.integers(1, 3)) - 1
                                                                   if rng.uniform() < 0.2 else label - 1],
                                "bbox": [x0, y0, max(x1 - x0, 1), max(y1 - y0, 1)]})
    return results


def test_backends_agree_with_pycocotools_directly(source):
    src, ann = source
    results = noisy_results(src)
    ours = [coco_evaluate(src.ground_truth, results, b) for b in ("faster_coco_eval", "pycocotools")]
    for name, value in zip(COCO_METRICS, pycocotools_stats(ann, results)):
        assert ours[0][name] == pytest.approx(value, abs=1e-9), name
        assert ours[1][name] == pytest.approx(value, abs=1e-9), name
    assert 0.05 < ours[0]["AP"] < 0.95  # a case that tests something


def test_recall_at_a_score_is_cocoevals_recall_of_the_detections_above_it(source):
    """Per category, against COCOeval at IoU 0.5 on the detections scored >= the threshold (the
    same greedy one-to-one matching); pooled, the objects found over all objects."""
    import json

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    src, ann = source
    results = noisy_results(src)
    ground_truth = json.loads(ann.read_text())
    for score in (0.3, 0.7):
        kept = [r for r in results if r["score"] >= score]
        coco = COCO(str(ann))
        evaluator = COCOeval(coco, coco.loadRes(kept), "bbox")
        evaluator.params.iouThrs = np.array([0.5])
        evaluator.evaluate()
        evaluator.accumulate()
        found = 0
        for k, category in enumerate(evaluator.params.catIds):
            objects = [a for a in ground_truth["annotations"] if a["category_id"] == category]
            ours = recall_at_score({"annotations": objects},
                                   [r for r in results if r["category_id"] == category], score)
            assert ours == pytest.approx(evaluator.eval["recall"][0, k, 0, -1], abs=1e-12), (score, category)
            found += ours * len(objects)
        pooled = recall_at_score(ground_truth, results, score)
        assert pooled == pytest.approx(found / len(ground_truth["annotations"]))
        assert 0.05 < pooled < 0.95  # neither none nor all: a case that tests the matching
    with pytest.raises(ValueError, match=r"^recall_at_score: the ground truth holds no \(non-crowd\) obj"):
        recall_at_score({"annotations": []}, results, 0.5)


def test_recall_at_a_score_by_hand():
    """Crowds are left out (a missing `iscrowd` is 0); a score or an IoU equal to the threshold
    counts; the best score claims first: here the 0.5 detection's best object is the one the 0.9
    detection takes, so it finds the other only in that order."""
    def box(x1, x2, **extra):  # COCO's [x, y, width, height], all in one image and class
        return {"image_id": 1, "category_id": 1, "bbox": [x1, 0, x2 - x1, 10], **extra}

    truth = {"annotations": [box(0, 10, iscrowd=0), box(4, 14), box(50, 60, iscrowd=1)]}
    first, second = box(0, 10, score=0.9), box(1, 11, score=0.5)  # IoU with the 2nd object: 0.54
    assert recall_at_score(truth, [second, first], 0.5) == 1.0
    assert recall_at_score(truth, [second, first], 0.6) == 0.5
    assert recall_at_score(truth, [box(50, 60, score=1.0)], 0.0) == 0.0  # the crowd is no object
    half = {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 5], "score": 1.0}  # IoU 0.5 exactly
    assert recall_at_score({"annotations": [box(0, 10)]}, [half], 0.0) == 1.0


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools' decode
def test_masks_are_encoded_above_one_half_and_decode_back():
    """COCO RLEs of the probabilities binarised at > 0.5 (0.5 itself is background)."""
    import torch
    from pycocotools import mask as mask_utils

    from detection.evaluation import encode_masks

    probabilities = torch.rand(3, 1, 7, 9)
    probabilities[0, 0, 2, 3], probabilities[1, 0, 4, 4] = 0.5, 0.5000001
    rles = encode_masks(probabilities)
    decoded = mask_utils.decode([{**rle, "counts": rle["counts"].encode()} for rle in rles])
    assert decoded.shape == (7, 9, 3) and decoded[2, 3, 0] == 0 and decoded[4, 4, 1] == 1
    np.testing.assert_array_equal(decoded, (probabilities[:, 0] > 0.5).numpy().transpose(1, 2, 0))
    json.dumps(rles)  # as written into the detections file
    assert encode_masks(torch.zeros(0, 1, 7, 9)) == []


def test_mask_backends_agree_with_pycocotools_directly(source):
    """segm AP: the results' masks are the jittered boxes as polygons; the reference is given the
    masks alone (with a bbox, COCO's loadRes would take the box area as the mask's)."""
    from pycocotools import mask as mask_utils

    src, ann = source
    results = []
    for result in noisy_results(src, seed=1):
        x, y, w, h = result.pop("bbox")
        rle = mask_utils.merge(mask_utils.frPyObjects([[x, y, x + w, y, x + w, y + h, x, y + h]], 64, 64))
        results.append({**result, "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()}})
    reference = pycocotools_stats(ann, results, "segm")
    with_boxes = [{**r, "bbox": [0.0, 0.0, 1.0, 1.0]} for r in results]  # ignored for masks
    for backend in ("faster_coco_eval", "pycocotools"):
        ours = coco_evaluate(src.ground_truth, with_boxes, backend, iou_type="segm")
        for name, value in zip(COCO_METRICS, reference):
            assert ours[name] == pytest.approx(value, abs=1e-9), (backend, name)
    assert 0.05 < reference[0] < 0.95


def test_perfect_detections_score_one(source):
    src, _ = source
    results = [{"image_id": r.image_id, "category_id": src.category_ids[label - 1], "score": 1.0,
                "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]}
               for r in src.records for b, label in zip(r.boxes, r.labels)]
    metrics = coco_evaluate(src.ground_truth, results)
    assert metrics["AP"] == pytest.approx(1.0) and metrics["AP50"] == pytest.approx(1.0)
    detections = {r.image_id: (r.boxes, np.ones(len(r.boxes)), r.labels) for r in src.records}
    voc = voc_evaluate(src.records, detections, num_classes=2)
    assert voc == {"VOC07_mAP50": pytest.approx(1.0), "VOC_mAP50": pytest.approx(1.0)}


def test_voc_ap_by_hand(source):
    """One class, 2 ground-truth boxes: a hit (0.9), a false positive (0.8), a hit (0.7):
    precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> AUC AP = 1/2*1 + 1/2*2/3 = 5/6."""
    src, _ = source
    record = src.records[0]
    record.boxes = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], dtype=np.float32)
    record.labels, record.ignore = np.array([1, 1]), np.array([False, False])
    detections = {record.image_id: (np.array([[0, 0, 10, 10], [40, 40, 50, 50], [20, 20, 30, 30]]),
                                    np.array([0.9, 0.8, 0.7]), np.array([1, 1, 1]))}
    voc = voc_evaluate([record], detections, num_classes=1)
    assert voc["VOC_mAP50"] == pytest.approx(5 / 6)
    assert voc["VOC07_mAP50"] == pytest.approx((6 * 1 + 5 * 2 / 3) / 11)
    record.ignore = np.array([False, True])  # the second box difficult: its hit is not counted
    voc = voc_evaluate([record], detections, num_classes=1)
    assert voc["VOC_mAP50"] == pytest.approx(1.0)


def test_per_category_figures_are_pycocotools_own_for_that_category(tmp_path):
    """AP, AP50 and AR100 per category equal what pycocotools prints given that category alone, and
    the precision curve is its own at IoU 0.5: on medium objects (not all areas are one range) with
    15 detections an object (100 detections are not 10)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from detection.evaluation import evaluate_coco

    ann = write_coco_dataset(tmp_path, num_images=8, size=160, seed=3)
    src = read_coco(ann, tmp_path / "images")
    results = noisy_results(src, seed=2, copies=15, jitter=12.0)
    gt = COCO(str(ann))
    for backend in ("faster_coco_eval", "pycocotools"):
        ours = evaluate_coco(src.ground_truth, results, backend)
        assert set(ours.per_category) == {"red", "blue"}
        for category_id, name in zip(src.category_ids, src.class_names):
            evaluator = COCOeval(gt, gt.loadRes([dict(r) for r in results]), "bbox")
            evaluator.params.catIds = [category_id]
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
            reference = evaluator.stats
            figures = ours.per_category[name]
            assert figures["AP"] == pytest.approx(reference[0], abs=1e-9), (backend, name)
            assert figures["AP50"] == pytest.approx(reference[1], abs=1e-9), (backend, name)
            assert figures["AR100"] == pytest.approx(reference[8], abs=1e-9), (backend, name)
            curve = np.clip(evaluator.eval["precision"][0, :, 0, 0, -1], 0, None)
            np.testing.assert_allclose(ours.pr_curves[name], curve, atol=1e-12, err_msg=f"{backend} {name}")
        aps = [v["AP"] for v in ours.per_category.values()]
        assert ours.metrics["AP"] == pytest.approx(np.mean(aps), abs=1e-12)  # COCO's AP: their mean
        assert len(set(aps)) == 2  # categories that differ: the slicing is checked


def test_voc_per_class_averages_to_the_map(source):
    from detection.evaluation import voc_per_class

    src, _ = source
    results = noisy_results(src, seed=4)
    detections = {}
    for r in results:
        boxes, scores, labels = detections.setdefault(r["image_id"], ([], [], []))
        x, y, w, h = r["bbox"]
        boxes.append([x, y, x + w, y + h])
        scores.append(r["score"])
        labels.append(src.category_ids.index(r["category_id"]) + 1)
    detections = {k: tuple(np.asarray(v) for v in d) for k, d in detections.items()}
    per_class = voc_per_class(src.records, detections, 2)
    overall = voc_evaluate(src.records, detections, 2)
    assert overall["VOC_mAP50"] == pytest.approx(np.mean([ap for _, ap in per_class.values()]))
    assert overall["VOC07_mAP50"] == pytest.approx(np.mean([ap for ap, _ in per_class.values()]))


def test_the_comparison_table_sets_coco_runs_beside_table_8_and_voc_runs_beside_table_7(tmp_path):
    from experiments.detection_table import compare_table

    coco, voc = tmp_path / "coco.json", tmp_path / "voc.json"
    coco.write_text(json.dumps({"name": "coco_r101", "backbone": "resnet101", "head": "c4", "data": "coco",
                                "metrics": {"val_AP50": 0.5, "val_AP": 0.3, "val_VOC07_mAP50": 0.6}}))
    voc.write_text(json.dumps({"name": "voc_vgg", "backbone": "vgg16", "head": "vgg", "data": "voc",
                               "metrics": {"val_AP50": 0.7, "val_AP": 0.4, "val_VOC07_mAP50": 0.71}}))
    lines = compare_table([coco, voc]).splitlines()
    assert "paper VOC07 mAP@.5 (Table 7)" in lines[0]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert cells[0][5:] == ["48.4", "27.2", "-", "-"]  # Table 8's ResNet-101 row; no VOC figure
    assert cells[1][5:] == ["-", "-", "71.0", "73.2"]  # Table 7's VGG-16 on VOC 2007 test


# ---- VOC: the devkit's pixel counting ----------------------------------------------------------

def devkit_iou(a, b) -> float:
    """VOCevaldet.m's overlap of two boxes in pixel indices, written out as the devkit does."""
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if iw <= 0 or ih <= 0:
        return 0.0
    ua = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - iw * ih
    return iw * ih / ua


@pytest.mark.parametrize("a, b, devkit, continuous", [
    ([1, 1, 10, 10], [6, 1, 15, 10], 50 / 150, 36 / 126),   # 10x10 px boxes, half shared
    ([1, 1, 5, 5], [5, 1, 9, 5], 5 / 45, 0.0),              # one shared column: a pixel wide
    ([1, 1, 5, 5], [6, 1, 10, 5], 0.0, 0.0),                # side by side, no pixel shared
    ([1, 1, 4, 4], [2, 2, 4, 4], 9 / 16, 4 / 9),            # small: across 0.5 one way only
])
def test_iou_of_hand_made_boxes_under_both_conventions(a, b, devkit, continuous):
    from detection.evaluation import one_to_many_iou

    a, b = np.array(a, float), np.array([b], float)
    assert one_to_many_iou(a, b, "devkit")[0] == pytest.approx(devkit, abs=1e-12)
    assert one_to_many_iou(a, b, "devkit")[0] == pytest.approx(devkit_iou(a, b[0]), abs=1e-12)
    assert one_to_many_iou(a, b, "continuous")[0] == pytest.approx(continuous, abs=1e-12)


def test_reading_and_devkit_scoring_agree():
    """A VOC box is read as the extent of its pixels (xmin - 1, ymin - 1, xmax, ymax) and scored
    back in the XML's pixel indices: the devkit's IoU there is the continuous IoU of the extents,
    for any boxes (detections at fractional coordinates too)."""
    from detection.evaluation import one_to_many_iou, pixel_indices

    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 60, (200, 2, 2))
    extents = np.concatenate([corners.min(1), corners.max(1) + rng.uniform(0.5, 30, (200, 2))], 1)
    for box in extents[:20]:
        devkit = one_to_many_iou(pixel_indices(box)[0], pixel_indices(extents), "devkit")
        np.testing.assert_allclose(devkit, one_to_many_iou(box, extents, "continuous"), atol=1e-12)


def test_the_conventions_give_different_aps_where_a_small_box_crosses_the_threshold(source):
    """Two objects (XML pixel indices [1, 1, 4, 4], a 4x4 px object, and [11, 11, 60, 60]); an exact
    detection of the large one (0.9) and one of [2, 2, 4, 4] on the small one (0.8). The devkit:
    IoU 9/16 >= 0.5, both hits: precision 1, 1 at recall 1/2, 1 -> AP 1 (11-point and area).
    Continuous areas of the same numbers: IoU 4/9, a false positive: precision 1, 1/2 at recall
    1/2, 1/2 -> area AP 1/2, 11-point AP 6/11 (recall 0, .1, ..., .5 reached at precision 1)."""
    src, _ = source
    record = src.records[0]
    record.boxes = np.array([[0, 0, 4, 4], [10, 10, 60, 60]], dtype=np.float32)  # as read: extents
    record.labels, record.ignore = np.array([1, 1]), np.array([False, False])
    detections = {record.image_id: (np.array([[10, 10, 60, 60], [1, 1, 4, 4]], dtype=np.float32),
                                    np.array([0.9, 0.8]), np.array([1, 1]))}
    devkit = voc_evaluate([record], detections, 1, convention="devkit", voc_boxes=True)
    continuous = voc_evaluate([record], detections, 1, convention="continuous", voc_boxes=True)
    assert devkit == {"VOC07_mAP50": pytest.approx(1.0), "VOC_mAP50": pytest.approx(1.0)}
    assert continuous == {"VOC07_mAP50": pytest.approx(6 / 11), "VOC_mAP50": pytest.approx(0.5)}


def test_voc_convention_follows_the_data_and_refuses_devkit_for_coco(tmp_path):
    from detection import load_detection_config
    from detection.train import voc_convention
    from engine.config import ConfigError

    coco = REPO / "configs/detection/smoke.yaml"
    assert voc_convention(load_detection_config(coco, training=False)) == "continuous"
    paper = REPO / "configs/detection/paper/voc0712_r101_c4.yaml"
    assert voc_convention(load_detection_config(paper, training=False)) == "devkit"
    voc = load_detection_config(coco, ["data.kind=voc", "eval.voc_convention=continuous"], training=False)
    assert voc_convention(voc) == "continuous"
    with pytest.raises(ConfigError, match="data.kind='coco' boxes are continuous"):
        voc_convention(load_detection_config(coco, ["eval.voc_convention=devkit"], training=False))
    with pytest.raises(ConfigError, match="eval.voc_convention='inclusive'"):
        voc_convention(load_detection_config(coco, ["eval.voc_convention=inclusive"], training=False))


def test_coco_evaluation_edges(source, capsys):
    """No detections: twelve zeros; a category without ground truth: no figures and a zero curve
    (COCOeval's -1 cells are not averaged); COCOeval prints nothing; a backend or an IoU type that
    does not exist is named with the valid ones."""
    from detection.evaluation import evaluate_coco
    from engine.config import ConfigError

    src, _ = source
    assert coco_evaluate(src.ground_truth, []) == dict.fromkeys(COCO_METRICS, 0.0)
    categories = [*src.ground_truth["categories"], {"id": 9, "name": "green"}]
    ground_truth = {**src.ground_truth, "categories": categories}
    ours = evaluate_coco(ground_truth, noisy_results(src), "pycocotools")
    assert ours.per_category["green"] == {"AP": None, "AP50": None, "AR100": None}
    assert ours.pr_curves["green"] == [0.0] * 101 and ours.per_category["red"]["AP"] > 0
    assert capsys.readouterr().out == ""
    with pytest.raises(ConfigError, match=r"invalid value 'coco' for 'backend'; valid values: 'faster_coco"):
        coco_evaluate(src.ground_truth, [], backend="coco")
    with pytest.raises(ConfigError, match=r"invalid value 'keypoints' for 'iou_type'; valid values: 'bbox'"):
        coco_evaluate(src.ground_truth, [], iou_type="keypoints")


def test_voc_evaluation_by_hand_in_the_cases_the_devkit_names(source):
    """Class 1 has no ground truth (skipped, not the end of the classes); class 2, two images:
    a hit (0.9), a duplicate of it (0.85: false), a box in an image without class 2 (0.8: false),
    a hit of a difficult box (0.75: neither), a box at IoU 0.5 exactly (0.7: a hit) -> precision
    1, 1/2, 1/3, 2/4 at recall 1/2, 1/2, 1/2, 1: AUC AP = 1/2 * 1 + 1/2 * 1/2 = 3/4."""
    from detection.evaluation import voc_means, voc_per_class

    src, _ = source
    first, second, third = src.records[:3]
    first.boxes, first.labels, first.ignore = np.array([[0, 0, 10, 10.0]]), np.array([2]), np.array([False])
    second.boxes, second.labels = np.array([[20, 20, 40, 40], [50, 0, 60, 10.0]]), np.array([2, 2])
    second.ignore = np.array([False, True])
    third.boxes, third.labels, third.ignore = np.zeros((0, 4)), np.zeros(0, int), np.zeros(0, bool)
    detections = {  # listed out of score order, and an image's worse detection first
        second.image_id: (np.array([[20, 20, 40, 30.0], [50, 0, 60, 10]]), np.array([0.7, 0.75]),
                          np.array([2, 2])),
        first.image_id: (np.array([[0, 0, 10, 10.0], [0, 0, 10, 10]]), np.array([0.9, 0.85]),
                         np.array([2, 2])),
        third.image_id: (np.array([[0, 0, 10, 10.0]]), np.array([0.8]), np.array([2]))}
    per_class = voc_per_class([first, second, third], detections, num_classes=2)
    assert list(per_class) == [2] and per_class[2][1] == pytest.approx(3 / 4)
    assert per_class[2][0] == pytest.approx((6 * 1 + 5 * 1 / 2) / 11)  # VOC07: best precision at r >= t
    assert voc_means({}) == {"VOC07_mAP50": 0.0, "VOC_mAP50": 0.0}
    with pytest.raises(ValueError, match=r"^eval.voc_convention='pascal': valid: devkit, continuous$"):
        voc_per_class([first], detections, num_classes=2, convention="pascal")


def test_iou_of_boxes_that_overlap_by_less_than_a_pixel():
    from detection.evaluation import one_to_many_iou, pixel_indices

    iou = one_to_many_iou(np.array([0, 0, 10, 10.0]), np.array([[0, 9.5, 10, 20]]))
    assert iou[0] == pytest.approx(5 / (100 + 105 - 5))
    assert pixel_indices(np.zeros((2, 4), np.float32)).dtype == np.float64  # as the devkit's MATLAB


def test_ground_truth_rebuilt_from_records_is_the_coco_files(source):
    """What VOC XML and LabelMe sets are scored against: the records back in COCO's form (boxes as
    x, y, width, height with their area; a difficult box a crowd) equal the file they came from."""
    from detection.evaluation import coco_bbox, coco_ground_truth

    src, ann = source
    rebuilt = coco_ground_truth(src.records, src.category_ids, src.class_names)
    original = json.loads(ann.read_text())
    fields = ("id", "image_id", "category_id", "bbox", "area", "iscrowd")
    assert [{k: a[k] for k in fields} for a in rebuilt["annotations"]] == [
        {k: a[k] for k in fields} for a in original["annotations"]]
    assert rebuilt["categories"] == original["categories"] and rebuilt["images"] == original["images"]
    src.records[1].ignore[0] = True
    again = coco_ground_truth(src.records, src.category_ids, src.class_names)["annotations"]
    first = len(src.records[0].boxes)  # the second image's first box is the crowd
    assert [a["iscrowd"] for a in again] == [0] * first + [1] + [0] * (len(again) - first - 1)
    assert coco_bbox(np.array([1.5, 2.0, 4.0, 7.25])) == [1.5, 2.0, 2.5, 5.25]
