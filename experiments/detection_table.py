"""The paper's Table 8 layout: measured mAP@.5 and mAP@[.5,.95] beside the paper's COCO figures,
mask AP (Mask R-CNN) where a run has it, and for runs evaluated on VOC their VOC07 mAP@.5 beside
Table 7's."""

import json
from pathlib import Path

from .markdown import markdown_table
from .paper import TABLE7_VOC_MAP50, TABLE8


def _percent(metrics: dict, name: str) -> str:
    value = metrics.get(f"val_{name}", metrics.get(name))
    return "-" if value is None else f"{100 * value:.1f}"


def compare_table(metric_files, paper_rows=None) -> str:
    """One row per metrics.json; `paper_rows` names the Table 8 row each is set beside (default:
    the row of its backbone, if the paper has one). The paper reports no mask AP."""
    summaries = [json.loads(Path(path).read_text()) for path in metric_files]
    masks = any("val_segm_AP" in s["metrics"] for s in summaries)
    voc = any(s.get("data") == "voc" for s in summaries)
    rows = []
    for index, (path, summary) in enumerate(zip(metric_files, summaries)):
        metrics, row = summary["metrics"], paper_rows[index] if paper_rows else summary["backbone"]
        on_voc = summary.get("data") == "voc"
        paper = None if on_voc else TABLE8.get(row)  # Table 8 is COCO's
        paper_cells = [f"{paper[1]:.1f}", f"{paper[2]:.1f}"] if paper else ["-", "-"]
        mask_cells = [_percent(metrics, "segm_AP50"), _percent(metrics, "segm_AP")] if masks else []
        voc07 = TABLE7_VOC_MAP50.get(row, {}).get("VOC07") if on_voc else None
        voc_cells = [_percent(metrics, "VOC07_mAP50") if on_voc else "-",
                     f"{voc07:.1f}" if voc07 else "-"] if voc else []
        rows.append([summary.get("name", Path(path).parent.name), summary["backbone"], summary["head"],
                     _percent(metrics, "AP50"), _percent(metrics, "AP"), *mask_cells, *paper_cells,
                     *voc_cells])
    header = ["run", "backbone", "head", "mAP@.5", "mAP@[.5,.95]",
              *(["mask AP@.5", "mask AP@[.5,.95]"] if masks else []), "paper mAP@.5", "paper mAP@[.5,.95]",
              *(["VOC07 mAP@.5", "paper VOC07 mAP@.5 (Table 7)"] if voc else [])]
    return markdown_table(header, rows, numeric_from=3) + "\n"


PER_CLASS_COLUMNS = (("AP", "AP"), ("AP50", "AP50"), ("AR100", "AR100"), ("segm_AP", "mask AP"),
                     ("segm_AP50", "mask AP50"), ("VOC07_AP50", "VOC07 AP50"), ("VOC_AP50", "VOC AP50"))


def per_class_table(per_class: dict) -> str:
    """One row per class of a metrics.json's `per_class` (in %; "-" where the class has no
    ground truth), columns as the evaluation has them."""
    present = [(key, title) for key, title in PER_CLASS_COLUMNS
               if any(key in figures for figures in per_class.values())]
    rows = [[name, *[_percent(figures, key) for key, _ in present]] for name, figures in per_class.items()]
    note = "" if any(key == "AP" for key, _ in present) else \
        "no COCO figures per class: the evaluation found no detections (VOC columns only)\n"
    return note + markdown_table(["class", *[title for _, title in present]], rows, numeric_from=1) + "\n"


def class_table(metric_files, class_name: str) -> str:
    """One class across runs: a row per metrics.json."""
    rows = []
    for path in metric_files:
        summary = json.loads(Path(path).read_text())
        per_class = summary.get("per_class") or {}
        if class_name not in per_class:
            known = ", ".join(sorted(per_class)) or "none (evaluated before per-class results existed)"
            raise ValueError(f"{path} has no class {class_name!r}; its classes: {known}")
        figures = per_class[class_name]
        rows.append([summary.get("name", Path(path).parent.name), summary["backbone"], summary["head"],
                     *[_percent(figures, key) for key, _ in PER_CLASS_COLUMNS[:3]]])
    titles = [f"{class_name} {title}" for _, title in PER_CLASS_COLUMNS[:3]]
    return markdown_table(["run", "backbone", "head", *titles], rows, numeric_from=3) + "\n"
