"""Classification as a registered task (`engine.tasks`): what the tools do with its configs."""

from engine.tasks import TaskSpec, register_task

from .evaluate import evaluate_checkpoint
from .export import export_run
from .predict import Predictor
from .pretrain import RECIPE, TTA_KEYS, TTA_REFUSAL, load_pretrain_config

SPEC = register_task(TaskSpec(
    name="classification",
    load_config=load_pretrain_config,
    recipe=RECIPE,
    evaluate=evaluate_checkpoint,
    predictor=Predictor.from_run,
    export=export_run,
    tta=TTA_KEYS,
    tta_hint=TTA_REFUSAL,
))
