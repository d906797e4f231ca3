"""A new user's journey (issue 37): each tool given another task's config or weights says so first,
naming both tasks, instead of an unknown key or a list of missing keys."""

import pytest

from helpers import REPO, SMOKE, call_tool, coco_overrides, write_coco_dataset

CONFIGS = REPO / "configs"


@pytest.mark.parametrize("tool, config, task", [
    ("pretrain", CONFIGS / "detection/smoke.yaml", "detection"),
    ("pretrain", CONFIGS / "segmentation/smoke.yaml", "segmentation"),
    ("train_detector", SMOKE, "classification"),
    ("train_segmentation", CONFIGS / "detection/smoke.yaml", "detection"),
])
def test_a_tool_given_another_tasks_config_names_the_task_before_any_key(tool, config, task):
    done = call_tool(tool, "--config", str(config))
    assert done.returncode == 2
    assert f"is a {task!r} config (task: {task})" in done.stderr and "use that task's tool" in done.stderr
    assert "unknown config key" not in done.stderr


def test_a_classifiers_weights_in_a_detector_are_named_as_such(tmp_path):
    from classification.pretrain import load_pretrain_config, pretrain

    run = tmp_path / "cls"
    pretrain(load_pretrain_config(SMOKE, [f"output_dir={run}", "schedule.total=1", "schedule.milestones=[]"]))
    ann = write_coco_dataset(tmp_path / "coco", num_images=2, size=64)
    done = call_tool("evaluate", "--config", str(CONFIGS / "detection/smoke.yaml"), "--checkpoint",
                     str(run / "final.safetensors"), *coco_overrides(ann, tmp_path / "coco/images"))
    assert done.returncode == 2
    assert "holds the weights of a classification run (its metadata says task: classification)" in done.stderr
    assert "missing" not in done.stderr


def test_predict_and_export_take_overrides_and_a_low_score_reaches_the_model(tmp_path):
    """`--score 0.001` lowers the model's own 0.05 threshold (it applied first, so nothing lower
    was ever shown); `key=value` arguments override the config as in every tool."""
    from detection import build_detector, load_detection_config
    from detection.predict import Predictor

    ann = write_coco_dataset(tmp_path / "coco", num_images=2, size=64)
    smoke = CONFIGS / "detection/smoke.yaml"
    cfg = load_detection_config(smoke, coco_overrides(ann, tmp_path / "coco/images"))

    def threshold(**score):
        return Predictor(build_detector(cfg, 3), class_names=["a", "b"], **score).model.roi_heads.score_thresh

    assert (threshold(score=0.001), threshold()) == (0.001, 0.05)
    done = call_tool("predict", "--config", str(CONFIGS / "detection/smoke.yaml"), "--checkpoint",
                     str(tmp_path / "missing.pth"), str(tmp_path / "coco/images"), "model.nonsense=1")
    assert done.returncode == 2 and "unknown config key 'model.nonsense'" in done.stderr
    done = call_tool("export", "--config", str(CONFIGS / "detection/smoke.yaml"), "--checkpoint",
                     str(tmp_path / "missing.pth"), "--out", str(tmp_path / "x.onnx"), "model.nonsense=1")
    assert done.returncode == 2 and "unknown config key 'model.nonsense'" in done.stderr
