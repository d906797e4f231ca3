"""Evaluating a trained detector checkpoint on a config's validation set, on 1..N processes."""

import logging
from pathlib import Path

from engine.evaluate import evaluate_model

from .model import load_detector_weights
from .train import build_detector, build_task, build_val_dataset

log = logging.getLogger("detection")


def evaluate_checkpoint(cfg, checkpoint: str | Path, out_dir: str | Path, batch_size: int = 2) -> dict:
    val_set = build_val_dataset(cfg)  # the training annotations are not needed to evaluate
    log.info(f"val: {len(val_set)} images; problems: {val_set.problems.report()}")
    model = load_detector_weights(build_detector(cfg, len(val_set.classes) + 1), checkpoint)
    return evaluate_model(model, build_task(cfg, val_set=val_set), val_set, cfg.train, out_dir, batch_size)
