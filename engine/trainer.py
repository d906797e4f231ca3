"""The training loop every task shares, on one CPU, one GPU or many through Hugging Face Accelerate.

The task (an `engine.task.Task`: classification, detection) supplies the collate function, the
loss of one batch and its evaluation; this module owns everything else: devices and processes, mixed
precision, gradient accumulation, the lr schedule, logging, evaluation cadence, atomic checkpoints
and exact resume.
"""

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator, DataLoaderConfiguration
from accelerate.utils import broadcast_object_list, gather_object
from omegaconf import OmegaConf
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from backbones import save_weights

from .checkpoint import (
    atomic_save,
    atomic_write_text,
    cpu_tensors,
    load_checkpoint,
    rng_state,
    set_rng_state,
)
from .config import check_choice, save_config
from .data import SKIPPED_FILES, EpochSampler, GroupedBatchSampler
from .distributed import check_same_config, is_collective_failure, lost_process, process_group_timeout
from .ema import EmaConfig, build_ema
from .errors import TrainingDiverged
from .lock import RunLock
from .metrics import MetricsLogger, read_metrics, truncate_after
from .optim import build_optimizer
from .precision import PRECISIONS, resolve_precision
from .resume import apply_optimizer_settings, check_changes, trajectory_changes
from .schedule import PlateauLR, build_scheduler, to_iterations
from .signals import StopRequests, ignore_sigterm
from .task import SKIPPED, Evaluation, Task

log = logging.getLogger("engine")


@dataclass
class ClipGradConfig:
    norm: float = 0.0  # clip the global gradient norm to this (Accelerate's clip_grad_norm_); 0: off


@dataclass
class TrainConfig:
    batch_size: int = 128  # global: across processes and accumulation steps
    grad_accum: int = 1
    precision: str = "auto"  # auto (bf16 where the CPU/GPU has bf16 units, else fp32) | fp32 | bf16 | fp16
    channels_last: bool = False
    compile: bool = False  # torch.compile the model (off: slower than eager for CIFAR nets on a CPU)
    seed: int = 0
    num_workers: int = 2
    log_every: int = 50  # iterations
    eval_every: int = 0  # iterations; 0 = at the end of every epoch
    ckpt_every: int = 500  # iterations
    # stop at this iteration with the schedule as shipped: checkpoint, evaluate, return; run again
    # without it (resume=auto) to continue to the end. The quick try of any config. 0: to the end
    stop_at: int = 0
    cpu: bool = False  # stay on the CPU even where a GPU is present
    dist_timeout_s: float = 600.0  # on N processes: how long any of them waits for the others
    nonfinite_skips: int = 0  # non-finite steps skipped (not applied) before training stops
    # iterations between the divergence guard's looks at the loss and gradients (each look waits
    # for the device); >1 lets a GPU queue steps ahead: a non-finite step is then caught up to
    # N-1 iterations later, always before a log, evaluation or save (needs nonfinite_skips=0)
    check_finite_every: int = 1
    clip_grad: ClipGradConfig = field(default_factory=ClipGradConfig)
    ema: EmaConfig = field(default_factory=EmaConfig)


@dataclass
class OptimConfig:
    name: str = "sgd"  # the paper's momentum SGD | any name timm.optim.create_optimizer_v2 takes
    lr: float = 0.1
    lr_batch: int = 256  # the global batch `lr` is given for; other batches scale it linearly
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = False
    no_decay: list = field(default_factory=list)  # [] (decay on every parameter) | [norm, bias]
    layer_decay: float | None = None  # timm's layer-wise lr decay (models with layer groups)


ACCELERATE_PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}
DONE_FILE = "done.json"  # written last by a finished run: what experiments test for


def run_precision(t: TrainConfig) -> str:
    """fp32, bf16 or fp16: `train.precision`, with "auto" resolved for the device the run uses."""
    check_choice("train.precision", t.precision, PRECISIONS)
    device = "cpu" if t.cpu or not torch.cuda.is_available() else "cuda"
    return resolve_precision(t.precision, device)


def _cpu_processes() -> bool:
    """Several processes and no GPU: Accelerate runs them on gloo only when told `cpu=True`."""
    return not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1


