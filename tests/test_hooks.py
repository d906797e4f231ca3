"""The trainer's parts, each alone (engine.window, eval_hook, checkpointer, guard, sources), on a
stand-in trainer: what they decide, without a training run (tests/test_pretrain.py and
test_reliability.py train through all of them)."""

import math
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from engine.checkpointer import Checkpointer
from engine.config import TrainConfig
from engine.eval_hook import EvalHook
from engine.guard import DivergenceGuard
from engine.sources import DeviceResidentSet, EpochSeeded
from engine.window import MetricWindow


class Logger:
    def __init__(self):
        self.records = []

    def log(self, record):
        self.records.append(record)


class OneProcess:
    num_processes, is_main_process, device = 1, True, torch.device("cpu")

    def reduce(self, tensor, op):
        return tensor


def trainer(**train):
    """A stand-in trainer: 10 iterations an epoch, 35 in all, stopping at 30."""
    cfg = OmegaConf.create({"train": OmegaConf.structured(TrainConfig(**train))})
    return SimpleNamespace(cfg=cfg, step=0, iters_per_epoch=10, total=35, stop=30, elapsed=0.0,
                           accelerator=OneProcess(), logger=Logger(), precision="fp32",
                           bar=SimpleNamespace(set_postfix=print),
                           scheduler=SimpleNamespace(get_last_lr=lambda: [0.1]))


def test_the_window_logs_per_sample_means_of_applied_steps_only():
    tr, window = trainer(log_every=2), MetricWindow()
    window.trainer = tr
    for loss, applied in ((4.0, True), (100.0, False), (2.0, True)):
        window.add({"loss": torch.tensor(loss * 2), "samples": 2})
        window.step_done(applied)
    tr.step = 2
    window.after_step()
    (record,) = tr.logger.records
    assert record["train_loss"] == pytest.approx(3.0) and record["iteration"] == 2  # (8 + 4) / 4
    window.add({"loss": torch.tensor(float("nan")), "samples": 2})
    window.step_done(applied=False)  # a whole window of skipped steps
    tr.step = 4
    window.after_step()
    assert len(tr.logger.records) == 1 and window.sums == {}


def test_checkpoints_come_on_the_cadence_at_each_epochs_end_and_at_the_stop():
    tr = trainer(ckpt_every=4)
    tr.evaluator = SimpleNamespace(evaluated_step=None)
    checkpointer, saved = Checkpointer(None), []
    checkpointer.trainer = tr
    checkpointer.save = lambda: saved.append(tr.step) or setattr(checkpointer, "saved_step", tr.step)
    for tr.step in range(1, 31):
        checkpointer.after_step()
    assert saved == [4, 8, 10, 12, 16, 20, 24, 28, 30]


def test_a_stop_saved_by_its_evaluation_is_not_saved_twice_but_an_evaluation_step_is():
    tr = trainer(ckpt_every=100)
    tr.evaluator = SimpleNamespace(evaluated_step=None)
    checkpointer, saved = Checkpointer(None), []
    checkpointer.trainer = tr
    checkpointer.save = lambda: saved.append(tr.step)
    tr.step, checkpointer.saved_step = 30, 30  # EvalHook saved before its stop_at evaluation
    checkpointer.after_step()
    tr.evaluator.evaluated_step, tr.step, checkpointer.saved_step = 10, 10, 10  # saved, then evaluated
    checkpointer.after_step()
    assert saved == [10]  # again after the evaluation: the checkpoint holds its best score


def test_the_guard_looks_every_n_steps_and_before_anything_is_written():
    guard = DivergenceGuard(trainer(check_finite_every=4, log_every=5, ckpt_every=100))
    looked = [s for s in range(1, 36) if guard.looks_at(s)]
    assert looked == [4, 5, 8, 10, 12, 15, 16, 20, 24, 25, 28, 30, 31, 32, 33, 34, 35]
    assert all(DivergenceGuard(trainer()).looks_at(s) for s in range(1, 36))


@pytest.mark.parametrize("higher, model, ema, chosen", [
    (True, 0.5, 0.6, "ema"), (True, 0.6, 0.5, "model"), (False, 0.5, 0.6, "model"),
    (True, 0.5, math.nan, "model"), (True, math.nan, 0.5, "model")])
def test_the_ema_is_kept_only_when_it_scores_better(higher, model, ema, chosen):
    hook = EvalHook()
    task = SimpleNamespace(best_metric="val_AP", best_higher=higher)
    hook.trainer = SimpleNamespace(ema=object(), task=task)
    assert hook.better({"val_AP": model, "ema_val_AP": ema}) == chosen


def test_the_data_sources_are_declared_kinds():
    from classification.data import ClassificationDataset
    from classification.resident import ResidentSet

    assert issubclass(ResidentSet, DeviceResidentSet)
    assert not issubclass(ClassificationDataset, DeviceResidentSet)
    assert issubclass(ClassificationDataset, EpochSeeded)
    assert not isinstance(torch.utils.data.TensorDataset(torch.zeros(2)), (DeviceResidentSet, EpochSeeded))
