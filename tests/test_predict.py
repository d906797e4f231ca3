"""tools/predict.py for classifiers and segmenters, and how it tells a config's task
(detectors: tests/test_detection_train.py, on a trained one)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from engine.config import ConfigError
from engine.tasks import load_task_config
from engine.tasks import predict_run as predict
from helpers import REPO

CLASSIFIER = REPO / "configs/classification/smoke.yaml"
SEGMENTER = REPO / "configs/segmentation/smoke.yaml"


def write_images(folder, sizes, seed=0):
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


@pytest.mark.parametrize("config, task", [
    (CLASSIFIER, "classification"), (SEGMENTER, "segmentation"),
    (REPO / "configs/detection/smoke.yaml", "detection"),
    (REPO / "configs/detection/d2_1x/coco_mask_rcnn_r101_c4.yaml", "detection"),
    (REPO / "configs/segmentation/coco_voc_fcn_r50.yaml", "segmentation"),
])
def test_the_config_says_its_task(config, task):
    assert load_task_config(config)[0] == task


def test_the_task_key_decides_and_another_tasks_loader_refuses(tmp_path):
    from classification.pretrain import load_pretrain_config
    from detection import load_detection_config

    named = tmp_path / "named.yaml"
    named.write_text("task: detection\nname: x\n")  # keys every schema has: the task decides
    assert load_task_config(named)[0] == "detection"
    with pytest.raises(ConfigError, match="is a 'detection' config"):
        load_pretrain_config(named)
    assert load_detection_config(named, training=False).task == "detection"
    for path, task in ((REPO / "configs/classification/cifar10_resnet20.yaml", "classification"),
                       (REPO / "configs/detection/paper/coco2014_vgg16.yaml", "detection"),
                       (REPO / "configs/segmentation/coco_voc_fcn_r50.yaml", "segmentation")):
        assert load_task_config(path)[1].task == task  # named in the file or its _base_ chain


def test_backbones_say_their_input_size():
    from backbones import backbone_input_size

    assert (backbone_input_size("cifar_resnet56"), backbone_input_size("resnet50"),
            backbone_input_size("timm/resnet18")) == (32, 224, 224)


def test_a_config_that_fits_every_schema_needs_the_task_named(tmp_path):
    bare = tmp_path / "bare.yaml"
    bare.write_text("name: x\n")
    with pytest.raises(ConfigError, match="--task"):
        load_task_config(bare)
    assert load_task_config(bare, "segmentation")[0] == "segmentation"


def test_classifier_top5_is_the_models_softmax_on_the_normalised_image(tmp_path):
    from backbones import create_backbone
    from classification.transforms import CIFAR_MEAN, CIFAR_STD

    torch.manual_seed(0)
    model = create_backbone("cifar_resnet20", num_classes=4).eval()
    torch.save(model.state_dict(), tmp_path / "model.pth")
    images = write_images(tmp_path / "images", [(32, 32), (32, 32), (48, 64)])
    result = predict(CLASSIFIER, tmp_path / "model.pth", [str(images)], tmp_path / "out", batch=2)
    records = {r["image_id"]: r["top5"] for r in json.loads(result["predictions"].read_text())}
    assert set(records) == {"0.png", "1.png", "2.png"} and len(records["2.png"]) == 4  # 4 classes
    for name in ("0.png", "1.png"):
        pixels = torch.from_numpy(np.asarray(Image.open(images / name))).permute(2, 0, 1).float() / 255
        x = (pixels - torch.tensor(CIFAR_MEAN)[:, None, None]) / torch.tensor(CIFAR_STD)[:, None, None]
        with torch.no_grad():
            expected = model(x[None]).softmax(1)[0]
        top = records[name]
        assert [t["class"] for t in top] == [f"class {i}" for i in expected.argsort(descending=True).tolist()]
        assert [t["score"] for t in top] == pytest.approx(expected.sort(descending=True).values.tolist(),
                                                          abs=1e-5)


def test_segmenter_writes_a_class_mask_per_image(tmp_path):
    from segmentation import load_segmentation_config
    from segmentation.train import build_model

    cfg = load_segmentation_config(SEGMENTER)
    torch.save(build_model(cfg, 3).state_dict(), tmp_path / "model.pth")
    images = write_images(tmp_path / "images", [(40, 56), (64, 64)])
    result = predict(SEGMENTER, tmp_path / "model.pth", [str(images / "*.png")], tmp_path / "out")
    records = json.loads(result["predictions"].read_text())
    assert [r["image_id"] for r in records] == ["0.png", "1.png"]
    for record, (h, w) in zip(records, [(40, 56), (64, 64)]):
        mask = np.asarray(Image.open(tmp_path / "out" / record["image_id"].replace(".png", "_mask.png")))
        assert mask.shape == (h, w) and mask.max() < 3
        assert set(record["classes"]) <= {"background", "square", "disc"}
        assert sum(record["classes"].values()) == pytest.approx(1.0)


def test_nothing_to_predict_is_an_error_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere"):
        predict(CLASSIFIER, tmp_path / "model.pth", [str(tmp_path / "nothere")], tmp_path / "out")


def test_the_task_registry_names_what_each_task_does():
    from engine.tasks import available_tasks, task_spec

    assert {"classification", "detection", "segmentation"} <= set(available_tasks())  # toy_task too, once a
    for task in ("classification", "detection", "segmentation"):                      # test registered it
        spec = task_spec(task)
        assert spec.name == task and spec.recipe.task.__module__.startswith(task)
        for field in ("load_config", "evaluate", "predictor"):
            assert getattr(spec, field).__module__.startswith(task), (task, field)
    assert task_spec("segmentation").export is None and "segmenter" in task_spec("segmentation").no_export
    assert task_spec("classification").tta == ("flip",)
    with pytest.raises(ConfigError, match="unknown task 'nosuchtask'"):
        task_spec("nosuchtask")


def test_test_time_views_a_task_does_not_take_are_refused_by_the_tools_and_the_trainer():
    from classification.pretrain import build_task, load_pretrain_config

    with pytest.raises(ConfigError, match="eval.tta.scales is not test-time augmentation that "
                                          "classification takes"):
        load_task_config(CLASSIFIER, overrides=["eval.tta.scales=[1.0,1.5]"])
    with pytest.raises(ValueError, match="scales are for dense tasks"):
        build_task(load_pretrain_config(CLASSIFIER, ["eval.tta.scales=[1.0,1.5]"]))
    assert load_task_config(SEGMENTER, overrides=["eval.tta.scales=[1.0,1.5]"])[0] == "segmentation"


def test_class_names_and_test_transform_travel_with_the_weights(tmp_path):
    """A trained classifier's final.safetensors predicts alone, its training folders gone: the
    names are the folders' (6 classes, sorted as training numbered them), and the scores are the
    ones the run's config and checkpoint give."""
    import shutil

    from classification.predict import Predictor
    from classification.pretrain import load_pretrain_config, pretrain
    from helpers import write_image_folder

    names = ["ant", "bee", "cat", "dog", "eel", "fox"]
    write_image_folder(tmp_path / "data" / "train", classes=names, per_class=4)
    run = tmp_path / "run"
    pretrain(load_pretrain_config(CLASSIFIER, [
        f"output_dir={run}", "data.kind=imagefolder", f"data.root={tmp_path / 'data'}",
        "data.val_split=train", "train.batch_size=8", "schedule.total=2", "schedule.milestones=[]"]))
    images = [np.asarray(Image.open(p)) for p in sorted((tmp_path / "data/train/eel").glob("*.png"))[:2]]
    from_run = Predictor.from_run(run / "config.yaml", run / "checkpoints/last.pth").predict(images)
    shutil.rmtree(tmp_path / "data")
    alone = Predictor.from_weights(run / "final.safetensors")
    assert alone.class_names == names
    assert alone.predict(images) == from_run
    assert {t["class"] for r in from_run for t in r["top5"]} < set(names)  # top 5 of 6


def test_weights_without_a_run_config_need_the_runs_config(tmp_path):
    from backbones import create_backbone, save_weights
    from classification.predict import Predictor

    bare = save_weights(create_backbone("cifar_resnet20", num_classes=6), tmp_path / "bare.safetensors")
    with pytest.raises(ConfigError, match="bare.safetensors records no run config"):
        Predictor.from_weights(bare)
