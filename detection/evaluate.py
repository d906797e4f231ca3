"""Evaluating a trained detector checkpoint on a config's validation set, on 1..N processes."""

from pathlib import Path

import torch
from torch.utils.data import DataLoader

from engine.data import EpochSampler
from engine.trainer import make_accelerator

from .model import load_detector_weights
from .train import build_detector, build_task, build_val_dataset


def evaluate_checkpoint(cfg, checkpoint: str | Path, out_dir: str | Path, batch_size: int = 2) -> dict:
    accelerator = make_accelerator(cfg.train)
    val_set = build_val_dataset(cfg)  # the training annotations are not needed to evaluate
    print(f"val: {len(val_set)} images; problems: {val_set.problems.report()}")
    model = load_detector_weights(build_detector(cfg, len(val_set.classes) + 1), checkpoint)
    task = build_task(cfg, val_set=val_set)
    loader = DataLoader(val_set, batch_size=batch_size * accelerator.num_processes,
                        sampler=EpochSampler(len(val_set), shuffle=False),
                        num_workers=cfg.train.num_workers, collate_fn=task.collate)
    model, loader = accelerator.prepare(model.eval(), loader)
    with torch.no_grad():
        evaluation = task.evaluate(model, loader, accelerator)
    if accelerator.is_main_process:
        task.save_evaluation(evaluation, Path(out_dir))
    return evaluation.metrics
