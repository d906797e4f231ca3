"""The paper's Table 8 layout: measured mAP@.5 and mAP@[.5,.95] beside the paper's COCO figures."""

import json
from pathlib import Path

from .markdown import markdown_table
from .paper import TABLE8


def compare_table(metric_files, paper_rows=None) -> str:
    """One row per metrics.json; `paper_rows` names the Table 8 row each is set beside (default:
    the row of its backbone, if the paper has one)."""
    rows = []
    for index, path in enumerate(metric_files):
        summary = json.loads(Path(path).read_text())
        metrics = summary["metrics"]
        ap50, ap = (100 * metrics.get(f"val_{k}", metrics.get(k, float("nan"))) for k in ("AP50", "AP"))
        paper = TABLE8.get(paper_rows[index] if paper_rows else summary["backbone"])
        paper_cells = [f"{paper[1]:.1f}", f"{paper[2]:.1f}"] if paper else ["-", "-"]
        rows.append([summary.get("name", Path(path).parent.name), summary["backbone"], summary["head"],
                     f"{ap50:.1f}", f"{ap:.1f}", *paper_cells])
    return markdown_table(["run", "backbone", "head", "mAP@.5", "mAP@[.5,.95]", "paper mAP@.5",
                           "paper mAP@[.5,.95]"], rows, numeric_from=3) + "\n"
