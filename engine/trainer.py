"""The training loop every task shares, on one CPU, one GPU or many through Hugging Face Accelerate.

The task (an `engine.task.Task`) supplies the collate function, the loss of one batch and its
evaluation; the loop steps, accumulates and schedules, and calls its hooks after every step, in
order: the metric window (`engine.window`), evaluation and best weights (`engine.eval_hook`),
checkpoints (`engine.checkpointer`). The divergence guard (`engine.guard`) decides whether a step
is applied; a signal stops at the next step boundary, saved (`engine.signals`).
"""

import logging
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from .accelerator import make_accelerator, run_precision, split_batch
from .checkpointer import DONE_FILE, Checkpointer
from .config import save_config
from .data import EpochSampler
from .distributed import check_same_config, is_collective_failure, lost_process
from .ema import build_ema
from .eval_hook import EvalHook
from .guard import DivergenceGuard
from .lock import RunLock
from .logs import ProgressBar
from .metrics import MetricsLogger, truncate_after
from .optim import build_optimizer
from .probe_hook import probe_hooks
from .schedule import build_scheduler, to_iterations
from .signals import StopRequested, StopRequests
from .sources import DeviceResidentSet, EpochSeeded, make_loader
from .task import SKIPPED, Task
from .window import MetricWindow, log_skipped_before_training, report_skipped

log = logging.getLogger("engine")


