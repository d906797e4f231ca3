"""A task of one's own: `tests/toy_task` (one package, one `register_task`) trains, stops, resumes,
evaluates and predicts through the same tools/*.py entry points as the toolkit's three tasks, and
tools/export.py says why it exports nothing."""

import json

import numpy as np
from PIL import Image

from engine.metrics import read_metrics
from engine.tasks import available_tasks
from helpers import call_tool
from toy_task import QUADRANTS, draw


def test_a_fourth_task_registered_in_one_place_goes_through_every_tool(tmp_path):
    config, run = tmp_path / "toy.yaml", tmp_path / "run"
    config.write_text(f"task: toy_task\nname: toy\noutput_dir: {run}\n"
                      "schedule: {kind: step, unit: epoch, total: 6, milestones: [4]}\n"
                      "train: {batch_size: 16, num_workers: 0, log_every: 2, precision: fp32}\n")
    stopped = call_tool("train", "--config", str(config), "train.stop_at=5")
    assert stopped.returncode == 0, stopped.stderr
    assert not (run / "done.json").exists()
    finished = call_tool("train", "--config", str(config))  # resume=auto: on to the end
    assert finished.returncode == 0, finished.stderr
    assert "resumed from" in finished.stderr and "toy_task" in available_tasks()
    records = read_metrics(run)
    assert max(r["iteration"] for r in records) == 6 * 4  # 64 images / 16 a batch: 4 an epoch
    final_error = json.loads((run / "done.json").read_text())["metrics"]["val_error"]
    assert final_error < 0.5  # 4 quadrants: chance is 0.75; 24 iterations learn it

    evaluated = call_tool("evaluate", "--config", str(run / "config.yaml"), "--checkpoint",
                          str(run / "final.safetensors"), "--out", str(tmp_path / "eval"))
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads((tmp_path / "eval/metrics.json").read_text())["metrics"]["val_error"] == final_error

    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(7)
    for quadrant in range(4):
        Image.fromarray(draw(quadrant, 16, rng)).save(images / f"{quadrant}.png")
    predicted = call_tool("predict", "--config", str(run / "config.yaml"), "--checkpoint",
                          str(run / "final.safetensors"), str(images), "--out", str(tmp_path / "pred"))
    assert predicted.returncode == 0, predicted.stderr
    found = json.loads((tmp_path / "pred/predictions.json").read_text())
    assert [r["image_id"] for r in found] == [f"{q}.png" for q in range(4)]
    assert {r["quadrant"] for r in found} <= set(QUADRANTS)  # the names the weights file records

    exported = call_tool("export", "--config", str(run / "config.yaml"), "--checkpoint",
                         str(run / "final.safetensors"), "--out", str(tmp_path / "toy.onnx"))
    assert exported.returncode == 2 and "the toy task has no exporter" in exported.stderr
