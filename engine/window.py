"""The metric window (detectron2's `PeriodicWriter`): the task's per-sample sums of the steps
since the last log, reduced over processes and written to metrics.jsonl as means every
`train.log_every` iterations (and at the stop), with the learning rate, throughput and precision.

A step's statistics join the window only once the step is applied: a step the divergence guard
skips leaves them out on every process alike, so all processes reduce the same keys (or, when
every step of a window was skipped, log nothing and reduce nothing)."""

import logging

import torch
from accelerate.utils import gather_object

from .data import SKIPPED_FILES
from .hooks import HookBase

log = logging.getLogger("engine")


class MetricWindow(HookBase):
    def __init__(self):
        self.sums, self.seconds = {}, 0.0  # seconds: the window's loading and compute
        self._step_stats = []  # the micro-batches of the step in progress

    def add(self, stats: dict) -> None:
        """One micro-batch's sums, kept until its step is applied (`step_done(applied=True)`)."""
        self._step_stats.append(stats)

    def step_done(self, applied: bool) -> None:
        """Sum the step's statistics into the window (tensors on the device, plain numbers on the
        host: a number copied to a GPU each step would wait for it), or drop a skipped step's."""
        for stats in self._step_stats if applied else ():
            for key, value in stats.items():
                value = value.detach().float() if torch.is_tensor(value) else value
                self.sums[key] = self.sums.get(key, 0) + value
        self._step_stats = []

    def after_step(self) -> None:
        tr = self.trainer
        if tr.step % tr.cfg.train.log_every == 0 or tr.step == tr.stop:
            self._write()
            self.sums, self.seconds = {}, 0.0

    def _write(self) -> None:
        """Per-sample means of the task's sums over the window (all processes)."""
        if not self.sums:  # every step since the last log was skipped, on every process
            return
        tr = self.trainer
        keys = sorted(self.sums)
        device = tr.accelerator.device
        values = [torch.as_tensor(self.sums[k], dtype=torch.float32, device=device) for k in keys]
        totals = tr.accelerator.reduce(torch.stack(values), "sum").tolist()
        sums = dict(zip(keys, totals))
        samples = sums.pop("samples", 0)
        if not samples:
            return
        record = {"iteration": tr.step, "epoch": tr.step / tr.iters_per_epoch,
                  "lr": tr.scheduler.get_last_lr()[0]}
        record.update({f"train_{key}": value / samples for key, value in sums.items()})
        record.update({"images_per_s": samples / max(self.seconds, 1e-9), "elapsed_s": tr.elapsed,
                       "processes": tr.accelerator.num_processes, "precision": tr.precision})
        tr.logger.log(record)
        tr.bar.set_postfix({k[6:]: f"{v:.3f}" for k, v in record.items() if k.startswith("train_")})


def log_skipped_before_training(trainer) -> None:
    """Samples the data check dropped before training (`data.on_bad_*=skip`), counted and named."""
    for split, dataset in (("train", trainer.train_set), ("val", trainer.val_set)):
        if getattr(dataset, SKIPPED_FILES, None):
            trainer.logger.log({"iteration": trainer.step, "event": "skipped_before_training",
                                "split": split, "skipped": len(dataset.skipped_files),
                                "skipped_files": dataset.skipped_files})


def report_skipped(trainer, skipped: list, epoch: int) -> None:
    """Samples that could not be read during an epoch (all processes'), counted and named."""
    accelerator = trainer.accelerator
    skipped = gather_object(skipped) if accelerator.num_processes > 1 else skipped
    if skipped and accelerator.is_main_process:
        shown = ", ".join(map(str, skipped[:10])) + (" ..." if len(skipped) > 10 else "")
        log.warning(f"epoch {epoch}: skipped {len(skipped)} unreadable samples: {shown}")
        trainer.logger.log({"iteration": trainer.step, "epoch": epoch, "skipped": len(skipped),
                            "skipped_files": [str(s) for s in skipped]})
