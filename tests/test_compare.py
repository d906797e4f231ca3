"""tools/compare.py on any task's metrics.json: detectors in Table 8's layout, the others a table
each (it used to stop with KeyError: 'backbone' at the first classification or segmentation file)."""

import json

from helpers import call_tool


def write(path, summary):
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(summary))
    return str(path)


def test_every_tasks_metrics_compare_in_a_table_of_their_own(tmp_path):
    detector = write(tmp_path / "det/eval/metrics.json", {
        "task": "detection", "name": "det", "backbone": "resnet101", "head": "c4", "data": "coco",
        "metrics": {"val_AP50": 0.5, "val_AP": 0.25}})
    classifier = write(tmp_path / "cls/eval/metrics.json", {  # written before metrics named the task
        "metrics": {"val_top1_error": 0.125, "val_top5_error": 0.0312, "val_images": 64}})
    segmenter = write(tmp_path / "seg/eval/metrics.json", {
        "task": "segmentation", "name": "seg", "metrics": {"val_mIoU": 0.4, "val_IoU/cat": 0.3}})
    done = call_tool("compare", detector, classifier, segmenter)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "| det | resnet101 | c4 | 50.0 | 25.0 | 48.4 | 27.2 |" in out  # beside Table 8's row
    assert "classification:" in out and "| cls | 64 | 0.125 | 0.0312 |" in out  # images, top-1, top-5
    assert "segmentation:" in out and "| seg | 0.4 |" in out and "IoU/cat" not in out
    refused = call_tool("compare", detector, classifier, "--paper", "resnet101", "vgg16")
    assert refused.returncode == 2 and "for detectors only" in refused.stderr and "cls" in refused.stderr
