"""Semantic segmentation as a registered task (`engine.tasks`): what the tools do with its configs."""

from engine.tasks import TaskSpec, register_task

from .evaluate import evaluate_checkpoint
from .model import HEADS
from .predict import Predictor
from .train import RECIPE, load_segmentation_config

SPEC = register_task(TaskSpec(
    name="segmentation",
    load_config=load_segmentation_config,
    recipe=RECIPE,
    evaluate=evaluate_checkpoint,
    predictor=Predictor.from_run,
    no_export="ONNX export covers classifiers, backbones and detectors; a segmenter's is not "
              "written yet",
    tta=("flip", "scales"),  # logits averaged at full size
    fits=lambda cfg: cfg.model.head in HEADS,
))
