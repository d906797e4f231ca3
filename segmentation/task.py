"""Semantic segmentation as a task for the shared trainer: per-pixel cross-entropy (void
ignored, aux head weighted 0.5 as torchvision's reference) and confusion-matrix metrics."""

import torch
import torch.nn.functional as F

from backbones.metadata import IMAGENET_INPUT, describe
from engine.data import BadSample
from engine.task import SKIPPED, Evaluation, Task

from .metrics import IGNORE_INDEX, confusion_matrices, segmentation_metrics

AUX_WEIGHT = 0.5


class SegmentationTask(Task):
    best_metric, best_higher = "val_mIoU", True

    def __init__(self, classes: list[str], views=((1.0, False),)):
        """`views`: (scale, mirrored) of each test-time view (`engine.tta.views`)."""
        self.classes, self.views = list(classes), tuple(views)
        self.categories = self.classes

    def logits(self, model, images: torch.Tensor) -> torch.Tensor:
        """The class logits at the images' size, averaged over the test-time views (each view's
        upsampled to full size and mirrored back)."""
        if self.views == ((1.0, False),):
            return model(images)["out"]
        size, total = images.shape[-2:], 0
        for scale, mirrored in self.views:
            view = images if scale == 1 else F.interpolate(images, scale_factor=scale, mode="bilinear",
                                                           align_corners=False)
            out = model(view.flip(-1) if mirrored else view)["out"]
            out = out.flip(-1) if mirrored else out
            total = total + (out if scale == 1 else F.interpolate(out, size=size, mode="bilinear",
                                                                  align_corners=False))
        return total / len(self.views)

    def weights_metadata(self, model) -> dict[str, str]:
        return describe(model, task="segmentation", input_convention=IMAGENET_INPUT)  # data.py's

    def collate(self, samples: list) -> dict:
        """Images of different sizes (validation) are padded: image with 0, mask with void."""
        good = [s for s in samples if not isinstance(s, BadSample)]
        skipped = [s.path for s in samples if isinstance(s, BadSample)]
        if not good:
            return {SKIPPED: skipped}
        height = max(image.shape[1] for image, _ in good)
        width = max(image.shape[2] for image, _ in good)
        images = torch.zeros(len(good), good[0][0].shape[0], height, width)
        masks = torch.full((len(good), height, width), IGNORE_INDEX, dtype=torch.long)
        for i, (image, mask) in enumerate(good):
            images[i, :, : image.shape[1], : image.shape[2]] = image
            masks[i, : mask.shape[0], : mask.shape[1]] = mask
        return {"image": images, "mask": masks, SKIPPED: skipped}

    def train_step(self, model, batch: dict):
        outputs = model(batch["image"])
        loss = F.cross_entropy(outputs["out"].float(), batch["mask"], ignore_index=IGNORE_INDEX)
        stats = {"main_loss": loss.detach()}
        if "aux" in outputs:
            aux = F.cross_entropy(outputs["aux"].float(), batch["mask"], ignore_index=IGNORE_INDEX)
            loss = loss + AUX_WEIGHT * aux
            stats["aux_loss"] = aux.detach()
        n = len(batch["image"])
        return loss, {"loss": loss.detach() * n, **{k: v * n for k, v in stats.items()}, "samples": n}

    def evaluate(self, model, loader, accelerator) -> Evaluation:
        """One confusion matrix per image, gathered with accelerate's de-duplication of the
        padding samples, so every pixel of the validation set counts once."""
        total = torch.zeros(len(self.classes), len(self.classes), dtype=torch.long)
        for batch in loader:
            batch.pop(SKIPPED, None)
            if not batch:
                continue
            pred = self.logits(model, batch["image"]).argmax(1)
            per_image = confusion_matrices(pred, batch["mask"], len(self.classes))
            total += accelerator.gather_for_metrics(per_image).sum(0).cpu()
        metrics = segmentation_metrics(total, self.classes)
        return Evaluation({f"val_{k}": v for k, v in metrics.items()})
