"""Drawing detections: the best `top` boxes above the threshold, ground truth, enlargement."""

import numpy as np
import torch

from detection.visualize import draw


def test_draw_keeps_the_best_boxes_above_the_threshold_and_scales():
    image = np.zeros((20, 30, 3), dtype=np.uint8)
    prediction = {"boxes": torch.tensor([[1.0, 1, 5, 5], [10, 10, 15, 15], [20, 2, 25, 8]]),
                  "labels": torch.tensor([1, 2, 1]), "scores": torch.tensor([0.2, 0.9, 0.6])}
    out = draw(image, prediction, ["a", "b"], score_threshold=0.5, top=1, scale=2)
    assert out.shape == (3, 40, 60)
    assert out[:, 20, 20:30].any() and not out[:, 2:10, 2].any()  # 0.9 drawn; 0.2 not
    assert not out[:, 4:16, 40].any()  # 0.6 is above the threshold but beyond top=1
    truth = draw(image, {k: v[:0] for k, v in prediction.items()}, ["a", "b"],
                 ground_truth=torch.tensor([[1.0, 1, 5, 5]]))
    assert (truth[:, 1, 1:6] == 255).all()  # white ground truth


def test_draw_fills_masks_in_the_class_colour():
    image = np.zeros((20, 30, 3), dtype=np.uint8)
    masks = torch.zeros(2, 1, 20, 30)
    masks[0, 0, 8:12, 12:18] = 0.9  # the kept detection's mask
    masks[1, 0, 0:4, 0:4] = 0.9  # a detection below the threshold: not drawn
    prediction = {"boxes": torch.tensor([[10.0, 6, 20, 14], [0, 0, 5, 5]]), "labels": torch.tensor([2, 1]),
                  "scores": torch.tensor([0.9, 0.1]), "masks": masks}
    out = draw(image, prediction, ["a", "b"], score_threshold=0.5, scale=2)
    inside = out[:, 20, 30].tolist()  # (10, 15) in the image: inside the mask, off the box outline
    green = [0x3C, 0xB4, 0x4B]  # PALETTE[1], class "b", at alpha 0.45 over black
    assert inside == [round(0.45 * c) for c in green] or inside == [int(0.45 * c) for c in green]
    assert not out[:, 2, 2].any() and not out[:, 20, 2].any()  # no mask below the threshold; outside
