"""The classification loss (`loss:`) and the batch mixing that feeds it (`data.mixup:`), from timm.

`ce` without mixing or smoothing is exactly the paper's `F.cross_entropy`. Mixup / CutMix
(`timm.data.Mixup`) turn the labels into soft targets (smoothed by `loss.smoothing`), which
`timm.loss.SoftTargetCrossEntropy` or `BinaryCrossEntropy` take; `bce` is ResNet Strikes Back's
loss (sigmoid per class, targets binarised above `bce_target_thresh`).
"""

import torch
import torch.nn.functional as F

LOSSES = ("ce", "bce")
MIX_MODES = ("batch", "pair", "elem")


def mixes(mixup) -> bool:
    return mixup.mixup_alpha > 0 or mixup.cutmix_alpha > 0


def build_loss(loss, mixing: bool):
    """logits, targets -> loss; targets are class indices, or soft targets when `mixing`."""
    if loss.name == "bce":
        from timm.loss import BinaryCrossEntropy

        # mixed targets come smoothed by Mixup; index targets are smoothed here
        return BinaryCrossEntropy(smoothing=0.0 if mixing else loss.smoothing,
                                  target_threshold=loss.bce_target_thresh)
    if mixing:
        from timm.loss import SoftTargetCrossEntropy

        return SoftTargetCrossEntropy()
    if loss.smoothing:
        return lambda logits, labels: F.cross_entropy(logits, labels, label_smoothing=loss.smoothing)
    return F.cross_entropy


class BatchMixing:
    """timm's Mixup / CutMix of a training batch: (images, labels) -> (mixed images, soft targets).

    timm mixes a batch with its reverse, so it needs an even batch: a batch made odd by a skipped
    image mixes all but its last sample, which keeps its own (smoothed) target."""

    def __init__(self, mixup, smoothing: float, num_classes: int):
        from timm.data import Mixup

        self.mix = Mixup(mixup_alpha=mixup.mixup_alpha, cutmix_alpha=mixup.cutmix_alpha, prob=mixup.prob,
                         switch_prob=mixup.switch_prob, mode=mixup.mode, label_smoothing=smoothing,
                         num_classes=num_classes)
        self.smoothing, self.num_classes = smoothing, num_classes

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from timm.data.mixup import mixup_target

        even = len(labels) - len(labels) % 2
        mixed, targets = self.mix(images[:even], labels[:even])
        if even == len(labels):
            return mixed, targets
        last = mixup_target(labels[even:], self.num_classes, lam=1.0, smoothing=self.smoothing)
        return torch.cat([mixed, images[even:]]), torch.cat([targets, last.to(targets.dtype)])


def problems(loss, mixup) -> list[str]:
    """Out-of-range `loss` and `data.mixup` values."""
    found = []
    if loss.name not in LOSSES:
        found.append(f"loss.name={loss.name!r}: must be {' | '.join(LOSSES)}")
    if not 0 <= loss.smoothing < 1:
        found.append(f"loss.smoothing={loss.smoothing!r}: must be 0 <= smoothing < 1")
    thresh = loss.bce_target_thresh
    if thresh is not None and (loss.name != "bce" or not 0 < thresh < 1):
        found.append(f"loss.bce_target_thresh={thresh!r}: must be null, or 0 < value < 1 with loss.name=bce")
    for key in ("mixup_alpha", "cutmix_alpha"):
        if mixup[key] < 0:
            found.append(f"data.mixup.{key}={mixup[key]!r}: must be >= 0 (0: off)")
    for key in ("prob", "switch_prob"):
        if not 0 <= mixup[key] <= 1:
            found.append(f"data.mixup.{key}={mixup[key]!r}: must be a probability")
    if mixup.mode not in MIX_MODES:
        found.append(f"data.mixup.mode={mixup.mode!r}: must be {' | '.join(MIX_MODES)}")
    return found
