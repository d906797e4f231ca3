"""`train.probe_every=N`: every N steps, the per-stage norms of the gradient and the mean std of
the stages' layer responses (Fig. 7's, on that step's training batch) into metrics.jsonl, so the
convergence of plain and residual nets can be read beside their curves (Sec. 4.1).

Hooks are put on the net only for the steps probed: the others run exactly as without the option.
Gradients are read after the backward of the step's last micro-batch (all processes' reduced),
before clipping and the update; responses are summed over the step's micro-batches and processes.
"""

from backbones.metadata import find_backbone
from backbones.probes import ResponseRecorder, response_layers, stage_gradient_norms

from .hooks import HookBase


class ProbeHook(HookBase):
    def __init__(self, every: int):
        self.every, self.recorder, self.grad_norms = every, None, None
        self.net, self.layers = None, []  # found in before_train, once the model is prepared

    def before_train(self) -> None:
        self.net = find_backbone(self.trainer.unwrapped_model())
        if self.net is None:
            raise ValueError("train.probe_every needs a registry backbone in the model (a ResNet or "
                             "plain net): this run's model has none")
        self.layers = response_layers(self.net)  # a net it cannot probe: its reason, now

    def _probed(self) -> bool:
        return (self.trainer.step + 1) % self.every == 0

    def before_step(self) -> None:
        if self._probed():
            self.recorder = ResponseRecorder(self.layers).__enter__()

    def after_backward(self) -> None:
        if self.recorder is not None:
            scaler = self.trainer.accelerator.scaler  # fp16: gradients are still scaled here
            scale = float(scaler.get_scale()) if scaler is not None else 1.0
            self.grad_norms = {k: v / scale for k, v in stage_gradient_norms(self.net).items()}

    def after_step(self) -> None:
        if self.recorder is None:
            return
        recorder, self.recorder = self.recorder, None
        recorder.__exit__()
        tr = self.trainer
        sums = recorder.sums.to(tr.accelerator.device)
        if tr.accelerator.num_processes > 1:
            sums = tr.accelerator.reduce(sums, "sum")
        stds = recorder.std(sums)
        record = {"iteration": tr.step}
        for stage, norm in self.grad_norms.items():
            record[f"grad_norm_{_stage(stage)}"] = norm
        for stage in sorted({layer.stage for layer in self.layers}):
            values = [stds[layer.name] for layer in self.layers if layer.stage == stage]
            record[f"response_std_{_stage(stage)}"] = sum(values) / len(values)
        tr.logger.log(record)


def _stage(index: int) -> str:
    return "stem" if index == 0 else f"stage{index}"


def probe_hooks(train_cfg) -> list:
    return [ProbeHook(train_cfg.probe_every)] if train_cfg.probe_every else []


