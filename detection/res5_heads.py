"""The ResNet-C4 RoI heads of Mask R-CNN (He et al. 2017, Fig. 4 left; detectron2's Res5ROIHeads).

conv5_x runs once per region on the pooled shared map; its output feeds the box branch (global
average pooling, then classes and boxes) and the mask branch (a 2x deconvolution to 14x14, then
one mask per class). In training the mask branch reads the conv5_x maps of the positive regions
the box branch has already computed: no second RoI pooling of the shared map. At inference the
masks belong to the final, regressed boxes, so those boxes go through RoI pooling and conv5_x
once more, as in detectron2.

Everything else (sampling, losses, post-processing) is torchvision's RoIHeads, unchanged.
"""

import torch
from torchvision.models.detection.roi_heads import (
    RoIHeads,
    fastrcnn_loss,
    maskrcnn_inference,
    maskrcnn_loss,
)


class Res5RoIHeads(RoIHeads):
    """torchvision's RoIHeads with the C4 flow; `box_head` is a C5Head (stage, pool)."""

    @classmethod
    def replacing(cls, heads: RoIHeads, mask_predictor) -> "Res5RoIHeads":
        """These heads with the settings of torchvision's `heads` (as FasterRCNN / MaskRCNN built
        them from their keyword arguments) and `mask_predictor` on the conv5_x maps."""
        matcher, sampler = heads.proposal_matcher, heads.fg_bg_sampler
        return cls(heads.box_roi_pool, heads.box_head, heads.box_predictor,
                   fg_iou_thresh=matcher.high_threshold, bg_iou_thresh=matcher.low_threshold,
                   batch_size_per_image=sampler.batch_size_per_image,
                   positive_fraction=sampler.positive_fraction, bbox_reg_weights=heads.box_coder.weights,
                   score_thresh=heads.score_thresh, nms_thresh=heads.nms_thresh,
                   detections_per_img=heads.detections_per_img, mask_predictor=mask_predictor)

    def has_mask(self) -> bool:
        """Always: the mask branch is `mask_predictor` on conv5_x (no mask_roi_pool / mask_head)."""
        return True

    def conv5(self, features: dict, boxes: list, image_shapes: list) -> torch.Tensor:
        """The conv5_x maps of `boxes` (7x7 for 14x14 pooling)."""
        return self.box_head.stage(self.box_roi_pool(features, boxes, image_shapes))

    def forward(self, features, proposals, image_shapes, targets=None):
        if self.training:
            proposals, matched_idxs, labels, regression_targets = self.select_training_samples(
                proposals, targets)
        maps = self.conv5(features, proposals, image_shapes)
        class_logits, box_regression = self.box_predictor(self.box_head.pool(maps))
        if self.training:
            return [], self._losses(maps, class_logits, box_regression, proposals, matched_idxs,
                                    labels, regression_targets, targets)
        boxes, scores, labels = self.postprocess_detections(class_logits, box_regression, proposals,
                                                            image_shapes)
        masks = maskrcnn_inference(self.mask_predictor(self.conv5(features, boxes, image_shapes)), labels)
        return [{"boxes": b, "labels": c, "scores": s, "masks": m}
                for b, c, s, m in zip(boxes, labels, scores, masks)], {}

    def _losses(self, maps, class_logits, box_regression, proposals, matched_idxs, labels,
                regression_targets, targets) -> dict:
        loss_classifier, loss_box_reg = fastrcnn_loss(class_logits, box_regression, labels,
                                                      regression_targets)
        positive = [image_labels > 0 for image_labels in labels]
        mask_logits = self.mask_predictor(maps[torch.cat(positive)])
        loss_mask = maskrcnn_loss(mask_logits, [p[k] for p, k in zip(proposals, positive)],
                                  [t["masks"] for t in targets], [t["labels"] for t in targets],
                                  [m[k] for m, k in zip(matched_idxs, positive)])
        return {"loss_classifier": loss_classifier, "loss_box_reg": loss_box_reg, "loss_mask": loss_mask}
