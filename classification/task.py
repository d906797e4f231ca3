"""Classification as a task for the shared trainer: cross-entropy, top-1/top-5 error."""

import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF

from .data import BadSample


class ClassificationTask:
    best_metric = "val_top1_error"

    def __init__(self, channels_last: bool = False, ten_crop: bool = False):
        self.channels_last, self.ten_crop = channels_last, ten_crop

    def collate(self, samples: list) -> dict:
        good = [s for s in samples if not isinstance(s, BadSample)]
        skipped = [s.path for s in samples if isinstance(s, BadSample)]
        if not good:
            return {"image": torch.empty(0), "label": torch.empty(0, dtype=torch.long),
                    "skipped": skipped}
        images = torch.stack([image for image, _ in good])
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        labels = torch.tensor([label for _, label in good], dtype=torch.long)
        return {"image": images, "label": labels, "skipped": skipped}

    def train_step(self, model, batch: dict):
        logits = model(batch["image"])
        loss = F.cross_entropy(logits, batch["label"])
        errors = (logits.argmax(1) != batch["label"]).sum()
        n = len(batch["label"])
        return loss, {"loss": loss.detach() * n, "error": errors, "samples": n}

    def predict(self, model, images: torch.Tensor) -> torch.Tensor:
        """Class scores; with 10-crop testing, the mean softmax over the ten 224 crops."""
        if not self.ten_crop:
            return model(images).float()
        crops = TF.ten_crop(images, [224, 224])
        return torch.stack([model(c).float().softmax(1) for c in crops]).mean(0)

    def evaluate(self, model, loader, accelerator) -> dict:
        top1 = top5 = loss = count = 0.0
        for batch in loader:
            batch.pop("skipped", None)
            scores = self.predict(model, batch["image"])
            labels = batch["label"]
            k = min(5, scores.shape[1])
            hits = scores.topk(k, dim=1).indices == labels[:, None]
            nll = F.cross_entropy(scores, labels, reduction="none") if not self.ten_crop else \
                F.nll_loss(scores.clamp_min(1e-12).log(), labels, reduction="none")
            hits1, hits5, nll = accelerator.gather_for_metrics((hits[:, 0], hits.any(1), nll))
            top1 += hits1.sum().item()
            top5 += hits5.sum().item()
            loss += nll.sum().item()
            count += len(hits1)
        count = max(count, 1)
        return {"val_top1_error": 1 - top1 / count, "val_top5_error": 1 - top5 / count,
                "val_loss": loss / count, "val_images": int(count)}
