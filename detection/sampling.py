"""Fast R-CNN's background range for the RoI sampler (Fast R-CNN, Sec. 2.3).

torchvision's RoIHeads calls every proposal whose best IoU with the ground truth is below
`box_bg_iou_thresh` background, down to 0. Fast R-CNN samples background only from
[0.1, 0.5): proposals that barely touch an object are never visited. (The Faster R-CNN paper's
COCO experiments, Sec. 4.2, go back to [0, 0.5).) `box_bg_iou_low` sets that lower bound.
"""

import torch
from torchvision.models.detection._utils import Matcher


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
