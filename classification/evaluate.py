"""Evaluating a trained classifier checkpoint on its config's validation split, on 1..N
processes: top-1 / top-5 error with the config's test protocol (centre crop, 10-crop, or the
multi-scale fully-convolutional test, one image per batch as its sizes differ)."""

import logging
from pathlib import Path

from engine.evaluate import evaluate_model

from .datasets import build_datasets
from .pretrain import build_model, build_task, load_classifier_weights

log = logging.getLogger("classification")


def evaluate_checkpoint(cfg, checkpoint: str | Path, out_dir: str | Path,
                        batch_size: int | None = None) -> dict:
    _, val_set = build_datasets(cfg.data, seed=cfg.train.seed)
    log.info(f"val: {len(val_set)} images")
    model = load_classifier_weights(build_model(cfg, len(val_set.classes)), checkpoint)
    batch_size = batch_size or (1 if cfg.data.multi_scale_test else 64)
    return evaluate_model(model, build_task(cfg), val_set, cfg.train, out_dir, batch_size)
