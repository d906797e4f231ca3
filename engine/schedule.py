"""Learning-rate schedules in iterations: step decay, cosine, poly, plateau, optional warm-up.

Epoch-based settings are converted to iterations once, so every schedule but `plateau` is a pure
function of the iteration; `plateau` (the paper's ImageNet schedule: lr / 10 when the error
plateaus) also depends on the validation metrics seen, which its state_dict keeps: resuming
restores either exactly.
"""

import math
from dataclasses import dataclass, field

import torch


@dataclass
class ScheduleConfig:
    kind: str = "step"  # step | cosine | poly | constant | plateau
    unit: str = "iter"  # iter | epoch: the unit of total, milestones and warmup
    total: float = 64000
    milestones: list = field(default_factory=lambda: [32000, 48000])
    gamma: float = 0.1
    warmup: float = 0  # length of the warm-up, in `unit`
    warmup_factor: float = 0.1  # lr multiplier during (constant) or at the start of (linear) warm-up
    warmup_kind: str = "constant"  # constant (the paper's ResNet-110) | linear
    power: float = 0.9  # poly: (1 - step / total) ** power, torchvision's segmentation reference
    patience: int = 3  # plateau: evaluations without a new best before the lr is multiplied by gamma
    floor: float = 0.0  # cosine: the factor it decays to (lr_min / lr), timm's lr_min


def to_iterations(value: float, unit: str, iters_per_epoch: int) -> int:
    if unit not in ("iter", "epoch"):
        raise ValueError(f"schedule.unit must be 'iter' or 'epoch', not {unit!r}")
    return round(value * iters_per_epoch) if unit == "epoch" else int(value)


def lr_factor(step: int, cfg: ScheduleConfig, iters_per_epoch: int) -> float:
    """Multiplier of the base lr at optimizer step `step` (0-based)."""
    total = to_iterations(cfg.total, cfg.unit, iters_per_epoch)
    if cfg.kind == "step":
        passed = sum(step >= to_iterations(m, cfg.unit, iters_per_epoch) for m in cfg.milestones)
        factor = cfg.gamma**passed
    elif cfg.kind == "cosine":
        cosine = 0.5 * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))
        factor = cfg.floor + (1 - cfg.floor) * cosine
    elif cfg.kind == "poly":
        factor = (1 - min(step, total) / max(total, 1)) ** cfg.power
    elif cfg.kind in ("constant", "plateau"):  # plateau: PlateauLR multiplies in its reductions
        factor = 1.0
    else:
        raise ValueError(f"schedule.kind must be step, cosine, poly, constant or plateau, not {cfg.kind!r}")
    warmup = to_iterations(cfg.warmup, cfg.unit, iters_per_epoch)
    if step < warmup:
        if cfg.warmup_kind == "constant":
            factor *= cfg.warmup_factor
        else:
            factor *= cfg.warmup_factor + (1 - cfg.warmup_factor) * step / warmup
    return factor


class PlateauLR(torch.optim.lr_scheduler.LambdaLR):
    """The lr times gamma each time the watched metric (lower is better) has gone `patience`
    evaluations without a new best (He et al., Sec. 3.4: "divided by 10 when the error
    plateaus"). `best`, `stale` and `reductions` are attributes, so LambdaLR's state_dict keeps
    them and a resumed run continues exactly."""

    def __init__(self, optimizer, cfg: ScheduleConfig, iters_per_epoch: int):
        self.best, self.stale, self.reductions, self.patience = math.inf, 0, 0, cfg.patience
        super().__init__(optimizer,
                         lambda step: cfg.gamma**self.reductions * lr_factor(step, cfg, iters_per_epoch))

    def state_dict(self) -> dict:
        """What was observed, not the rule: a resume takes `patience` from its config."""
        return {k: v for k, v in super().state_dict().items() if k != "patience"}

    def observe(self, value: float) -> None:
        """One evaluation's metric; a reduction applies from the next optimizer step (as torch's
        ReduceLROnPlateau), not one later: the lr LambdaLR already set for it is recomputed."""
        if value < self.best:
            self.best, self.stale = value, 0
            return
        self.stale += 1
        if self.stale >= self.patience:
            self.reductions, self.stale = self.reductions + 1, 0
            for group, base, factor in zip(self.optimizer.param_groups, self.base_lrs, self.lr_lambdas):
                group["lr"] = base * factor(self.last_epoch)
            self._last_lr = [group["lr"] for group in self.optimizer.param_groups]


def build_scheduler(optimizer, cfg: ScheduleConfig, iters_per_epoch: int):
    if cfg.kind == "plateau":
        return PlateauLR(optimizer, cfg, iters_per_epoch)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, cfg, iters_per_epoch)
    )

