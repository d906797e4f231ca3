"""tools/export.py's work: a trained classifier or detector, or a bare registry backbone, to an
ONNX file checked against PyTorch at export time (classification/export.py, detection/export.py)."""

from pathlib import Path

from engine.onnx import ExportError

from .predict import load_task_config


def export(out: Path, *, config=None, checkpoint=None, backbone: str | None = None, weights=None,
           size: int | None = None, height: int | None = None, width: int | None = None,
           task: str | None = None) -> dict:
    """Export what the arguments name; returns the check's report (and prints it)."""
    if backbone:
        report = _export_backbone(backbone, weights, out, size)
    else:
        task, cfg = load_task_config(config, task)
        if task == "detection":
            report = _export_detector(cfg, checkpoint, out, height, width)
        elif task == "classification":
            report = _export_classifier(cfg, checkpoint, out, size)
        else:
            raise ExportError(f"{config} describes a {task} model; tools/export.py exports "
                              "classifiers, backbones and detectors")
    print(f"written {out}: checked with onnxruntime against PyTorch: {report}")
    return report


def _export_backbone(name: str, weights, out: Path, size: int | None) -> dict:
    from backbones import backbone_input_size, create_backbone, load_weights
    from classification.export import export_classifier

    model = create_backbone(name)
    if weights:
        load_weights(model, weights)
    return export_classifier(model, out, size or backbone_input_size(name), what=f"backbone {name!r}")


def _export_classifier(cfg, checkpoint, out: Path, size: int | None) -> dict:
    from backbones import load_weights
    from classification.export import export_classifier
    from classification.pretrain import build_model

    from .predict import classification_names

    model = load_weights(build_model(cfg, len(classification_names(cfg))), checkpoint)
    default = 224 if cfg.data.preset == "imagenet" else cfg.data.image_size
    return export_classifier(model, out, size or default, what=f"classifier {cfg.model.name!r}")


def _export_detector(cfg, checkpoint, out: Path, height: int | None, width: int | None) -> dict:
    from detection.export import export_detector
    from detection.predict import Predictor

    model = Predictor(cfg, checkpoint, device="cpu").model
    side = model.transform.min_size[-1]  # the test-time shorter side
    return export_detector(model, out, height or side, width or side,
                           what=f"{cfg.model.kind} {cfg.model.backbone!r} head={cfg.model.head!r}")
