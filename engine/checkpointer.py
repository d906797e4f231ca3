"""Checkpoints of a run: `checkpoints/last.pth` (everything to resume exactly, written atomically
on the `train.ckpt_every` cadence, at every epoch's end and at a stop), resuming from it, and the
outputs of a finished run (final.safetensors, backbone.safetensors, eval/, done.json)."""

import json
import logging
from pathlib import Path

import torch
from omegaconf import OmegaConf

from backbones import save_weights
from backbones.metadata import FORMAT as WEIGHTS_FORMAT

from .checkpoint import atomic_save, atomic_write_text, cpu_tensors, load_checkpoint, rng_state, set_rng_state
from .errors import TrainingDiverged
from .hooks import HookBase
from .resume import apply_optimizer_settings, check_changes, trajectory_changes
from .task import Evaluation

log = logging.getLogger("engine")

DONE_FILE = "done.json"  # written last by a finished run: what experiments test for


def check_finite(state: dict, step: int, doing: str, last_good: str) -> None:
    """The divergence guard's last line: a non-finite weight is never written anywhere."""
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise TrainingDiverged(
            f"training diverged: non-finite weights ({', '.join(bad[:5])}) at iteration "
            f"{step}; stopped before {doing}. {last_good}")


class Checkpointer(HookBase):
    def __init__(self, out: Path):
        self.out = out
        self.saved_step = None  # the step of the checkpoint on disk, None before the first

    @property
    def last_path(self) -> Path:
        return self.out / "checkpoints" / "last.pth"

    def after_step(self) -> None:
        """Saved on the cadence, at an epoch's end and at the stop; a stop evaluated by
        `EvalHook` has been saved already (the evaluation changed nothing a checkpoint holds)."""
        tr, t = self.trainer, self.trainer.cfg.train
        due = tr.step % t.ckpt_every == 0 or tr.step % tr.iters_per_epoch == 0 or tr.step == tr.stop
        if due and (self.saved_step != tr.step or tr.evaluator.evaluated_step == tr.step):
            self.save()

    def save(self) -> None:
        """Everything needed to resume exactly, atomically; never a non-finite model."""
        tr = self.trainer
        tr.accelerator.wait_for_everyone()
        self.saved_step = tr.step
        if not tr.accelerator.is_main_process:
            return
        scaler = tr.accelerator.scaler
        model = cpu_tensors(tr.unwrapped_model().state_dict())
        self.check_finite(model, f"writing {self.last_path}")
        atomic_save({
            "model": model,
            "meta": self.weights_metadata(),
            "optimizer": tr.optimizer.state_dict(),
            "scheduler": tr.scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "rng": rng_state(),
            "step": tr.step,
            "best": tr.evaluator.best,
            "elapsed": tr.elapsed,
            "nonfinite_skipped": tr.guard.skipped,
            "config": OmegaConf.to_yaml(tr.cfg),
            **({"ema": cpu_tensors(tr.ema.module.state_dict())} if tr.ema is not None else {}),
        }, self.last_path)

    def weights_metadata(self) -> dict[str, str]:
        """What every weights file of this run says it is: the task's description (backbone,
        options, input), the class names and the run's config (its test transform with it)."""
        tr = self.trainer
        meta = {"format": WEIGHTS_FORMAT, "task": str(tr.cfg.task),
                **tr.task.weights_metadata(tr.unwrapped_model()), "run": str(tr.cfg.get("name", "")),
                "config": OmegaConf.to_yaml(tr.cfg)}
        if tr.task.categories:
            meta["categories"] = json.dumps(list(tr.task.categories))
        return meta

    def check_finite(self, state: dict, doing: str) -> None:
        check_finite(state, self.trainer.step, doing, self.last_good())

    def last_good(self) -> str:
        if self.saved_step is None and not self.last_path.exists():
            return "No checkpoint had been saved yet."
        return f"The last good checkpoint is kept: {self.last_path}."

    def resume(self) -> list[dict]:
        """`resume=auto` continues from `last` if there is one; a path resumes from that file.
        Returns the events to log (settings changed at the resume)."""
        tr = self.trainer
        choice = str(tr.cfg.resume)
        path = self.last_path if choice == "auto" else None if choice in ("none", "") else Path(choice)
        if path is None:
            if self.last_path.exists():
                raise FileExistsError(
                    f"{self.last_path} exists and resume=none would overwrite that run; "
                    f"pass resume=auto to continue it or choose another output_dir")
            return []
        if not path.exists():
            if choice == "auto":
                return []
            raise FileNotFoundError(f"resume checkpoint not found: {path}")
        state = load_checkpoint(path)
        changes = trajectory_changes(state["config"], tr.cfg) if "config" in state else {}
        check_changes(changes, tr.cfg, path)
        tr.unwrapped_model().load_state_dict(state["model"])
        tr.optimizer.load_state_dict(state["optimizer"])
        tr.scheduler.load_state_dict(state["scheduler"])
        events = []
        if changes:  # allowed: the new values apply from here on
            apply_optimizer_settings(tr.optimizer, tr.scheduler, tr.cfg, tr.lr)
            events.append({"iteration": state["step"], "event": "resume_changes",
                           "changes": {k: [old, new] for k, (old, new) in changes.items()}})
        if state["scaler"] is not None and tr.accelerator.scaler is not None:
            tr.accelerator.scaler.load_state_dict(state["scaler"])
        if tr.ema is not None:  # a checkpoint without one (EMA switched on): start from here
            tr.ema.module.load_state_dict(state.get("ema", tr.unwrapped_model().state_dict()))
        set_rng_state(state["rng"])
        tr.step, tr.evaluator.best, tr.elapsed = state["step"], state["best"], state.get("elapsed", 0.0)
        self.saved_step, tr.guard.skipped = tr.step, state.get("nonfinite_skipped", 0)
        log.info(f"resumed from {path} at iteration {tr.step}")
        return events

    def finish(self, evaluation: Evaluation | None) -> None:
        """The outputs of a finished run: final.safetensors (the whole model), backbone.safetensors
        (where the task's model is a backbone), eval/ (the last evaluation), then done.json."""
        tr = self.trainer
        if not tr.accelerator.is_main_process:
            return
        evaluator = tr.evaluator
        which = evaluator.better(evaluation.metrics) if evaluation is not None else "model"
        net = evaluator.weights(which)
        model = cpu_tensors(net.state_dict())
        self.check_finite(model, "writing final.safetensors")
        meta = {**self.weights_metadata(), "weights": which}
        save_weights(net, self.out / "final.safetensors", description=meta, state=model)
        backbone = tr.task.backbone_state(net)
        if backbone is not None:
            save_weights(net, self.out / "backbone.safetensors", description=meta, state=backbone)
        if evaluation is not None:
            self._save_evaluation(evaluator.chosen(evaluation, which), which)
        done = {"iteration": tr.step, "metrics": evaluation.metrics if evaluation else {}}
        atomic_write_text(self.out / DONE_FILE, json.dumps(done, indent=2))

    def _save_evaluation(self, evaluation: Evaluation, which: str) -> None:
        """eval/: the task's files for the chosen weights; metrics.json says the run's task and
        name (tools/compare.py groups by them) and, with an EMA, which weights they are."""
        tr = self.trainer
        path = tr.task.save_evaluation(evaluation, self.out / "eval")
        summary = {"task": str(tr.cfg.task), "name": str(tr.cfg.get("name", "")),
                   **json.loads(path.read_text())}
        atomic_write_text(path, json.dumps({**summary, **({"weights": which} if tr.ema else {})}, indent=2))
