"""Detection end to end: train on a tiny generated set until it fits, evaluate with the CLI."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from detection import load_detection_config, train_detector
from detection.evaluation import COCO_METRICS
from helpers import REPO, call_tool, coco_overrides, free_port, pycocotools_stats, write_coco_dataset

SMOKE = REPO / "configs/detection/smoke.yaml"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """resnet18-C4 overfits 8 images in 80 iterations (about 100 s on 2 CPU cores)."""
    root = tmp_path_factory.mktemp("det")
    ann = write_coco_dataset(root, num_images=8)
    data = coco_overrides(ann, root / "images")
    overrides = [f"output_dir={root / 'run'}", *data]
    metrics = train_detector(load_detection_config(SMOKE, overrides))
    return root, ann, overrides, metrics


def test_two_processes_evaluate_an_odd_set_as_one(trained, tmp_path):
    """7 validation images over 2 processes (one pads with a duplicate): every image counted once,
    every COCO metric equal to one process's (1e-9), with test-time views (they reach into the
    detector, which the 2-process run wraps in DistributedDataParallel; without views the same
    path minus them)."""
    import os

    from detection.evaluate import evaluate_checkpoint

    root, ann, overrides, _ = trained
    coco = json.loads(ann.read_text())
    coco["images"] = coco["images"][:7]
    kept = {i["id"] for i in coco["images"]}
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in kept]
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps(coco))
    checkpoint = root / "run/checkpoints/last.pth"
    odd_set = [f"data.val_annotations={odd}", "eval.tta.flip=true"]
    one = evaluate_checkpoint(load_detection_config(SMOKE, [*overrides, *odd_set]), checkpoint,
                              tmp_path / "one")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                           f"--master_port={port}", str(REPO / "tools/evaluate.py"), "--config", str(SMOKE),
                           "--checkpoint", str(checkpoint), "--out", str(tmp_path / "two"), *overrides,
                           *odd_set], env=env, cwd=REPO, timeout=300, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]  # what failed, when it does
    two = json.loads((tmp_path / "two/metrics.json").read_text())["metrics"]
    found = [json.loads((tmp_path / run / "detections.json").read_text()) for run in ("one", "two")]
    assert len(found[1]) == len(found[0]) and {d["image_id"] for d in found[1]} <= kept
    for name, value in one.items():
        assert two[name] == pytest.approx(value, abs=1e-9), name


def test_small_detector_overfits_its_training_set(trained):
    root, _, _, metrics = trained
    assert metrics["val_AP50"] >= 0.5
    summary = json.loads((root / "run/eval/metrics.json").read_text())
    assert summary["metrics"] == metrics and summary["backbone"] == "resnet18"
    assert len(json.loads((root / "run/eval/detections.json").read_text())) > 0


def test_evaluate_cli_equals_pycocotools_directly(trained):
    root, ann, overrides, _ = trained
    out = root / "cli_eval"
    printed = call_tool("evaluate", "--config", str(SMOKE),
                        "--checkpoint", str(root / "run/checkpoints/last.pth"), "--backend",
                        "pycocotools", "--per-class", "--out", str(out), *overrides, check=True).stdout
    summary = json.loads((out / "metrics.json").read_text())
    metrics, per_class = summary["metrics"], summary["per_class"]
    assert set(per_class) == {"red", "blue"} and (out / "pr_curves.png").stat().st_size > 1000
    assert f"| red | {100 * per_class['red']['AP']:.1f} | {100 * per_class['red']['AP50']:.1f} |" in printed
    one_class = call_tool("compare", str(out / "metrics.json"),
                          "--class", "blue", check=True).stdout
    assert f"| {100 * per_class['blue']['AR100']:.1f} |" in one_class
    detections = json.loads((out / "detections.json").read_text())
    for name, value in zip(COCO_METRICS, pycocotools_stats(ann, detections)):
        assert metrics[f"val_{name}"] == pytest.approx(value, abs=1e-9), name
    compare = call_tool("compare", str(out / "metrics.json"), check=True).stdout
    assert f"{100 * metrics['val_AP50']:.1f}" in compare


def test_predict_gives_exactly_the_detections_evaluation_scored(trained, tmp_path):
    from detection.evaluate import evaluate_checkpoint

    root, ann, overrides, _ = trained
    cfg = load_detection_config(SMOKE, overrides)
    evaluate_checkpoint(cfg, root / "run/checkpoints/last.pth", tmp_path / "eval", batch_size=2)
    scored = json.loads((tmp_path / "eval/detections.json").read_text())
    out = tmp_path / "predicted"
    call_tool("predict", "--config", str(root / "run/config.yaml"),
              "--checkpoint", str(root / "run/checkpoints/last.pth"), str(root / "images"),
              "--score", "0.05", "--batch", "2", "--out", str(out), check=True)  # the model's own threshold
    predicted = json.loads((out / "predictions.json").read_text())
    file_of = {i["id"]: i["file_name"] for i in json.loads(ann.read_text())["images"]}

    def key(d, image):
        return (image, d["category_id"], d["score"], *d["bbox"])

    assert sorted(key(d, file_of[d["image_id"]]) for d in scored) == \
        sorted(key(d, d["image_id"]) for d in predicted)
    assert len(predicted) > 0 and sorted(p.name for p in out.glob("*.png")) == \
        sorted(file_of.values())


def test_predict_reads_any_mode_upright_and_skips_what_it_cannot_read(trained, tmp_path):
    from PIL import Image

    root, _, overrides, _ = trained
    photos = tmp_path / "photos"
    photos.mkdir()
    rgb = Image.open(root / "images/0001.png").convert("RGB")
    rgb.convert("L").save(photos / "grey.png")
    rgb.convert("RGBA").save(photos / "rgba.png")
    rgb.convert("P").save(photos / "palette.png")
    Image.fromarray(np.asarray(rgb.convert("L"), dtype=np.uint16) * 257).save(photos / "deep16.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
    rgb.crop((0, 0, 96, 64)).save(photos / "phone.jpg", exif=exif)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    out = tmp_path / "out"
    result = call_tool("predict", "--config",
                       str(root / "run/config.yaml"), "--checkpoint",
                       str(root / "run/checkpoints/last.pth"), str(photos), "--score", "0.05",
                       "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "skipped: cannot read image" in result.stdout and "broken.jpg" in result.stdout
    assert "5 images predicted, 1 skipped" in result.stdout
    assert Image.open(out / "phone.png").size == (64, 96)  # turned upright: portrait
    assert {p.stem for p in out.glob("*.png")} == {"grey", "rgba", "palette", "deep16", "phone"}
    grey = np.asarray(Image.open(out / "deep16.png"))
    assert grey.max() > 200  # 16-bit scaled to 8, not clipped to white everywhere
    assert (grey < 250).mean() > 0.5


def test_predict_refuses_a_checkpoint_of_another_model(trained, tmp_path):
    root, _, _, _ = trained
    wrong = tmp_path / "wrong.pth"
    from backbones import create_backbone

    torch.save(create_backbone("cifar_resnet20").state_dict(), wrong)
    result = call_tool("predict", "--config",
                       str(root / "run/config.yaml"), "--checkpoint", str(wrong),
                       str(root / "images"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "error: weights" in result.stderr and "missing keys" in result.stderr
    assert not (tmp_path / "out").exists()  # nothing written


def test_export_tool_on_the_trained_detector(trained, tmp_path):
    pytest.importorskip("onnxruntime", reason="the export extra: pip install -e '.[export]'")
    root, _, _, _ = trained
    result = call_tool("export", "--config",
                       str(root / "run/config.yaml"), "--checkpoint",
                       str(root / "run/checkpoints/last.pth"), "--out", str(tmp_path / "det.onnx"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "max_abs_difference" in result.stdout and (tmp_path / "det.onnx").is_file()


def test_predictor_takes_paths_pil_images_and_arrays_alike(trained):
    from PIL import Image

    from detection.predict import Predictor

    root, _, overrides, _ = trained
    predictor = Predictor(load_detection_config(SMOKE, overrides), root / "run/checkpoints/last.pth")
    assert predictor.class_names == ["red", "blue"] and predictor.category_ids == [3, 7]
    path = root / "images/0003.png"
    images = [path, Image.open(path), np.asarray(Image.open(path).convert("RGB"))]
    outputs = predictor.predict(images, batch_size=1)  # one a pass: the same arithmetic as alone
    assert len(outputs[0]["boxes"]) > 0
    for other in outputs[1:]:
        assert all(torch.equal(other[k], outputs[0][k]) for k in ("boxes", "labels", "scores"))
    single = predictor.predict(path)  # one image in, one result out
    assert torch.equal(single["boxes"], outputs[0]["boxes"])
    with pytest.raises(ValueError, match="HxWx3 uint8 RGB"):
        predictor.predict(np.zeros((8, 8), dtype=np.float32))


def test_the_weights_file_alone_predicts_with_the_training_names(trained, tmp_path):
    """final.safetensors records the class names, COCO category ids and the run's config: a
    predictor needs neither the config nor the annotations (moved away here)."""
    from detection.predict import Predictor

    root, ann, overrides, _ = trained
    by_run = Predictor(load_detection_config(SMOKE, overrides), root / "run/final.safetensors")
    moved = ann.rename(tmp_path / "elsewhere.json")
    try:
        alone = Predictor.from_weights(root / "run/final.safetensors")
    finally:
        moved.rename(ann)
    assert alone.class_names == ["red", "blue"] and alone.category_ids == [3, 7]
    image = root / "images/0003.png"
    assert all(torch.equal(alone.predict(image)[k], by_run.predict(image)[k]) for k in ("boxes", "scores"))


def test_tta_on_the_smoke_detector_changes_ap(trained, tmp_path):
    """Mirrored views and two scales merged by NMS (docs/benchmarks.md records the change)."""
    from detection.evaluate import evaluate_checkpoint

    root, _, overrides, metrics = trained
    cfg = load_detection_config(SMOKE, [*overrides, "eval.tta.flip=true", "eval.tta.scales=[0.75,1.0]"])
    tta = evaluate_checkpoint(cfg, root / "run/checkpoints/last.pth", tmp_path / "tta", batch_size=2)
    print(f"smoke detector AP50 {metrics['val_AP50']:.4f} -> with TTA {tta['val_AP50']:.4f}; "
          f"AP {metrics['val_AP']:.4f} -> {tta['val_AP']:.4f}")
    assert 0 <= tta["val_AP"] <= 1 and tta["val_AP"] != metrics["val_AP"]


def write_voc_copy(ann, images, root):
    """The COCO set as a VOC folder (LabelImg layout): each box [x, y, w, h] as the pixel indices
    it covers, xmin = x + 1 ... xmax = x + w (what the reader turns back into [x, x + w])."""
    import shutil

    coco = json.loads(ann.read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    ids = []
    for image in coco["images"]:
        stem = image["file_name"].rsplit(".", 1)[0]
        shutil.copy(images / image["file_name"], root / "JPEGImages" / image["file_name"])
        objects = "".join(
            f"<object><name>{names[a['category_id']]}</name><difficult>0</difficult><bndbox>"
            f"<xmin>{a['bbox'][0] + 1:g}</xmin><ymin>{a['bbox'][1] + 1:g}</ymin>"
            f"<xmax>{a['bbox'][0] + a['bbox'][2]:g}</xmax><ymax>{a['bbox'][1] + a['bbox'][3]:g}</ymax>"
            f"</bndbox></object>" for a in coco["annotations"] if a["image_id"] == image["id"])
        (root / "Annotations" / f"{stem}.xml").write_text(
            f"<annotation><filename>{image['file_name']}</filename><size><width>{image['width']}</width>"
            f"<height>{image['height']}</height><depth>3</depth></size>{objects}</annotation>")
        ids.append(stem)
    (root / "ImageSets" / "Main" / "val.txt").write_text("\n".join(ids) + "\n")
    return root


def test_evaluate_cli_scores_a_voc_folder_as_the_devkit_per_class(trained, tmp_path):
    """The trained detector evaluated on the same images as a VOC folder: both VOC APs per class
    printed, scored in the devkit's convention (the default for VOC data) or continuous areas on
    request; the numbers are those voc_evaluate gives the written detections."""
    from detection.data import read_voc
    from detection.evaluation import voc_evaluate

    root, ann, _, _ = trained
    voc = write_voc_copy(ann, root / "images", tmp_path / "voc")
    data = ["data.kind=voc", f"data.voc_root={voc}", "data.voc_train=[val]", "data.voc_val=[val]",
            "data.classes=[red,blue]"]
    records = read_voc(voc, "val", ["red", "blue"]).records
    for convention in ("devkit", "continuous"):
        out = tmp_path / convention
        printed = call_tool("evaluate", "--config", str(SMOKE), "--checkpoint",
                            str(root / "run/checkpoints/last.pth"), "--per-class", "--out", str(out),
                            *data, f"eval.voc_convention={convention}", check=True).stdout
        summary = json.loads((out / "metrics.json").read_text())
        assert summary["voc_convention"] == convention and f"eval.voc_convention={convention}" in printed
        assert "| class |" in printed and "VOC07 AP50" in printed and "VOC AP50" in printed
        for name in ("red", "blue"):
            figures = summary["per_class"][name]
            assert f"| {name} |" in printed and f"{100 * figures['VOC07_AP50']:.1f}" in printed
        found = {}
        for d in json.loads((out / "detections.json").read_text()):
            x, y, w, h = d["bbox"]
            found.setdefault(d["image_id"], []).append(([x, y, x + w, y + h], d["score"], d["category_id"]))
        detections = {r.image_id: tuple(np.array(v) for v in zip(*found.get(r.image_id, [])))
                      for r in records if r.image_id in found}
        direct = voc_evaluate(records, detections, 2, convention=convention, voc_boxes=True)
        assert summary["metrics"]["val_VOC_mAP50"] == pytest.approx(direct["VOC_mAP50"], abs=1e-9)
        assert summary["metrics"]["val_VOC07_mAP50"] == pytest.approx(direct["VOC07_mAP50"], abs=1e-9)
