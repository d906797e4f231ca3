"""Pretraining a registry backbone on image classification: config in, trained run dir out.

    python -m classification.pretrain --config <yaml> [key=value ...]   # the library's entry point
"""

from backbones import create_backbone, load_weights
from backbones.weights import check_task, load_state, read_weights, source_name
from engine.checks import check_run_values
from engine.cli import run_tool, train_from_command_line
from engine.config import load_config, to_builtin
from engine.run import Recipe, run
from engine.tta import refuse_unsupported

from .config import ClassificationConfig, classification_problems
from .datasets import build_datasets
from .loss import BatchMixing, build_loss, mixes
from .task import ClassificationTask
from .transforms import preset_mean_std

TTA_KEYS = ("flip",)  # the eval.tta keys classification takes
TTA_REFUSAL = ("; scales are for dense tasks: classification's multi-scale test is "
               "data.multi_scale_test")


def load_pretrain_config(path=None, overrides=(), *, training: bool = True):
    """The config at `path` with `overrides` (`training`: as every task's loader takes it;
    a classifier's run starts from nothing it would ask for)."""
    return load_config(ClassificationConfig, path, overrides,
                       check=lambda cfg: check_run_values(cfg, classification_problems(cfg)))


def build_model(cfg, num_classes: int):
    model = create_backbone(cfg.model.name, num_classes=cfg.model.num_classes or num_classes,
                            **to_builtin(cfg.model.options))
    if cfg.model.weights:
        load_weights(model, cfg.model.weights)
    return model


def load_classifier_weights(model, source):
    """A classification run's (or a backbone's) weights into a classifier, strictly; a detector's
    or segmenter's file is named as such."""
    state, description = read_weights(source)
    check_task(description, ("classification", "backbone"), source, "classifier",
               "; evaluate or predict it with its own run's config")
    return load_state(model, state, description, source_name(source))


def build_task(cfg, train_set=None, val_set=None) -> ClassificationTask:
    refuse_unsupported(cfg.eval.tta, TTA_KEYS, "classification", hint=TTA_REFUSAL)
    mixing = None
    if train_set is not None and mixes(cfg.data.mixup):  # training batches only
        classes = cfg.model.num_classes or len(train_set.classes)
        mixing = BatchMixing(cfg.data.mixup, cfg.loss.smoothing, classes)
    task = ClassificationTask(channels_last=cfg.train.channels_last, ten_crop=cfg.data.ten_crop,
                              mean_std=preset_mean_std(cfg.data.preset),
                              multi_scale=tuple(cfg.data.multi_scale_test), flip=cfg.eval.tta.flip,
                              loss=build_loss(cfg.loss, mixing is not None), mixing=mixing)
    if train_set is not None and cfg.model.num_classes in (None, 0, len(train_set.classes)):
        task.categories = list(train_set.classes)  # the model's outputs, named
    return task


RECIPE = Recipe(
    datasets=lambda cfg: build_datasets(cfg.data, seed=cfg.train.seed),
    model=lambda cfg, train_set: build_model(cfg, len(train_set.classes)),
    task=build_task,
)


def pretrain(cfg) -> dict:
    """Train `cfg.model.name` on `cfg.data`; returns the last evaluation's metrics."""
    return run(cfg, RECIPE)


def main(argv=None) -> None:
    train_from_command_line("Pretrain a backbone on image classification.", load_pretrain_config,
                            pretrain, argv)


if __name__ == "__main__":
    run_tool(main)
