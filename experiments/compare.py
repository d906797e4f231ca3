"""`tools/compare.py`: evaluated runs side by side, whatever their task. Detectors in the paper's
Table 8 layout (`detection_table`), every other task's runs in a table of the metrics they have."""

import json
from pathlib import Path

from .detection_table import compare_table
from .markdown import markdown_table


def is_detection(summary: dict) -> bool:
    """A detector's metrics.json says its backbone and head (older ones do not name the task)."""
    return summary.get("task", "detection") == "detection" and {"backbone", "head"} <= set(summary)


def run_name(path: Path, summary: dict) -> str:
    """The run's name, or its folder (<run>/eval/metrics.json)."""
    folder = Path(path).parent
    return summary.get("name") or (folder.parent.name if folder.name == "eval" else folder.name)


def compare(metric_files, paper_rows=None) -> str:
    """One table per task among `metric_files`: the detectors' beside the paper's Tables 7-8
    (`paper_rows`: the Table 8 row of each detector, in order), the others' with their metrics."""
    summaries = [(Path(p), json.loads(Path(p).read_text())) for p in metric_files]
    detectors = [p for p, s in summaries if is_detection(s)]
    if paper_rows and len(detectors) != len(summaries):
        raise ValueError("--paper names Table 8 rows, for detectors only: "
                         + ", ".join(str(p) for p, s in summaries if not is_detection(s)) + " are not")
    tables = [compare_table(detectors, paper_rows)] if detectors else []
    by_task: dict[str, list] = {}
    for path, summary in summaries:
        if not is_detection(summary):
            by_task.setdefault(summary.get("task") or _guess(summary), []).append((path, summary))
    tables += [f"{task}:\n\n" + metrics_table(runs) for task, runs in by_task.items()]
    return "\n".join(tables)


def _guess(summary: dict) -> str:
    """The task of a metrics.json written before they named it, from its metrics."""
    metrics = summary.get("metrics", {})
    return "segmentation" if "val_mIoU" in metrics else "classification" if "val_top1_error" in metrics \
        else "other"


def metrics_table(runs: list[tuple[Path, dict]]) -> str:
    """A row per run, a column per metric any of them has (not the per-class ones)."""
    keys = sorted({k for _, s in runs for k, v in s.get("metrics", {}).items()
                   if "/" not in k and isinstance(v, (int, float))})
    rows = [[run_name(path, s), *[_cell(s.get("metrics", {}).get(k)) for k in keys]] for path, s in runs]
    return markdown_table(["run", *keys], rows) + "\n"


def _cell(value) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)
