"""tools/export.py's work: a trained classifier or detector, or a bare registry backbone, to an
ONNX file checked against PyTorch at export time (classification/export.py, detection/export.py)."""

from pathlib import Path

from engine.onnx import ExportError

from .tasks import load_task_config, task_tools


def export(out: Path, *, config=None, checkpoint=None, backbone: str | None = None, weights=None,
           size: int | None = None, height: int | None = None, width: int | None = None,
           task: str | None = None) -> dict:
    """Export what the arguments name; returns the check's report (and prints it)."""
    if backbone:
        report = _export_backbone(backbone, weights, out, size)
    else:
        task, cfg = load_task_config(config, task)
        export_run = task_tools(task).export
        if export_run is None:
            raise ExportError(f"{config} describes a {task} model; tools/export.py exports "
                              "classifiers, backbones and detectors")
        report = export_run(cfg, checkpoint, out, size=size, height=height, width=width)
    print(f"written {out}: checked with onnxruntime against PyTorch: {report}")
    return report


def _export_backbone(name: str, weights, out: Path, size: int | None) -> dict:
    from backbones import backbone_input_size, create_backbone, load_weights
    from classification.export import export_classifier

    model = create_backbone(name)
    if weights:
        load_weights(model, weights)
    return export_classifier(model, out, size or backbone_input_size(name), what=f"backbone {name!r}")


def export_classifier_run(cfg, checkpoint, out: Path, size: int | None = None, height=None,
                          width=None) -> dict:
    if height or width:
        raise ExportError("a classifier is exported for square images of any batch: give --size, "
                          "not --height / --width")
    from backbones import load_weights
    from classification.datasets import test_input_size
    from classification.export import export_classifier
    from classification.pretrain import build_model

    from .predict import classification_names

    model = load_weights(build_model(cfg, len(classification_names(cfg))), checkpoint)
    return export_classifier(model, out, size or test_input_size(cfg.data),
                             what=f"classifier {cfg.model.name!r}")


def export_detector_run(cfg, checkpoint, out: Path, size=None, height: int | None = None,
                        width: int | None = None) -> dict:
    if size:
        raise ExportError("a detector is exported for one fixed image size: give --height and "
                          "--width, not --size")
    from detection.export import export_detector
    from detection.predict import Predictor

    model = Predictor(cfg, checkpoint, device="cpu").model
    side = model.transform.min_size[-1]  # the test-time shorter side
    return export_detector(model, out, height or side, width or side,
                           what=f"{cfg.model.kind} {cfg.model.backbone!r} head={cfg.model.head!r}")