class Trainer:
    """Seed (`accelerate.utils.set_seed`) before building the model you pass in, so runs repeat."""

    def __init__(self, cfg, model: nn.Module, task: Task, train_set: Dataset, val_set: Dataset | None):
        self.cfg, self.task, self.train_set, self.val_set = cfg, task, train_set, val_set
        self.out = Path(cfg.output_dir)
        t = cfg.train
        self.accelerator = make_accelerator(t)
        check_same_config(cfg, self.accelerator)
        self.precision = run_precision(t)  # what "auto" became here: logged with every record
        micro_batch = split_batch(t.batch_size, t.grad_accum, self.accelerator.num_processes)
        if t.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.lr = cfg.optim.lr * t.batch_size / cfg.optim.lr_batch  # scaled to the global batch
        optimizer = build_optimizer(model, cfg.optim, self.lr)
        self.sampler = EpochSampler(len(train_set), seed=t.seed)
        self.resident = isinstance(train_set, DeviceResidentSet)
        train_loader = self._train_loader(micro_batch)
        if len(train_loader) == 0:
            raise ValueError(f"the training set ({len(train_set)} samples) is smaller than one batch")
        self.iters_per_epoch = len(train_loader) // t.grad_accum
        self.total = to_iterations(cfg.schedule.total, cfg.schedule.unit, self.iters_per_epoch)
        self.stop = min(self.total, t.stop_at) if t.stop_at else self.total
        if cfg.schedule.kind == "plateau" and (val_set is None or task.best_metric is None):
            raise ValueError("schedule.kind=plateau watches the validation error: this run has no "
                             "validation set (or its task no metric to watch)")
        self.scheduler = build_scheduler(optimizer, cfg.schedule, self.iters_per_epoch)
        val_loader = None
        if val_set is not None:
            val_loader = make_loader(val_set, task, micro_batch, EpochSampler(len(val_set), shuffle=False),
                                     t.num_workers, self._pin_memory)
        if t.compile:
            model = torch.compile(model)
        if self.resident:  # its batches are made on the device, for this process: nothing to prepare
            self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
            self.train_loader = train_loader
        else:
            self.model, self.optimizer, self.train_loader = self.accelerator.prepare(
                model, optimizer, train_loader)
        self.val_loader = self.accelerator.prepare(val_loader) if val_loader is not None else None
        self.ema = build_ema(self.unwrapped_model(), t.ema)  # after prepare: on the model's device
        self.step, self.elapsed = 0, 0.0  # elapsed: training seconds so far
        self.logger, self.bar = None, None  # metrics.jsonl and the progress bar, opened by fit()
        self.guard = DivergenceGuard(self)
        self.window, self.evaluator, self.checkpointer = MetricWindow(), EvalHook(), Checkpointer(self.out)
        # called in this order; train.probe_every's probe logs before the checkpoint it may share
        self.hooks = [self.window, *probe_hooks(t), self.evaluator, self.checkpointer]
        for hook in self.hooks:
            hook.trainer = self

    @property
    def _pin_memory(self) -> bool:
        return self.accelerator.device.type == "cuda"

    def _train_loader(self, micro_batch: int):
        acc, t = self.accelerator, self.cfg.train
        if self.resident:
            return self.train_set.device_batches(self.sampler, micro_batch, acc.device, acc.process_index,
                                                 acc.num_processes)
        return make_loader(self.train_set, self.task, micro_batch, self.sampler, t.num_workers,
                           self._pin_memory, train=True)

    @property
    def last_path(self) -> Path:
        return self.checkpointer.last_path

    def unwrapped_model(self) -> nn.Module:
        """The model itself, without Accelerate's (DDP) and torch.compile's wrappers."""
        model = self.accelerator.unwrap_model(self.model)
        return getattr(model, "_orig_mod", model)

    def fit(self) -> dict:
        """Train to `schedule.total` (or `train.stop_at`), evaluating and checkpointing on the way.

        One process writes a run folder at a time (a lock); a signal stops at the next step
        boundary, saved (KeyboardInterrupt); a non-finite step stops with TrainingDiverged, the
        last good checkpoint untouched; a lost process stops the others with ProcessLost."""
        acc = self.accelerator
        if self.out.exists() and not self.out.is_dir():
            raise NotADirectoryError(f"output_dir={self.out} is a file: give a folder (the run's)")
        self.out.mkdir(parents=True, exist_ok=True)
        lock = RunLock(self.out) if acc.is_main_process else None
        note = lock.acquire() if lock else None
        try:
            if note:
                log.warning(note)
            return self._fit()
        except RuntimeError as error:
            if acc.num_processes > 1 and is_collective_failure(error):
                raise lost_process(error, acc.process_index, acc.num_processes, self.step + 1,
                                   self.cfg.train.dist_timeout_s, self.checkpointer.last_good()) from error
            raise
        finally:
            if lock:
                lock.release()

    def _fit(self) -> dict:
        acc = self.accelerator
        events = self.checkpointer.resume()
        if acc.is_main_process:
            save_config(self.cfg, self.out / "config.yaml")
            truncate_after(self.out, self.step)
        self.logger = MetricsLogger(self.out, enabled=acc.is_main_process)
        for event in events:
            self.logger.log(event)
        log_skipped_before_training(self)
        self._call_hooks("before_train")
        self.bar = ProgressBar(total=self.total, initial=self.step, disable=not acc.is_main_process,
                        desc=self.cfg.get("name", "train"), dynamic_ncols=True)
        self.model.train()
        try:
            with StopRequests() as requests:
                while self.step < self.stop:
                    start = self.step
                    self._epoch(requests)
                    self._after_epoch(requests, start)
                self.evaluator.recover_final()
        except StopRequested:
            raise
        except KeyboardInterrupt:
            log.warning(f"stopped at once, mid-step: nothing saved since iteration "
                        f"{self.checkpointer.saved_step} ({self.last_path})")
            raise
        finally:
            self.bar.close()
            self.logger.close()
        evaluation = self.evaluator.evaluation
        if self.step >= self.total and (evaluation is not None or not (self.out / DONE_FILE).exists()):
            self.checkpointer.finish(evaluation)  # not again for a finished run merely restarted
        acc.wait_for_everyone()
        return evaluation.metrics if evaluation is not None else {}

    def _epoch_batches(self, epoch: int):
        """This epoch's training batches, from where a run resumed mid-epoch left off."""
        skip = (self.step % self.iters_per_epoch) * self.cfg.train.grad_accum
        if self.resident:
            self.train_loader.set_epoch(epoch)
            return self.train_loader.batches(skip)
        loader = self.accelerator.skip_first_batches(self.train_loader, skip) if skip else self.train_loader
        # Accelerate re-applies the loader's epoch at each pass but cannot always reach our sampler
        # and dataset through its wrappers: set all three.
        loader.set_epoch(epoch)
        self.sampler.set_epoch(epoch)
        if isinstance(self.train_set, EpochSeeded):
            self.train_set.set_epoch(epoch)  # seeds the augmentation
        return loader

    def _epoch(self, requests: StopRequests) -> None:
        """Train from the current step to the end of its epoch (or the stop)."""
        epoch = self.step // self.iters_per_epoch
        skipped, last_tick, bad, micro = [], time.perf_counter(), None, 0
        for batch in self._epoch_batches(epoch):
            skipped += batch.pop(SKIPPED, [])
            if not batch:  # nothing in it could be read
                continue
            if micro == 0:
                self._call_hooks("before_step")
                if self.cfg.train.nonfinite_skips:
                    self.guard.keep_buffers()
            micro += 1
            bad, stopping = self._micro_step(batch, bad, requests)
            if not self.accelerator.sync_gradients:
                continue
            self.window.step_done(applied=bad is None)
            bad, micro = None, 0
            self.scheduler.step()
            self.step += 1
            if self.ema is not None and self.step % self.cfg.train.ema.every == 0:
                self.ema.update(self.unwrapped_model(), step=self.step)
            self.bar.update(1)
            self.window.seconds += time.perf_counter() - last_tick  # loading + compute
            self._call_hooks("after_step")
            now = time.perf_counter()
            self.elapsed, last_tick = self.elapsed + now - last_tick, now
            if stopping:
                self._stop_here(requests.signum)
            if self.step >= self.stop:
                break
        report_skipped(self, skipped, epoch)

    def _after_epoch(self, requests: StopRequests, start: int) -> None:
        """A signal that came after the epoch's last step was looked at (its bookkeeping, or a step
        the divergence guard did not look at) stops here, saved, on every process; an epoch that
        made no step would be repeated forever: an error instead."""
        _, stopping = self.guard.agree(None, requests.signum is not None)
        if stopping and self.step < self.stop:
            self._stop_here(requests.signum)
        if self.step == start:
            raise RuntimeError(
                f"epoch {start // self.iters_per_epoch} made no training step (its loader gave no "
                f"batch from iteration {start}: {self.iters_per_epoch} steps an epoch of "
                f"{self.cfg.train.grad_accum} micro-batches each): stopped rather than loop")

    def _micro_step(self, batch: dict, bad: str | None, requests: StopRequests) -> tuple[str | None, bool]:
        """Forward and backward of one micro-batch; at the last of a step, the update unless the
        guard finds the step not finite (on any process). Returns (what was not finite, whether
        every process stops after this step)."""
        acc, guard = self.accelerator, self.guard
        looking, stopping = guard.looks_at(self.step + 1), False
        with acc.accumulate(self.model):
            with acc.autocast():
                loss, stats = self.task.train_step(self.model, batch)
            acc.backward(loss)  # every process, whatever its loss: DDP reduces gradients together
            unseen = guard.unseen_nonfinite(loss, looking)
            finite = not looking or (bool(torch.isfinite(loss.detach())) and not unseen)
            bad = bad or (None if finite else "loss")
            if finite:
                self.window.add(stats)
            if acc.sync_gradients:
                self._call_hooks("after_backward")
                if looking:
                    bad, stopping = guard.agree(bad or guard.gradient_problem(), requests.signum is not None)
                elif self.cfg.train.clip_grad.norm > 0:
                    guard.clip()
                if bad:
                    guard.skip(bad, unseen)
                else:
                    self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
        return bad, stopping

    def _call_hooks(self, point: str) -> None:
        for hook in self.hooks:
            getattr(hook, point)()

    def _stop_here(self, signum: int) -> None:
        if self.checkpointer.saved_step != self.step:
            self.checkpointer.save()
        log.info(f"interrupted at iteration {self.step} (signal {signum}); saved {self.last_path}; "
                 f"resume=auto continues exactly from here")
        raise StopRequested(f"signal {signum}")
