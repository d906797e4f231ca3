"""The task registry: what the tools do with a trained run of each task.

Every config names its task (`task: classification | detection | segmentation`, written into each
run's config.yaml); `tools/evaluate.py`, `predict.py` and `export.py` look it up here for how the
config is read back, how a checkpoint is evaluated, which runner predicts, how the model is
exported and which test-time views (`eval.tta`) it takes. Run folders written before configs named
their task are read by the one schema their keys fit.
"""

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from engine.config import ConfigError, declared_task
from engine.tta import refuse_unsupported


def _lazy(reference: str) -> Callable:
    """`module:name`, imported at the first call: a tool loads only its own task's packages."""
    module, name = reference.split(":")

    def call(*args, **kwargs):
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.reference = reference
    return call


@dataclass(frozen=True)
class TaskTools:
    load_config: Callable  # (path, overrides=()) -> the config of a trained run
    evaluate: Callable  # (cfg, checkpoint, out, [batch_size=]) -> metrics; writes out/metrics.json
    predictor: Callable  # (cfg, checkpoint, score) -> runner; runner.run(images, files, out) -> records
    export: Callable | None  # (cfg, checkpoint, out, size=, height=, width=) -> the ONNX check's report
    tta: tuple[str, ...]  # the eval.tta keys its evaluation and prediction honour


TASKS = {
    "classification": TaskTools(
        load_config=_lazy("classification.pretrain:load_pretrain_config"),
        evaluate=_lazy("classification.evaluate:evaluate_checkpoint"),
        predictor=_lazy("experiments.predict:ClassificationRunner"),
        export=_lazy("experiments.export:export_classifier_run"),
        tta=("flip",)),  # as classification.pretrain.TTA_KEYS; its multi-scale test: data.multi_scale_test
    "detection": TaskTools(
        load_config=partial(_lazy("detection:load_detection_config"), training=False),
        evaluate=_lazy("detection.evaluate:evaluate_checkpoint"),
        predictor=_lazy("experiments.predict:DetectionRunner"),
        export=_lazy("experiments.export:export_detector_run"),
        tta=("flip", "scales")),
    "segmentation": TaskTools(
        load_config=partial(_lazy("segmentation:load_segmentation_config"), training=False),
        evaluate=_lazy("segmentation.evaluate:evaluate_checkpoint"),
        predictor=_lazy("experiments.predict:SegmentationRunner"),
        export=None,
        tta=("flip", "scales")),
}


def task_tools(task: str) -> TaskTools:
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; valid: {', '.join(TASKS)}")
    return TASKS[task]


def load_task_config(path, task: str | None = None, overrides=()) -> tuple[str, object]:
    """(task, config): the task the config names (`task:`), or the one `task` names; its
    `eval.tta` checked against what the task takes."""
    task = task or declared_task(path) or _fitting_schema(path)
    cfg = task_tools(task).load_config(path, overrides)
    refuse_unsupported(cfg.eval.tta, TASKS[task].tta, task, hint=f" ({path})")
    return task, cfg


def _fitting_schema(path) -> str:
    """A config without `task:` (older run folders): the task whose schema its keys fit,
    detection and segmentation told apart by model.head where both fit."""
    fits = {}
    for name, tools in TASKS.items():
        try:
            fits[name] = tools.load_config(path)
        except ConfigError:
            continue
    if "detection" in fits and "segmentation" in fits:
        head = fits["detection"].model.head
        del fits["segmentation" if head in ("c4", "vgg", "fpn") else "detection"]
    if len(fits) != 1:
        raise ConfigError(f"{path} fits the {' and '.join(fits) or 'none'} config schema(s) of "
                          f"{', '.join(TASKS)}: name the task with --task")
    return next(iter(fits))
