"""Detection end to end: train on a tiny generated set until it fits, evaluate with the CLI."""

import json
import subprocess
import sys

import pytest
from helpers import REPO, pycocotools_stats, write_coco_dataset

from detection import load_detection_config, train_detector
from detection.evaluation import COCO_METRICS

SMOKE = REPO / "configs/detection/smoke.yaml"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """resnet18-C4 overfits 8 images in 80 iterations (about 100 s on 2 CPU cores)."""
    root = tmp_path_factory.mktemp("det")
    ann = write_coco_dataset(root, num_images=8)
    data = [f"data.{split}_{kind}={path}" for split in ("train", "val")
            for kind, path in (("annotations", ann), ("images", root / "images"))]
    overrides = [f"output_dir={root / 'run'}", *data]
    metrics = train_detector(load_detection_config(SMOKE, overrides))
    return root, ann, overrides, metrics


def test_small_detector_overfits_its_training_set(trained):
    root, _, _, metrics = trained
    assert metrics["val_AP50"] >= 0.5
    summary = json.loads((root / "run/eval/metrics.json").read_text())
    assert summary["metrics"] == metrics and summary["backbone"] == "resnet18"
    assert len(json.loads((root / "run/eval/detections.json").read_text())) > 0


def test_evaluate_cli_equals_pycocotools_directly(trained):
    root, ann, overrides, _ = trained
    out = root / "cli_eval"
    subprocess.run([sys.executable, str(REPO / "tools/evaluate.py"), "--config", str(SMOKE),
                    "--checkpoint", str(root / "run/checkpoints/last.pth"), "--backend",
                    "pycocotools", "--out", str(out), *overrides], check=True, cwd=REPO,
                   timeout=300)
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    detections = json.loads((out / "detections.json").read_text())
    for name, value in zip(COCO_METRICS, pycocotools_stats(ann, detections)):
        assert metrics[f"val_{name}"] == pytest.approx(value, abs=1e-9), name
    compare = subprocess.run([sys.executable, str(REPO / "tools/compare.py"),
                              str(out / "metrics.json")], check=True, cwd=REPO,
                             capture_output=True, text=True).stdout
    assert f"{100 * metrics['val_AP50']:.1f}" in compare
