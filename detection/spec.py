"""Detection as a registered task (`engine.tasks`): what the tools do with its configs."""

from engine.tasks import TaskSpec, register_task

from .evaluate import evaluate_checkpoint
from .export import export_run
from .model import HEADS
from .predict import Predictor
from .train import RECIPE, load_detection_config

SPEC = register_task(TaskSpec(
    name="detection",
    load_config=load_detection_config,
    recipe=RECIPE,
    evaluate=evaluate_checkpoint,
    predictor=Predictor.from_run,
    export=export_run,
    tta=("flip", "scales"),  # boxes merged over the views (detection.tta)
    fits=lambda cfg: cfg.model.head in HEADS,  # a config without `task:` that segmentation's fits too
))
