"""The parts of training other than the step, each called by the loop at fixed points, in the
style of detectron2's `HookBase`: the metric window's writer, evaluation and best-weight keeping,
and periodic checkpoints. The loop (`engine.trainer`) calls every hook's `after_step` in the
order registered, so a hook may rely on the ones before it (a checkpoint after an evaluation
holds its best score)."""


class HookBase:
    """A hook does nothing at any point it does not override; `trainer` is set on registration."""

    trainer = None

    def before_train(self) -> None:
        """After resuming and before the first step (the metrics log is open)."""

    def before_step(self) -> None:
        """Before the first forward of the next step (`trainer.step + 1`)."""

    def after_backward(self) -> None:
        """After the backward of a step's last micro-batch (gradients reduced over processes),
        before clipping and the update."""

    def after_step(self) -> None:
        """After an optimizer step (`trainer.step` counts it), before the next one starts."""
