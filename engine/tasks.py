"""The task registry: one `TaskSpec` per task, registered by the task's package when imported
(`register_task`), read by the tools, the trainer's logging and the checks.

A config names its task (`task: detection`), which is also the package that registers it, so a
tool finds any task: the three of this toolkit (listed as `resnet_reproduce.tasks` entry points)
and a user's own, whose package needs only be importable (`task: my_task`). Run folders written
before configs named their task are read by the one schema their keys fit.
"""

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points

from .config import ConfigError, declared_task
from .logs import adopt_package
from .run import Recipe
from .tta import refuse_unsupported

ENTRY_POINTS = "resnet_reproduce.tasks"


@dataclass(frozen=True)
class TaskSpec:
    name: str  # the config's `task:`, the package that registers it and its logger's name
    load_config: Callable  # (path=None, overrides=(), training=True) -> the typed, checked config
    recipe: Recipe  # how a run is built: datasets, model, Task
    evaluate: Callable  # (cfg, checkpoint, out_dir, batch_size=) -> metrics; writes metrics.json
    predictor: Callable  # (cfg, checkpoint) -> an `engine.predict.Predictor`
    export: Callable | None = None  # (cfg, checkpoint, out, size=, height=, width=) -> check's report
    no_export: str = ""  # why a task without `export` has none (the tool says it)
    tta: tuple[str, ...] = ()  # the eval.tta keys its evaluation and prediction honour
    tta_hint: str = ""  # added to the refusal of another key
    fits: Callable = field(default=lambda cfg: True)  # a config without `task:` is this task's


_REGISTRY: dict[str, TaskSpec] = {}


def register_task(spec: TaskSpec) -> TaskSpec:
    """Make `spec` known by its name (a package registers its task once, when imported)."""
    _REGISTRY[spec.name] = spec
    adopt_package(spec.name)
    return spec


def available_tasks() -> list[str]:
    """The registered tasks and the installed ones (entry points), not yet imported."""
    installed = [e.name for e in entry_points(group=ENTRY_POINTS)]
    return sorted(set(_REGISTRY) | set(installed))


def task_spec(name: str) -> TaskSpec:
    """The spec of task `name`, importing the package that registers it where needed."""
    if name not in _REGISTRY:
        module = next((e.value for e in entry_points(group=ENTRY_POINTS) if e.name == name), name)
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name != module.split(".")[0]:
                raise
    if name not in _REGISTRY:
        raise ConfigError(f"unknown task {name!r}; valid: {', '.join(available_tasks())} (or the name "
                          f"of an importable package that calls engine.tasks.register_task)")
    return _REGISTRY[name]


def load_task_config(path, task: str | None = None, overrides=(), training: bool = False):
    """(task, config): the task the config names (`task:`), or the one `task` names; its
    `eval.tta` checked against what the task takes. `training=False`: a config read back to use
    a trained run (evaluate, predict, export), which needs no starting weights."""
    task = task or declared_task(path) or _fitting_schema(path)
    spec = task_spec(task)
    cfg = spec.load_config(path, overrides, training=training)
    refuse_unsupported(cfg.eval.tta, spec.tta, task, hint=f" ({path}){spec.tta_hint}")
    return task, cfg


def train(cfg) -> dict:
    """Train a config of any registered task (its `task:`) to its end, or `train.stop_at`."""
    from .run import run

    return run(cfg, task_spec(cfg.task).recipe)


def _fitting_schema(path) -> str:
    """A config without `task:` (older run folders): the one task whose schema its keys fit and
    whose `fits` accepts it."""
    fits = []
    for name in available_tasks():
        spec = task_spec(name)
        try:
            cfg = spec.load_config(path, training=False)
        except ConfigError:
            continue
        if spec.fits(cfg):
            fits.append(name)
    if len(fits) != 1:
        raise ConfigError(f"{path} fits the {' and '.join(fits) or 'none'} config schema(s) of "
                          f"{', '.join(available_tasks())}: name the task with --task")
    return fits[0]


def predict_run(config, checkpoint, inputs: list[str], out, *, batch: int = 1, task: str | None = None,
                overrides=(), **options) -> dict:
    """A trained run's predictions on the images `inputs` name (tools/predict.py): its task's
    predictor, `engine.predict.predict_files`'s loop; `options` go to the predictor (detection:
    score)."""
    from .predict import find_images, predict_files

    task, cfg = load_task_config(config, task, overrides)
    files = [str(f) for f in find_images(inputs)]  # before the model: a wrong path is said at once
    predictor = task_spec(task).predictor(cfg, checkpoint, **options)
    return predict_files(predictor, files, out, batch=batch, desc=f"predict ({task})")


def export_run(config, checkpoint, out, *, task: str | None = None, overrides=(), **sizes) -> dict:
    """A trained run to ONNX, checked against PyTorch (tools/export.py); a task that exports
    nothing says why."""
    from .onnx import ExportError

    task, cfg = load_task_config(config, task, overrides)
    spec = task_spec(task)
    if spec.export is None:
        why = spec.no_export or "its task exports nothing"
        raise ExportError(f"{config} describes a {task} model: {why}")
    return spec.export(cfg, checkpoint, out, **sizes)
