"""Classification as a task for the shared trainer: cross-entropy, top-1/top-5 error."""

import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF

from backbones.metadata import describe
from engine.task import SKIPPED, Evaluation, Task

from .batch_augment import crop_flip, normalize
from .data import BadSample
from .device_decode import JpegFile, device_crops
from .lighting import lighting_shift


class ClassificationTask(Task):
    best_metric = "val_top1_error"

    def __init__(self, channels_last: bool = False, ten_crop: bool = False,
                 mean_std: tuple = ((0.0,) * 3, (1.0,) * 3), multi_scale: tuple = (), flip: bool = False,
                 loss=F.cross_entropy, mixing=None):
        """`mean_std` normalises uint8 batches (`data.batch_augment`); other batches come
        normalised from the dataset's transform. `multi_scale`: shorter sides of the paper's
        fully-convolutional testing (Table 4), whole images of any size. `flip`: test-time
        augmentation by the mirror image (10-crop and multi-scale testing mirror already).
        `loss(logits, targets)` trains (`classification.loss`); `mixing(images, labels)`, when
        given, turns a training batch into mixed images and soft targets (Mixup / CutMix)."""
        if flip and (ten_crop or multi_scale):
            raise ValueError("eval.tta.flip with 10-crop or multi-scale testing: both already "
                             "average over mirrored views; use one of them")
        self.channels_last, self.ten_crop, self.mean_std = channels_last, ten_crop, mean_std
        self.multi_scale, self.flip = tuple(multi_scale), flip
        self.loss, self.mixing = loss, mixing

    def collate(self, samples: list) -> dict:
        good = [s for s in samples if not isinstance(s, BadSample)]
        skipped = [s.path for s in samples if isinstance(s, BadSample)]
        if not good:  # the trainer and evaluation skip a batch holding nothing else
            return {SKIPPED: skipped}
        if any(isinstance(s[0], JpegFile) for s in good):  # data.decode_on_device: decoded later
            images = [s[0] for s in good]
        else:
            sizes = {tuple(s[0].shape) for s in good}
            images = torch.stack([s[0] for s in good]) if len(sizes) == 1 else [s[0][None] for s in good]
        if self.channels_last and torch.is_tensor(images) and images.dtype != torch.uint8:
            images = images.contiguous(memory_format=torch.channels_last)
        batch = {"image": images, "label": torch.tensor([s[1] for s in good], dtype=torch.long),
                 SKIPPED: skipped}
        if len(good[0]) == 3:  # a uint8 transform's per-sample parameters, by name
            batch.update({name: torch.stack([s[2][name] for s in good]) for name in good[0][2]})
        return batch

    def images(self, batch: dict) -> torch.Tensor:
        """The model's input: uint8 batches are augmented with what each sample drew (CIFAR's crop
        and flip, ImageNet's lighting; with `data.decode_on_device`, ImageNet's crop and flip of
        the decoded JPEG too) and normalised here, on the training device."""
        images = batch["image"]
        if "crop" in batch:  # JPEG bytes (data.decode_on_device): decoded and cropped on the device
            images = device_crops(images, batch["crop"])
        if isinstance(images, list):  # whole images of different sizes (multi-scale testing)
            return [self.images({"image": image}) for image in images]
        if images.dtype != torch.uint8:
            return images
        if "crop_flip" in batch:
            images = crop_flip(images, batch["crop_flip"])
        shift = lighting_shift(batch["lighting"]) if "lighting" in batch else None
        return normalize(images, *self.mean_std, channels_last=self.channels_last, shift=shift)

    def train_step(self, model, batch: dict):
        images, targets = self.images(batch), batch["label"]
        if self.mixing is not None:
            images, targets = self.mixing(images, targets)
        logits = model(images)
        loss = self.loss(logits, targets)
        errors = (logits.argmax(1) != batch["label"]).sum()
        n = len(batch["label"])
        return loss, {"loss": loss.detach() * n, "error": errors, "samples": n}

    @property
    def averages_views(self) -> bool:
        """Scores are mean softmax probabilities over several views (10-crop, multi-scale)."""
        return self.ten_crop or bool(self.multi_scale) or self.flip

    def predict(self, model, images) -> torch.Tensor:
        """Class scores; with 10-crop testing, the mean softmax over the ten 224 crops; with
        multi-scale testing, over every scale and its mirror; with `flip`, over the image and its
        mirror."""
        if self.multi_scale:  # a list of (1, C, H, W) images, or a batch of one size
            images = images.split(1) if torch.is_tensor(images) else images
            return torch.cat([self._multi_scale(model, image) for image in images])
        if self.flip:
            return (model(images).float().softmax(1) + model(images.flip(-1)).float().softmax(1)) / 2
        if not self.ten_crop:
            return model(images).float()
        crops = TF.ten_crop(images, [224, 224])
        return torch.stack([model(c).float().softmax(1) for c in crops]).mean(0)

    def _multi_scale(self, model, image: torch.Tensor) -> torch.Tensor:
        """The paper's fully-convolutional test (Sec. 3.4): the whole image at each shorter side
        and mirrored, the net's global pooling making the fc a dense layer averaged over the map;
        softmax scores averaged. `image`: one normalised (1, C, H, W) image."""
        height, width = image.shape[-2:]
        scores = []
        for side in self.multi_scale:
            scale = side / min(height, width)
            size = [round(height * scale), round(width * scale)]
            view = F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)
            scores += [model(v).float().softmax(1) for v in (view, view.flip(-1))]
        return torch.stack(scores).mean(0)

    def weights_metadata(self, model) -> dict[str, str]:
        mean, std = self.mean_std
        return describe(model, task="classification", input_convention={"mean": mean, "std": std})

    def backbone_state(self, model) -> dict:
        """The classifier is the backbone (its fc is skipped when detection loads it)."""
        return model.state_dict()

    def evaluate(self, model, loader, accelerator) -> Evaluation:
        top1 = top5 = loss = count = 0.0
        for batch in loader:
            batch.pop(SKIPPED, None)
            if not batch:
                continue
            scores = self.predict(model, self.images(batch))
            labels = batch["label"]
            k = min(5, scores.shape[1])
            hits = scores.topk(k, dim=1).indices == labels[:, None]
            nll = F.cross_entropy(scores, labels, reduction="none") if not self.averages_views else \
                F.nll_loss(scores.clamp_min(1e-12).log(), labels, reduction="none")
            hits1, hits5, nll = accelerator.gather_for_metrics((hits[:, 0], hits.any(1), nll))
            top1 += hits1.sum().item()
            top5 += hits5.sum().item()
            loss += nll.sum().item()
            count += len(hits1)
        count = max(count, 1)
        return Evaluation({"val_top1_error": 1 - top1 / count, "val_top5_error": 1 - top5 / count,
                           "val_loss": loss / count, "val_images": int(count)})
