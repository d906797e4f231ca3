"""Evaluating a trained segmenter checkpoint on a config's validation split, on 1..N processes.

One image per batch by default, as torchvision's reference evaluates: padding a batch to its
largest image would feed the padding to the network too."""

import logging
from pathlib import Path

from engine.evaluate import evaluate_model
from engine.tta import views

from .model import load_segmenter_weights
from .task import SegmentationTask
from .train import build_dataset, build_model

log = logging.getLogger("segmentation")


def evaluate_checkpoint(cfg, checkpoint: str | Path, out_dir: str | Path, batch_size: int = 1) -> dict:
    val_set = build_dataset(cfg, "val", train=False)
    log.info(f"val: {len(val_set)} images")
    model = load_segmenter_weights(build_model(cfg, len(val_set.classes)), checkpoint)
    task = SegmentationTask(val_set.classes, views(cfg.eval.tta))
    return evaluate_model(model, task, val_set, cfg.train, out_dir,
                          batch_size)
