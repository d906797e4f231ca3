"""Evaluation during training (detectron2's `EvalHook`): on the `train.eval_every` cadence (or every
epoch's end) and at the last step; the best weights kept (`checkpoints/best.pth`), the model's or
its EMA's, whichever scores better; a plateau schedule fed the score; a `train.stop_at` stop
evaluated without changing the run; a final evaluation lost to a stop before done.json made
again."""

import math

import torch
from accelerate.utils import broadcast_object_list
from torch import nn

from .checkpoint import atomic_save, cpu_tensors, rng_state, set_rng_state
from .checkpointer import DONE_FILE
from .hooks import HookBase
from .metrics import read_metrics
from .schedule import PlateauLR
from .task import Evaluation


class EvalHook(HookBase):
    def __init__(self):
        self.best = math.inf  # the best score so far (lower is better: `_score`)
        self.evaluation: Evaluation | None = None  # the last one, for the run's final outputs
        self.evaluated_step = None  # the step of the last evaluation on the cadence
        self._ema_evaluation = None  # the EMA's side of the last evaluation

    def after_step(self) -> None:
        """An evaluation that fails saves the training done before it raises; the first one
        of this process comes after a checkpoint."""
        tr, t = self.trainer, self.trainer.cfg.train
        checkpointer = tr.checkpointer
        if (t.eval_every and tr.step % t.eval_every == 0) or (
                not t.eval_every and tr.step % tr.iters_per_epoch == 0) or tr.step == tr.total:
            if self.evaluated_step is None and checkpointer.saved_step != tr.step:
                checkpointer.save()
            try:
                self.evaluation = self.evaluate()
            except Exception:
                if checkpointer.saved_step != tr.step:
                    checkpointer.save()
                raise
            self.evaluated_step = tr.step
            if self.evaluation is not None:
                self._log_and_keep_best(self.evaluation.metrics)
            self._observe_plateau(self.evaluation)
        elif tr.step == tr.stop:
            self.evaluation = self._evaluate_at_stop()

    def evaluate(self) -> Evaluation | None:
        """The model's evaluation; with an EMA, its metrics beside as ema_<metric>."""
        tr = self.trainer
        if tr.val_loader is None:
            return None
        tr.model.eval()
        with torch.no_grad(), tr.accelerator.autocast():
            evaluation = tr.task.evaluate(tr.model, tr.val_loader, tr.accelerator)
            if tr.ema is not None:
                self._ema_evaluation = tr.task.evaluate(tr.ema.module, tr.val_loader, tr.accelerator)
                evaluation.metrics.update({f"ema_{k}": v for k, v in self._ema_evaluation.metrics.items()})
        tr.model.train()
        return evaluation

    def weights(self, which: str) -> nn.Module:
        """The model ("model") or its moving average ("ema")."""
        return self.trainer.ema.module if which == "ema" else self.trainer.unwrapped_model()

    def better(self, metrics: dict) -> str:
        """"ema" when the EMA's weights score better than the model's, else "model"."""
        ema = self.trainer.ema is not None and self._score(metrics, "ema_") < self._score(metrics)
        return "ema" if ema else "model"

    def chosen(self, evaluation: Evaluation, which: str) -> Evaluation:
        """The evaluation's metrics with the predictions and details of the weights `which`."""
        side = self._ema_evaluation if which == "ema" else evaluation
        return Evaluation(evaluation.metrics, side.predictions, side.details)

    def recover_final(self) -> None:
        """A run stopped after its last step was saved but before done.json (a signal during the
        final evaluation, a kill) resumes with nothing left to train: its final evaluation is
        made again from the saved weights, logged only if the stop came before it was."""
        tr = self.trainer
        if tr.step < tr.total or self.evaluation is not None or not self._final_evaluation_lost():
            return
        self.evaluation = self.evaluate()
        if self.evaluation is not None and tr.accelerator.is_main_process and not self._logged_at(tr.step):
            self._log_and_keep_best(self.evaluation.metrics)

    def _score(self, metrics: dict, prefix: str = "") -> float:
        """Lower is better; NaN (never the best) where the metric is missing."""
        task = self.trainer.task
        value = metrics.get(prefix + (task.best_metric or ""), math.nan)
        return -value if task.best_higher else value

    def _evaluate_at_stop(self) -> Evaluation | None:
        """`train.stop_at` before the schedule's end: saved, then evaluated and logged; the random
        state is put back and neither the best weights nor a plateau schedule see this evaluation,
        so resuming continues exactly as the uninterrupted run."""
        tr = self.trainer
        if tr.checkpointer.saved_step != tr.step:
            tr.checkpointer.save()
        state = rng_state()
        evaluation = self.evaluate()
        set_rng_state(state)
        if evaluation is not None:
            tr.logger.log({"iteration": tr.step, "epoch": tr.step / tr.iters_per_epoch,
                           "elapsed_s": tr.elapsed, "stop_at": True, **evaluation.metrics})
        return evaluation

    def _final_evaluation_lost(self) -> bool:
        """No done.json, as the main process sees it (every process evaluates, or none)."""
        tr = self.trainer
        lost = not (tr.out / DONE_FILE).exists()
        if tr.accelerator.num_processes > 1:
            lost = broadcast_object_list([lost], from_process=0)[0]
        return lost

    def _logged_at(self, step: int) -> bool:
        """Whether metrics.jsonl holds an evaluation record of `step`."""
        out = self.trainer.out
        if not (out / "metrics.jsonl").is_file():
            return False
        return any(r.get("iteration") == step and any(k.startswith("val_") for k in r)
                   for r in read_metrics(out, drop_partial_last=True))

    def _log_and_keep_best(self, metrics: dict) -> None:
        tr = self.trainer
        tr.logger.log({"iteration": tr.step, "epoch": tr.step / tr.iters_per_epoch,
                       "elapsed_s": tr.elapsed, **metrics})
        key = tr.task.best_metric
        if key not in metrics:
            return
        which = self.better(metrics)
        prefix = "ema_" if which == "ema" else ""
        score = self._score(metrics, prefix)
        if score < self.best:  # False for NaN: a non-finite metric is never the best
            self.best = score
            if tr.accelerator.is_main_process:
                model = cpu_tensors(self.weights(which).state_dict())
                tr.checkpointer.check_finite(model, "writing best.pth")
                atomic_save({"model": model, "meta": {**tr.checkpointer.weights_metadata(), "weights": which},
                             "step": tr.step, key: metrics[prefix + key], "weights": which},
                            tr.out / "checkpoints" / "best.pth")

    def _observe_plateau(self, evaluation: Evaluation | None) -> None:
        """`schedule.kind=plateau` watches the task's best metric; every process takes the main
        process's value, so their learning rates stay equal."""
        tr = self.trainer
        if not isinstance(tr.scheduler, PlateauLR):
            return
        key = tr.task.best_metric
        value = evaluation.metrics.get(key, math.nan) if evaluation is not None else math.nan
        if tr.accelerator.num_processes > 1:
            value = broadcast_object_list([value], from_process=0)[0]
        tr.scheduler.observe(-value if tr.task.best_higher else value)
