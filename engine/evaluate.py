"""Evaluating a trained model on a validation set outside training, on 1..N processes: the same
loader, sampler and Task.evaluate the trainer uses, so the numbers are the ones training reports."""

from pathlib import Path

import torch
from torch.utils.data import DataLoader

from .accelerator import make_accelerator
from .data import EpochSampler


def evaluate_model(model, task, dataset, train_cfg, out_dir: str | Path, batch_size: int) -> dict:
    """`task.evaluate` of `model` over `dataset`; the main process writes it under `out_dir`."""
    accelerator = make_accelerator(train_cfg)
    loader = DataLoader(dataset, batch_size=batch_size * accelerator.num_processes,
                        sampler=EpochSampler(len(dataset), shuffle=False),
                        num_workers=train_cfg.num_workers, collate_fn=task.collate)
    model, loader = accelerator.prepare(model.eval(), loader)
    with torch.no_grad():
        evaluation = task.evaluate(model, loader, accelerator)
    if accelerator.is_main_process:
        task.save_evaluation(evaluation, Path(out_dir))
    accelerator.wait_for_everyone()  # no process leaves while another still uses the group
    return evaluation.metrics
