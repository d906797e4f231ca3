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


def test_bad_input_a_new_user_meets_is_one_line_naming_it(tmp_path, monkeypatch):
    """A 0-byte COCO file, a bad value typed on the command line, an output_dir that is a file,
    and a GPU node lacking our requirements: each one line saying what and where."""
    import wheels

    empty = tmp_path / "empty.json"
    empty.touch()
    ann = write_coco_dataset(tmp_path / "coco", num_images=2, size=64)
    detection = ["--config", str(CONFIGS / "detection/smoke.yaml"),
                 *coco_overrides(ann, tmp_path / "coco/images")]
    done = call_tool("train_detector", *detection, f"data.val_annotations={empty}")
    assert done.returncode == 2 and f"COCO annotation file {empty} is empty" in done.stderr
    assert "Traceback" not in done.stderr
    done = call_tool("pretrain", "--config", str(SMOKE), "train.batch_size=abc")
    assert done.returncode == 2
    assert "bad value for 'train.batch_size' on the command line (train.batch_size=abc)" in done.stderr
    occupied = tmp_path / "a_file"
    occupied.write_text("not a folder")
    done = call_tool("pretrain", "--config", str(SMOKE), f"output_dir={occupied}")
    assert done.returncode == 2 and f"output_dir={occupied} is a file" in done.stderr

    def lacking(requirements, wheelhouse):
        raise wheels.WheelhouseError("not installed here and not in wheelhouse/: tqdm>=4.66. On a "
                                     "machine with network, run `make wheelhouse`")

    monkeypatch.setattr(wheels, "ensure", lacking)
    done = call_tool("gpu_check", "--cpu", "--out", str(tmp_path / "gpu"))
    assert done.returncode == 2 and "tqdm" in done.stderr and "make wheelhouse" in done.stderr


def test_progress_in_a_log_file_is_lines_not_redraws(tmp_path):
    """Off a terminal (a job's log file, a pipe) a bar writes a line per update (at most every
    30 s, and its last state), no carriage returns."""
    done = call_tool("pretrain", "--config", str(SMOKE), f"output_dir={tmp_path / 'run'}")
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr
    bars = [line for line in done.stderr.splitlines() if line.startswith("smoke:")]
    assert bars and "8/8" in bars[-1]