def make_accelerator(t: TrainConfig) -> Accelerator:
    """The Accelerator of a run: devices and processes, precision, accumulation; batches split
    so the global batch is the same on any number of processes."""
    return Accelerator(
        cpu=t.cpu or _cpu_processes(),
        mixed_precision=ACCELERATE_PRECISION[run_precision(t)],
        gradient_accumulation_steps=t.grad_accum,
        dataloader_config=DataLoaderConfiguration(split_batches=True),
        kwargs_handlers=[process_group_timeout(t.dist_timeout_s)],
    )


def split_batch(batch_size: int, grad_accum: int, processes: int) -> int:
    """The micro-batch of all processes together; a global batch that does not split evenly
    (say, a job resumed on another number of GPUs) is an error listing the counts that would."""
    micro_batch = batch_size // grad_accum
    if micro_batch * grad_accum != batch_size or micro_batch % processes:
        fitting = [n for n in range(1, micro_batch + 1) if micro_batch % n == 0]
        raise ValueError(
            f"train.batch_size={batch_size} must split evenly into train.grad_accum={grad_accum} "
            f"steps and {processes} processes; process counts that split it (the global batch stays "
            f"the config's): {', '.join(map(str, fitting[:12]))}{', ...' if len(fitting) > 12 else ''}")
    return micro_batch


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
        self.resident = hasattr(train_set, "device_batches")  # e.g. classification's data.resident
        train_loader = (train_set.device_batches(self.sampler, micro_batch, self.accelerator.device,
                                                 self.accelerator.process_index,
                                                 self.accelerator.num_processes)
                        if self.resident else self._loader(train_set, micro_batch, self.sampler, train=True))
        if len(train_loader) == 0:
            raise ValueError(f"the training set ({len(train_set)} samples) is smaller than one batch")
        self.iters_per_epoch = len(train_loader) // t.grad_accum
        self.total = to_iterations(cfg.schedule.total, cfg.schedule.unit, self.iters_per_epoch)
        if cfg.schedule.kind == "plateau" and (val_set is None or task.best_metric is None):
            raise ValueError("schedule.kind=plateau watches the validation error: this run has no "
                             "validation set (or its task no metric to watch)")
        self.scheduler = build_scheduler(optimizer, cfg.schedule, self.iters_per_epoch)
        val_loader = None
        if val_set is not None:
            val_loader = self._loader(val_set, micro_batch, EpochSampler(len(val_set), shuffle=False))
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
        self._ema_evaluation = None  # the EMA's side of the last evaluation
        self.step, self.best, self.elapsed = 0, math.inf, 0.0  # elapsed: training seconds so far
        self.saved_step = None  # the step of the checkpoint on disk, None before the first
        self.nonfinite_skipped = 0  # non-finite steps skipped so far (train.nonfinite_skips)
        self._pending = None  # steps' non-finite flags not looked at yet (train.check_finite_every)
        self.logger, self._events = None, []  # events: logged once the logger exists

    def _loader(self, dataset, batch_size, sampler, train=False) -> DataLoader:
        """Training batches are full (drop_last) and, where the task groups samples (detection's
        aspect ratios), drawn one group at a time."""
        workers = self.cfg.train.num_workers
        groups = self.task.batch_groups(dataset) if train else None
        batching = (dict(batch_sampler=GroupedBatchSampler(sampler, groups, batch_size)) if groups
                    else dict(batch_size=batch_size, sampler=sampler, drop_last=train))
        return DataLoader(dataset, num_workers=workers, collate_fn=self.task.collate,
                          pin_memory=self.accelerator.device.type == "cuda",
                          worker_init_fn=ignore_sigterm if workers else None, **batching)

    # ---- checkpoints -------------------------------------------------------------------------
    @property
    def last_path(self) -> Path:
        return self.out / "checkpoints" / "last.pth"

    def unwrapped_model(self) -> nn.Module:
        """The model itself, without Accelerate's (DDP) and torch.compile's wrappers."""
        model = self.accelerator.unwrap_model(self.model)
        return getattr(model, "_orig_mod", model)

    def _model_state(self) -> dict:
        return cpu_tensors(self.unwrapped_model().state_dict())

    def save(self) -> None:
        """Everything needed to resume exactly, atomically; never a non-finite model."""
        self.accelerator.wait_for_everyone()
        self.saved_step = self.step
        if not self.accelerator.is_main_process:
            return
        scaler = self.accelerator.scaler
        model = self._model_state()
        self._check_finite(model, f"writing {self.last_path}")
        atomic_save({
            "model": model,
            "meta": self._weights_metadata(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "rng": rng_state(),
            "step": self.step,
            "best": self.best,
            "elapsed": self.elapsed,
            "nonfinite_skipped": self.nonfinite_skipped,
            "config": OmegaConf.to_yaml(self.cfg),
            **({"ema": cpu_tensors(self.ema.module.state_dict())} if self.ema is not None else {}),
        }, self.last_path)

    def _weights_metadata(self) -> dict[str, str]:
        """What every weights file of this run says it is, with what produced it."""
        return {**self.task.weights_metadata(self.unwrapped_model()), "run": str(self.cfg.get("name", ""))}

    def _check_finite(self, state: dict, doing: str) -> None:
        """The divergence guard's last line: a non-finite weight is never written anywhere."""
        bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise TrainingDiverged(
                f"training diverged: non-finite weights ({', '.join(bad[:5])}) at iteration "
                f"{self.step}; stopped before {doing}. {self._last_good()}")

    def _last_good(self) -> str:
        if self.saved_step is None and not self.last_path.exists():
            return "No checkpoint had been saved yet."
        return f"The last good checkpoint is kept: {self.last_path}."

    def resume(self) -> None:
        """`resume=auto` continues from `last` if there is one; a path resumes from that file."""
        choice = str(self.cfg.resume)
        path = self.last_path if choice == "auto" else None if choice in ("none", "") else Path(choice)
        if path is None:
            if self.last_path.exists():
                raise FileExistsError(
                    f"{self.last_path} exists and resume=none would overwrite that run; "
                    f"pass resume=auto to continue it or choose another output_dir"
                )
            return
        if not path.exists():
            if choice == "auto":
                return
            raise FileNotFoundError(f"resume checkpoint not found: {path}")
        state = load_checkpoint(path)
        changes = trajectory_changes(state["config"], self.cfg) if "config" in state else {}
        check_changes(changes, self.cfg, path)
        self.unwrapped_model().load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if changes:  # allowed: the new values apply from here on
            apply_optimizer_settings(self.optimizer, self.scheduler, self.cfg, self.lr)
            self._events.append({"iteration": state["step"], "event": "resume_changes",
                                 "changes": {k: [old, new] for k, (old, new) in changes.items()}})
        if state["scaler"] is not None and self.accelerator.scaler is not None:
            self.accelerator.scaler.load_state_dict(state["scaler"])
        if self.ema is not None:  # a checkpoint without one (EMA switched on): start from here
            self.ema.module.load_state_dict(state.get("ema", self.unwrapped_model().state_dict()))
        set_rng_state(state["rng"])
        self.step, self.best, self.elapsed = state["step"], state["best"], state.get("elapsed", 0.0)
        self.saved_step, self.nonfinite_skipped = self.step, state.get("nonfinite_skipped", 0)
        log.info(f"resumed from {path} at iteration {self.step}")

    def finish(self, evaluation: Evaluation | None) -> None:
        """The outputs of a finished run: final.safetensors (the whole model), backbone.safetensors
        (where the task's model is a backbone), eval/ (the last evaluation), then done.json."""
        if not self.accelerator.is_main_process:
            return
        which = self._better(evaluation.metrics) if evaluation is not None else "model"
        net = self._weights(which)
        model = cpu_tensors(net.state_dict())
        self._check_finite(model, "writing final.safetensors")
        meta = {**self._weights_metadata(), "weights": which}
        save_weights(net, self.out / "final.safetensors", description=meta, state=model)
        backbone = self.task.backbone_state(net)
        if backbone is not None:
            save_weights(net, self.out / "backbone.safetensors", description=meta, state=backbone)
        if evaluation is not None:
            chosen = self._ema_evaluation if which == "ema" else evaluation
            self._save_evaluation(Evaluation(evaluation.metrics, chosen.predictions, chosen.details), which)
        done = {"iteration": self.step, "metrics": evaluation.metrics if evaluation else {}}
        atomic_write_text(self.out / DONE_FILE, json.dumps(done, indent=2))

    def _save_evaluation(self, evaluation: Evaluation, which: str) -> None:
        """eval/: the task's files for the chosen weights; metrics.json says which they are."""
        path = self.task.save_evaluation(evaluation, self.out / "eval")
        if self.ema is not None:
            summary = json.loads(path.read_text())
            atomic_write_text(path, json.dumps({**summary, "weights": which}, indent=2))

    # ---- the loop ----------------------------------------------------------------------------
    def evaluate(self) -> Evaluation | None:
        """The model's evaluation; with an EMA, its metrics beside as ema_<metric>."""
        if self.val_loader is None:
            return None
        self.model.eval()
        with torch.no_grad(), self.accelerator.autocast():
            evaluation = self.task.evaluate(self.model, self.val_loader, self.accelerator)
            if self.ema is not None:
                self._ema_evaluation = self.task.evaluate(self.ema.module, self.val_loader, self.accelerator)
                evaluation.metrics.update({f"ema_{k}": v for k, v in self._ema_evaluation.metrics.items()})
        self.model.train()
        return evaluation

    def _weights(self, which: str) -> nn.Module:
        """The model ("model") or its moving average ("ema")."""
        return self.ema.module if which == "ema" else self.unwrapped_model()

    def _score(self, metrics: dict, prefix: str = "") -> float:
        """Lower is better; NaN (never the best) where the metric is missing."""
        value = metrics.get(prefix + (self.task.best_metric or ""), math.nan)
        return -value if self.task.best_higher else value

    def _better(self, metrics: dict) -> str:
        """"ema" when the EMA's weights score better than the model's, else "model"."""
        return "ema" if self.ema is not None and self._score(metrics, "ema_") < self._score(metrics) \
            else "model"

    def _evaluate_lost_final(self) -> Evaluation | None:
        """A run stopped after its last step was saved but before done.json (a signal during the
        final evaluation, a kill) resumes here with nothing left to train: its final evaluation is
        made again from the saved weights, logged only if the stop came before it was."""
        evaluation = self.evaluate()
        if evaluation is not None and self.accelerator.is_main_process and not self._evaluated_at(self.step):
            self._after_eval(evaluation.metrics, self.step / self.iters_per_epoch)
        return evaluation

    def _final_evaluation_lost(self) -> bool:
        """No done.json, as the main process sees it (every process evaluates, or none)."""
        lost = not (self.out / DONE_FILE).exists()
        if self.accelerator.num_processes > 1:
            lost = broadcast_object_list([lost], from_process=0)[0]
        return lost

    def _evaluated_at(self, step: int) -> bool:
        """Whether metrics.jsonl holds an evaluation record of `step`."""
        if not (self.out / "metrics.jsonl").is_file():
            return False
        return any(r.get("iteration") == step and any(k.startswith("val_") for k in r)
                   for r in read_metrics(self.out, drop_partial_last=True))

    def _after_eval(self, metrics: dict, epoch: float) -> None:
        self.logger.log({"iteration": self.step, "epoch": epoch, "elapsed_s": self.elapsed, **metrics})
        key = self.task.best_metric
        if key not in metrics:
            return
        which = self._better(metrics)
        prefix = "ema_" if which == "ema" else ""
        score = self._score(metrics, prefix)
        if score < self.best:  # False for NaN: a non-finite metric is never the best
            self.best = score
            if self.accelerator.is_main_process:
                model = cpu_tensors(self._weights(which).state_dict())
                self._check_finite(model, "writing best.pth")
                atomic_save({"model": model, "meta": {**self._weights_metadata(), "weights": which},
                             "step": self.step, key: metrics[prefix + key], "weights": which},
                            self.out / "checkpoints" / "best.pth")

    def _observe_plateau(self, evaluation: Evaluation | None) -> None:
        """`schedule.kind=plateau` watches the task's best metric; every process takes the main
        process's value, so their learning rates stay equal."""
        if not isinstance(self.scheduler, PlateauLR):
            return
        key = self.task.best_metric
        value = evaluation.metrics.get(key, math.nan) if evaluation is not None else math.nan
        if self.accelerator.num_processes > 1:
            value = broadcast_object_list([value], from_process=0)[0]
        self.scheduler.observe(-value if self.task.best_higher else value)

    def _report_skipped(self, skipped: list, epoch: int) -> None:
        skipped = gather_object(skipped) if self.accelerator.num_processes > 1 else skipped
        if skipped and self.accelerator.is_main_process:
            shown = ", ".join(map(str, skipped[:10])) + (" ..." if len(skipped) > 10 else "")
            log.warning(f"epoch {epoch}: skipped {len(skipped)} unreadable samples: {shown}")
            self.logger.log({"iteration": self.step, "epoch": epoch, "skipped": len(skipped),
                             "skipped_files": [str(s) for s in skipped]})

    def fit(self) -> dict:
        """Train to `schedule.total` (or `train.stop_at`), evaluating and checkpointing on the way.

        One process writes a run folder at a time (a lock); a signal stops at the next step
        boundary, saved (KeyboardInterrupt); a non-finite step stops with TrainingDiverged, the
        last good checkpoint untouched; a lost process stops the others with ProcessLost."""
        acc = self.accelerator
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
                                   self.cfg.train.dist_timeout_s, self._last_good()) from error
            raise
        finally:
            if lock:
                lock.release()

    def _fit(self) -> dict:
        t, acc = self.cfg.train, self.accelerator
        self.resume()
        if acc.is_main_process:
            save_config(self.cfg, self.out / "config.yaml")
            truncate_after(self.out, self.step)
        self.logger = MetricsLogger(self.out, enabled=acc.is_main_process)
        for event in self._events:
            self.logger.log(event)
        for split, dataset in (("train", self.train_set), ("val", self.val_set)):
            if getattr(dataset, SKIPPED_FILES, None):  # dropped by the check before training
                self.logger.log({"iteration": self.step, "event": "skipped_before_training",
                                 "split": split, "skipped": len(dataset.skipped_files),
                                 "skipped_files": dataset.skipped_files})
        stop = min(self.total, t.stop_at) if t.stop_at else self.total
        bar = tqdm(total=self.total, initial=self.step, disable=not acc.is_main_process,
                   desc=self.cfg.get("name", "train"), dynamic_ncols=True)
        self._window, self._window_seconds, self._evaluated = {}, 0.0, False
        evaluation = None
        self.model.train()
        try:
            with StopRequests() as requests:
                while self.step < stop:
                    evaluation = self._epoch(stop, bar, requests, evaluation)
                if self.step >= self.total and evaluation is None and self._final_evaluation_lost():
                    evaluation = self._evaluate_lost_final()
        except StopRequested:
            raise
        except KeyboardInterrupt:
            log.warning(f"stopped at once, mid-step: nothing saved since iteration {self.saved_step} "
                      f"({self.last_path})")
            raise
        finally:
            bar.close()
            self.logger.close()
        if self.step >= self.total and (evaluation is not None or not (self.out / DONE_FILE).exists()):
            self.finish(evaluation)  # not again for a finished run merely restarted
        acc.wait_for_everyone()
        return evaluation.metrics if evaluation is not None else {}

    def _epoch(self, stop: int, bar, requests: StopRequests, evaluation):
        """Train from the current step to the end of its epoch (or `stop`)."""
        t, acc = self.cfg.train, self.accelerator
        epoch = self.step // self.iters_per_epoch
        skip = (self.step % self.iters_per_epoch) * t.grad_accum
        if self.resident:
            self.train_loader.set_epoch(epoch)
            loader = self.train_loader.batches(skip)
        else:
            loader = acc.skip_first_batches(self.train_loader, skip) if skip else self.train_loader
            # Accelerate re-applies the loader's epoch at each pass but cannot always reach our
            # sampler and dataset through its wrappers: set all three.
            loader.set_epoch(epoch)
            self.sampler.set_epoch(epoch)
            if hasattr(self.train_set, "set_epoch"):
                self.train_set.set_epoch(epoch)  # seeds the augmentation
        skipped, last_tick, bad, micro = [], time.perf_counter(), None, 0
        for batch in loader:
            skipped += batch.pop(SKIPPED, [])
            if not batch:  # nothing in it could be read
                continue
            if self.cfg.train.nonfinite_skips and micro == 0:
                self._keep_buffers()
            micro += 1
            looking = self._looks_at(self.step + 1, stop)
            with acc.accumulate(self.model):
                with acc.autocast():
                    loss, stats = self.task.train_step(self.model, batch)
                acc.backward(loss)  # every process, whatever its loss: DDP reduces gradients together
                unseen = self._unseen_nonfinite(loss, looking)
                finite = not looking or (bool(torch.isfinite(loss.detach())) and not unseen)
                bad = bad or (None if finite else "loss")
                if finite:
                    self._add_to_window(stats)
                if acc.sync_gradients:
                    stopping = False
                    if looking:
                        bad, stopping = self._any_process(bad or self._gradient_problem(),
                                                          requests.signum is not None)
                    elif self.cfg.train.clip_grad.norm > 0:
                        self._clip()
                    if bad:
                        self._skip_nonfinite(bad, unseen)
                    else:
                        self.optimizer.step()
                    self.optimizer.zero_grad(set_to_none=True)
            if not acc.sync_gradients:
                continue
            bad, micro = None, 0
            self.scheduler.step()
            self.step += 1
            if self.ema is not None and self.step % t.ema.every == 0:
                self.ema.update(self.unwrapped_model(), step=self.step)
            bar.update(1)
            self._window_seconds += time.perf_counter() - last_tick  # loading + compute
            evaluation = self._after_step(stop, bar, evaluation)
            now = time.perf_counter()
            self.elapsed, last_tick = self.elapsed + now - last_tick, now
            if stopping:
                self._stop_here(requests.signum)
            if self.step >= stop:
                break
        self._report_skipped(skipped, epoch)
        return evaluation

    def _looks_at(self, step: int, stop: int) -> bool:
        """Whether the divergence guard (and the processes' agreement on a stop) waits for the
        device at `step`: every `train.check_finite_every` iterations, and at every step after
        which something is logged, evaluated or saved."""
        t = self.cfg.train
        return (t.check_finite_every <= 1 or step % t.check_finite_every == 0 or step >= stop
                or step % t.log_every == 0 or step % t.ckpt_every == 0 or step % self.iters_per_epoch == 0
                or bool(t.eval_every and step % t.eval_every == 0) or step >= self.total)

    def _unseen_nonfinite(self, loss, looking: bool) -> bool:
        """Between looks a device flag gathers the losses' finiteness without waiting for them; at
        a look, True when a step since the last look was not finite."""
        if self.cfg.train.check_finite_every <= 1:
            return False
        flag = ~torch.isfinite(loss.detach())
        if not looking:
            self._pending = flag if self._pending is None else self._pending | flag
            return False
        pending, self._pending = self._pending, None
        return pending is not None and bool(pending)

    def _add_to_window(self, stats: dict) -> None:
        """Sum the task's statistics: tensors on the device, plain numbers on the host (a number
        copied to a GPU each step would wait for it)."""
        for key, value in stats.items():
            value = value.detach().float() if torch.is_tensor(value) else value
            self._window[key] = self._window.get(key, 0) + value

    def _clip(self) -> None:
        params = [p for p in self.model.parameters() if p.grad is not None]
        self.accelerator.clip_grad_norm_(params, self.cfg.train.clip_grad.norm)

    def _gradient_problem(self) -> str | None:
        """Clip the gradients to `train.clip_grad.norm` (Accelerate's, right under DDP and mixed
        precision) and say "gradient" when their global norm is not finite: one norm serves both
        (fp16's GradScaler skips non-finite steps itself)."""
        params = [p for p in self.model.parameters() if p.grad is not None]
        if self.cfg.train.clip_grad.norm > 0:
            norm = self.accelerator.clip_grad_norm_(params, self.cfg.train.clip_grad.norm)
        elif params and self.accelerator.scaler is None:
            norm = torch.linalg.vector_norm(torch.stack([p.grad.detach().norm() for p in params]))
        else:
            return None
        return "gradient" if self.accelerator.scaler is None and not torch.isfinite(norm) else None

    def _any_process(self, bad: str | None, stopping: bool) -> tuple[str | None, bool]:
        """What one process found holds for all, so they skip, diverge or stop together."""
        if self.accelerator.num_processes == 1:
            return bad, stopping
        flags = torch.tensor([bad is not None, stopping], dtype=torch.float32, device=self.accelerator.device)
        flags = self.accelerator.reduce(flags, "max").tolist()
        return (bad or "loss or gradient (on another process)") if flags[0] else None, bool(flags[1])

    def _keep_buffers(self) -> None:
        """BN statistics before this step's forward passes, to restore if the step is skipped."""
        self._buffers = [(b, b.detach().clone()) for b in self.model.buffers() if b.is_floating_point()]

    def _skip_nonfinite(self, what: str, unseen: bool = False) -> None:
        """Skip this step's update (and undo its BN statistics), or stop if `train.nonfinite_skips`
        are used up or the step was not looked at in time (`unseen`: already applied)."""
        every = self.cfg.train.check_finite_every
        if unseen:
            raise TrainingDiverged(
                f"training diverged: a non-finite loss in the {every} iterations before "
                f"{self.step + 1} (train.check_finite_every={every}), nothing saved since. "
                f"{self._last_good()} Lower optim.lr, or look every step (train.check_finite_every=1).")
        self.nonfinite_skipped += 1
        allowed = self.cfg.train.nonfinite_skips
        if self.nonfinite_skipped > allowed:
            raise TrainingDiverged(
                f"training diverged: non-finite {what} at iteration {self.step + 1} (the update was "
                f"not applied). {self._last_good()} Lower optim.lr, or let a few such steps be "
                f"skipped with train.nonfinite_skips=N (now {allowed}).")
        with torch.no_grad():
            for buffer, kept in self._buffers:
                buffer.copy_(kept)
        self.logger.log({"iteration": self.step + 1, "event": "nonfinite_step_skipped", "what": what,
                         "skipped_so_far": self.nonfinite_skipped})

    def _stop_here(self, signum: int) -> None:
        if self.saved_step != self.step:
            self.save()
        log.info(f"interrupted at iteration {self.step} (signal {signum}); saved "
                               f"{self.last_path}; resume=auto continues exactly from here")
        raise StopRequested(f"signal {signum}")

    def _after_step(self, stop: int, bar, evaluation):
        """Log, evaluate and checkpoint when their cadence says so. A checkpoint precedes the first
        evaluation; an evaluation that fails saves the training done before it raises."""
        t = self.cfg.train
        if self.step % t.log_every == 0 or self.step == stop:
            self._window = self._log_window(self._window, self._window_seconds, bar)
            self._window_seconds = 0.0
        end_of_epoch = self.step % self.iters_per_epoch == 0
        if (t.eval_every and self.step % t.eval_every == 0) or (
                not t.eval_every and end_of_epoch) or self.step == self.total:
            if not self._evaluated and self.saved_step != self.step:
                self.save()
            try:
                evaluation = self.evaluate()
            except Exception:
                if self.saved_step != self.step:
                    self.save()
                raise
            self._evaluated = True
            if evaluation is not None:
                self._after_eval(evaluation.metrics, self.step / self.iters_per_epoch)
            self._observe_plateau(evaluation)
        elif self.step == stop:  # saved before this evaluation, which changes nothing a checkpoint holds
            return self._evaluate_at_stop()
        if self.step % t.ckpt_every == 0 or end_of_epoch or self.step == stop:
            self.save()
        return evaluation

    def _evaluate_at_stop(self) -> Evaluation | None:
        """`train.stop_at` before the schedule's end: saved, then evaluated and logged; the random
        state is put back and neither the best weights nor a plateau schedule see this evaluation,
        so resuming continues exactly as the uninterrupted run."""
        if self.saved_step != self.step:
            self.save()
        state = rng_state()
        evaluation = self.evaluate()
        set_rng_state(state)
        if evaluation is not None:
            self.logger.log({"iteration": self.step, "epoch": self.step / self.iters_per_epoch,
                             "elapsed_s": self.elapsed, "stop_at": True, **evaluation.metrics})
        return evaluation

    def _log_window(self, window: dict, seconds: float, bar) -> dict:
        """Log per-sample means of the task's sums over the window (all processes), then reset."""
        keys = sorted(window)
        device = self.accelerator.device
        values = [torch.as_tensor(window[k], dtype=torch.float32, device=device) for k in keys]
        totals = self.accelerator.reduce(torch.stack(values), "sum").tolist()
        sums = dict(zip(keys, totals))
        samples = sums.pop("samples", 0)
        if samples:
            record = {"iteration": self.step, "epoch": self.step / self.iters_per_epoch,
                      "lr": self.scheduler.get_last_lr()[0]}
            record.update({f"train_{key}": value / samples for key, value in sums.items()})
            record.update({"images_per_s": samples / max(seconds, 1e-9), "elapsed_s": self.elapsed,
                           "processes": self.accelerator.num_processes, "precision": self.precision})
            self.logger.log(record)
            bar.set_postfix({k[6:]: f"{v:.3f}" for k, v in record.items() if k.startswith("train_")})
        return {}


class StopRequested(KeyboardInterrupt):
    """A signal stopped training at a step boundary, after saving."""


