"""The divergence guard: a step whose loss or gradients are not finite is never applied. It stops
training (TrainingDiverged, the last good checkpoint kept), or skips up to
`train.nonfinite_skips` such steps, undoing their BN statistics. Every `train.check_finite_every`
iterations it waits for the device to look; between looks a device flag gathers what it missed.
On N processes what one finds holds for all, so they skip, diverge or stop together."""

import torch

from .errors import TrainingDiverged


class DivergenceGuard:
    def __init__(self, trainer):
        self.trainer = trainer
        self.skipped = 0  # non-finite steps skipped so far (train.nonfinite_skips)
        self._pending = None  # steps' non-finite flags not looked at yet (train.check_finite_every)
        self._buffers = []

    def looks_at(self, step: int) -> bool:
        """Whether the guard (and the processes' agreement on a stop) waits for the device at
        `step`: every `train.check_finite_every` iterations, and at every step after which
        something is logged, evaluated or saved."""
        tr, t = self.trainer, self.trainer.cfg.train
        return (t.check_finite_every <= 1 or step % t.check_finite_every == 0 or step >= tr.stop
                or step % t.log_every == 0 or step % t.ckpt_every == 0 or step % tr.iters_per_epoch == 0
                or bool(t.eval_every and step % t.eval_every == 0) or step >= tr.total)

    def unseen_nonfinite(self, loss: torch.Tensor, looking: bool) -> bool:
        """Between looks a device flag gathers the losses' finiteness without waiting for them; at
        a look, True when a step since the last look was not finite."""
        if self.trainer.cfg.train.check_finite_every <= 1:
            return False
        flag = ~torch.isfinite(loss.detach())
        if not looking:
            self._pending = flag if self._pending is None else self._pending | flag
            return False
        pending, self._pending = self._pending, None
        return pending is not None and bool(pending)

    def clip(self) -> None:
        tr = self.trainer
        params = [p for p in tr.model.parameters() if p.grad is not None]
        tr.accelerator.clip_grad_norm_(params, tr.cfg.train.clip_grad.norm)

    def gradient_problem(self) -> str | None:
        """Clip the gradients to `train.clip_grad.norm` (Accelerate's, right under DDP and mixed
        precision) and say "gradient" when their global norm is not finite: one norm serves both
        (fp16's GradScaler skips non-finite steps itself)."""
        tr = self.trainer
        params = [p for p in tr.model.parameters() if p.grad is not None]
        if tr.cfg.train.clip_grad.norm > 0:
            norm = tr.accelerator.clip_grad_norm_(params, tr.cfg.train.clip_grad.norm)
        elif params and tr.accelerator.scaler is None:
            norm = torch.linalg.vector_norm(torch.stack([p.grad.detach().norm() for p in params]))
        else:
            return None
        return "gradient" if tr.accelerator.scaler is None and not torch.isfinite(norm) else None

    def agree(self, bad: str | None, stopping: bool) -> tuple[str | None, bool]:
        """What one process found holds for all, so they skip, diverge or stop together."""
        accelerator = self.trainer.accelerator
        if accelerator.num_processes == 1:
            return bad, stopping
        flags = torch.tensor([bad is not None, stopping], dtype=torch.float32, device=accelerator.device)
        flags = accelerator.reduce(flags, "max").tolist()
        return (bad or "loss or gradient (on another process)") if flags[0] else None, bool(flags[1])

    def keep_buffers(self) -> None:
        """The buffers before this step's forward passes (BN statistics and batch counts), to
        restore if the step is skipped."""
        self._buffers = [(b, b.detach().clone()) for b in self.trainer.model.buffers()]

    def skip(self, what: str, unseen: bool = False) -> None:
        """Skip this step's update (and undo its BN statistics), or stop if `train.nonfinite_skips`
        are used up or the step was not looked at in time (`unseen`: already applied)."""
        tr = self.trainer
        every, last_good = tr.cfg.train.check_finite_every, tr.checkpointer.last_good()
        if unseen:
            raise TrainingDiverged(
                f"training diverged: a non-finite loss in the {every} iterations before "
                f"{tr.step + 1} (train.check_finite_every={every}), nothing saved since. "
                f"{last_good} Lower optim.lr, or look every step (train.check_finite_every=1).")
        self.skipped += 1
        allowed = tr.cfg.train.nonfinite_skips
        if self.skipped > allowed:
            raise TrainingDiverged(
                f"training diverged: non-finite {what} at iteration {tr.step + 1} (the update was "
                f"not applied). {last_good} Lower optim.lr, or let a few such steps be "
                f"skipped with train.nonfinite_skips=N (now {allowed}).")
        with torch.no_grad():
            for buffer, kept in self._buffers:
                buffer.copy_(kept)
        tr.logger.log({"iteration": tr.step + 1, "event": "nonfinite_step_skipped", "what": what,
                       "skipped_so_far": self.skipped})
