"""Pretraining a registry backbone on image classification: config in, trained run dir out."""

from accelerate.utils import set_seed

from backbones import create_backbone, load_weights
from engine.config import load_config
from engine.trainer import Trainer

from .config import ClassificationConfig
from .datasets import build_datasets
from .task import ClassificationTask
from .transforms import preset_mean_std


def load_pretrain_config(path=None, overrides=()):
    return load_config(ClassificationConfig, path, overrides)


def build_model(cfg, num_classes: int):
    model = create_backbone(cfg.model.name, num_classes=cfg.model.num_classes or num_classes,
                            **cfg.model.options)
    if cfg.model.weights:
        load_weights(model, cfg.model.weights)
    return model


def pretrain(cfg) -> dict:
    """Train `cfg.model.name` on `cfg.data`; returns the last evaluation's metrics."""
    set_seed(cfg.train.seed)  # before the model is built: its initialisation is part of the run
    train_set, val_set = build_datasets(cfg.data, seed=cfg.train.seed)
    model = build_model(cfg, len(train_set.classes))
    task = ClassificationTask(channels_last=cfg.train.channels_last, ten_crop=cfg.data.ten_crop,
                              mean_std=preset_mean_std(cfg.data.preset))
    return Trainer(cfg, model, task, train_set, val_set).fit()
