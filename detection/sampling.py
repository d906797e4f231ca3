"""How the detector samples anchors and RoIs for its losses.

Fast R-CNN's background range (Fast R-CNN, Sec. 2.3): torchvision's RoIHeads calls every
proposal whose best IoU with the ground truth is below `box_bg_iou_thresh` background, down to 0.
Fast R-CNN samples background only from [0.1, 0.5): proposals that barely touch an object are
never visited. (The Faster R-CNN paper's COCO experiments, Sec. 4.2, go back to [0, 0.5).)
`box_bg_iou_low` sets that lower bound.

Seeded sampling: torchvision draws each image's foreground / background sample from the global
generator, so which anchors and RoIs train depends on which process an image landed on and what
that process drew before. Drawn instead from the image's own seed (its augmentation seed, in its
target as "seed"), training is a function of the data order alone: the same on 1 or N processes,
and after a resume on another number of processes.
"""

import torch
from torch import nn
from torchvision.models.detection._utils import BalancedPositiveNegativeSampler, Matcher


class BackgroundRangeMatcher(Matcher):
    """torchvision's Matcher with proposals below `bg_iou_low` marked ignored (never sampled)."""

    def __init__(self, fg_iou_thresh: float, bg_iou_thresh: float, bg_iou_low: float):
        if not 0 <= bg_iou_low <= bg_iou_thresh:
            raise ValueError(f"box_bg_iou_low={bg_iou_low} must be between 0 and "
                             f"box_bg_iou_thresh={bg_iou_thresh}")
        super().__init__(fg_iou_thresh, bg_iou_thresh, allow_low_quality_matches=False)
        self.bg_iou_low = bg_iou_low

    def __call__(self, match_quality_matrix: torch.Tensor) -> torch.Tensor:
        matches = super().__call__(match_quality_matrix)
        best = match_quality_matrix.max(dim=0).values
        matches[best < self.bg_iou_low] = self.BETWEEN_THRESHOLDS
        return matches


def set_background_range(roi_heads, bg_iou_low: float) -> None:
    """Sample background RoIs from [bg_iou_low, box_bg_iou_thresh) only (0: torchvision's)."""
    if bg_iou_low > 0:
        m = roi_heads.proposal_matcher
        roi_heads.proposal_matcher = BackgroundRangeMatcher(m.high_threshold, m.low_threshold, bg_iou_low)


class SeededSampler(BalancedPositiveNegativeSampler):
    """torchvision's sampler, each image's draw from its own seed (`seeds`, set per forward pass
    by `seed_sampling`); the global generator's where no seeds are given."""

    def __init__(self, sampler: BalancedPositiveNegativeSampler, salt: int):
        super().__init__(sampler.batch_size_per_image, sampler.positive_fraction)
        self.salt, self.seeds = salt, None  # salt: the RPN's and the RoI heads' draws differ

    def __call__(self, matched_idxs: list[torch.Tensor]):
        if self.seeds is None:
            return super().__call__(matched_idxs)
        if len(self.seeds) != len(matched_idxs):
            raise RuntimeError(f"{len(self.seeds)} sampling seeds for {len(matched_idxs)} images")
        positive, negative = [], []
        for seed, matched in zip(self.seeds, matched_idxs):
            with torch.random.fork_rng(devices=[matched.device] if matched.is_cuda else []):
                torch.manual_seed(seed * 2 + self.salt)
                (pos,), (neg,) = super().__call__([matched])
            positive.append(pos)
            negative.append(neg)
        return positive, negative


def seed_sampling(detector: nn.Module) -> None:
    """Make the RPN's and the RoI heads' samplers draw from the seeds in the training targets."""
    samplers = [SeededSampler(detector.rpn.fg_bg_sampler, salt=0),
                SeededSampler(detector.roi_heads.fg_bg_sampler, salt=1)]
    detector.rpn.fg_bg_sampler, detector.roi_heads.fg_bg_sampler = samplers

    def take_seeds(module, args, kwargs):
        targets = kwargs.get("targets", args[1] if len(args) > 1 else None)
        seeds = [int(t["seed"]) for t in targets] if targets and all("seed" in t for t in targets) else None
        for sampler in samplers:
            sampler.seeds = seeds

    detector.register_forward_pre_hook(take_seeds, with_kwargs=True)
