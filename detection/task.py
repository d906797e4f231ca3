"""Detection as a task for the shared trainer: torchvision's losses; COCO and VOC metrics."""

import json
import logging
from pathlib import Path

from accelerate.utils import gather_object

from backbones.metadata import describe
from engine.data import BadSample
from engine.task import SKIPPED, Evaluation, Task

from .evaluation import coco_bbox, encode_masks, evaluate_coco, voc_means, voc_per_class
from .plots import draw_pr_curves
from .tta import NO_TTA, detect

log = logging.getLogger("detection")


class DetectionTask(Task):
    best_metric, best_higher = "val_AP", True

    def __init__(self, val_set=None, backend: str = "faster_coco_eval", describe: dict | None = None,
                 masks: bool = False, views=NO_TTA, voc_convention: str = "continuous",
                 voc_boxes: bool = False):
        """`describe`: what metrics.json says of the run (name, backbone, head), for compare;
        `masks`: the model predicts instance masks, scored as COCO `segm` beside `bbox`;
        `views`: test-time augmentation (`detection.tta`); `voc_convention`: the VOC figures'
        IoU (`detection.evaluation.one_to_many_iou`), `voc_boxes`: the data is VOC XML, scored in
        the devkit's pixel indices."""
        self.val_set, self.backend, self.describe = val_set, backend, dict(describe or {})
        self.voc_convention, self.voc_boxes = voc_convention, voc_boxes
        self.masks, self.views = masks, tuple(views)
        self.category_ids = None  # the data's category id of each label, with `categories`

    def weights_metadata(self, model) -> dict[str, str]:
        """The backbone inside the detector, the normalisation the detector applies to it, and
        the data's category ids of its labels."""
        t = model.transform
        meta = describe(model, task="detection",
                        input_convention={"mean": list(t.image_mean), "std": list(t.image_std)})
        if self.category_ids:
            meta["category_ids"] = json.dumps([int(i) for i in self.category_ids])
        return meta

    def batch_groups(self, dataset) -> list[int]:
        """Aspect-ratio grouping: landscape (0) and portrait (1) images batch separately."""
        return [int(r.height > r.width) for r in dataset.records]

    def collate(self, samples: list) -> dict:
        good = [s for s in samples if not isinstance(s, BadSample)]
        skipped = [s.path for s in samples if isinstance(s, BadSample)]
        if not good:  # the trainer and evaluation skip a batch holding nothing else
            return {SKIPPED: skipped}
        return {"images": [image for image, _ in good], "targets": [t for _, t in good], SKIPPED: skipped}

    def train_step(self, model, batch: dict):
        losses = model(batch["images"], batch["targets"])
        loss = sum(losses.values())
        n = len(batch["images"])
        stats = {key.removeprefix("loss_"): value.detach() * n for key, value in losses.items()}
        return loss, {"loss": loss.detach() * n, **stats, "samples": n}

    def predict(self, model, loader, accelerator) -> dict:
        """image_id -> (boxes xyxy, scores, labels[, masks as COCO RLE]), every image once across
        processes. Test-time views reach into the detector's parts (transform, heads), which the
        DistributedDataParallel wrapper of a multi-process run does not forward: they run on the
        model inside it (at evaluation no gradients are reduced, so nothing else differs)."""
        net = accelerator.unwrap_model(model) if self.views != NO_TTA else model
        local = {}
        for batch in loader:
            batch.pop(SKIPPED, None)
            if not batch:
                continue
            outputs = detect(net, batch["images"], self.views)
            for target, output in zip(batch["targets"], outputs):
                found = tuple(output[k].float().cpu().numpy() for k in ("boxes", "scores", "labels"))
                if self.masks:
                    found += (encode_masks(output["masks"]),)
                local[target["image_id"]] = found
        merged = {}
        for part in gather_object([local]) if accelerator.num_processes > 1 else [local]:
            merged.update(part)  # padding duplicates collapse on image_id
        return merged

    def to_coco_results(self, detections: dict) -> list[dict]:
        """COCO results: a bbox per detection, and its segmentation (RLE) where masks are predicted."""
        ids, results = self.val_set.category_ids, []
        for image_id, (boxes, scores, labels, *masks) in detections.items():
            for i, (b, score, label) in enumerate(zip(boxes, scores, labels)):
                result = {"image_id": int(image_id), "category_id": int(ids[int(label) - 1]),
                          "bbox": coco_bbox(b),
                          "score": float(score)}
                if masks:
                    result["segmentation"] = masks[0][i]
                results.append(result)
        return results

    def evaluate(self, model, loader, accelerator) -> Evaluation:
        """COCO box (and mask: `segm_*`) and VOC metrics, over all classes and per class; the
        predictions are the COCO-format detections they scored."""
        detections = self.predict(model, loader, accelerator)
        if not accelerator.is_main_process:
            return Evaluation()
        results = self.to_coco_results(detections)
        if not results:
            threshold = accelerator.unwrap_model(model).roi_heads.score_thresh
            log.warning(f"no detections on any of the {len(detections)} validation images (the model "
                        f"keeps scores >= {threshold:g}: model.options.box_score_thresh): every metric is 0")
        box = evaluate_coco(self.val_set.ground_truth, results, self.backend)
        metrics, per_class = dict(box.metrics), {n: dict(v) for n, v in box.per_category.items()}
        if self.masks:
            segm = evaluate_coco(self.val_set.ground_truth, results, self.backend, iou_type="segm")
            metrics.update({f"segm_{name}": value for name, value in segm.metrics.items()})
            for name, values in segm.per_category.items():
                per_class[name].update({f"segm_{k}": v for k, v in values.items()})
        voc = voc_per_class(self.val_set.records, detections, len(self.val_set.classes),
                            convention=self.voc_convention, voc_boxes=self.voc_boxes)
        metrics.update(voc_means(voc))
        for label, name in enumerate(self.val_set.classes, start=1):
            ap07, ap = voc.get(label, (None, None))
            per_class.setdefault(name, {}).update({"VOC07_AP50": ap07, "VOC_AP50": ap})
        return Evaluation({"val_images": len(detections), **{f"val_{k}": v for k, v in metrics.items()}},
                          predictions=results, details={"per_class": per_class, "pr_curves": box.pr_curves})

    def save_evaluation(self, evaluation: Evaluation, out_dir: Path) -> Path:
        """detections.json (COCO results format), metrics.json (per class too, for
        tools/compare.py) and pr_curves.png (the best and worst five classes)."""
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "detections.json").write_text(json.dumps(evaluation.predictions or []))
        per_class = evaluation.details.get("per_class", {})
        summary = {**self.describe, "backend": self.backend, "voc_convention": self.voc_convention,
                   "metrics": evaluation.metrics,
                   "per_class": per_class}
        path = out_dir / "metrics.json"
        path.write_text(json.dumps(summary, indent=2))
        if evaluation.details.get("pr_curves"):
            draw_pr_curves(evaluation.details["pr_curves"], per_class, out_dir / "pr_curves.png")
        return path
