"""Weight EMA for the trainer, through timm's `ModelEmaV3`: a moving average of the weights (and,
as timm does by default, of the floating-point buffers such as BN statistics; integer buffers
copied), updated every `every` optimizer steps with timm's decay warm-up, evaluated beside the
model, and kept in the checkpoint so a resumed run continues it exactly."""

from dataclasses import dataclass

from torch import nn


@dataclass
class EmaConfig:
    decay: float = 0.0  # 0: no EMA; e.g. 0.9998 (timm's ImageNet recipes)
    warmup: bool = True  # timm's decay warm-up: 1 - (1 + step) ** -2/3, capped at `decay`
    every: int = 1  # optimizer steps between updates


def build_ema(model: nn.Module, cfg: EmaConfig):
    """timm's ModelEmaV3 of `model` (on its device), or None when `cfg.decay` is 0."""
    if not cfg.decay:
        return None
    from timm.utils import ModelEmaV3

    return ModelEmaV3(model, decay=cfg.decay, use_warmup=cfg.warmup)
