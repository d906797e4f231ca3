"""A trained segmenter on images: a class per pixel, under its evaluation's test-time views.

    predictor = Predictor.from_weights("outputs/seg/final.safetensors")   # all the file says
    predictor = Predictor.from_run("outputs/seg/config.yaml", "outputs/seg/checkpoints/best.pth")
    results = predictor.predict(["a.jpg", pil_image, numpy_rgb])   # [{"labels": HxW, "classes": {...}}]

The class names and the run's config travel in the weights' metadata; files written before they
did take names from `data.classes` (or VOC's), with a note.
"""

import logging
from pathlib import Path

import numpy as np
import torch
from torchvision.utils import draw_segmentation_masks

from backbones.weights import read_weights
from engine.config import config_from_description
from engine.data import as_rgb_array
from engine.tta import views

from .data import VOC_CLASSES, build_transform
from .model import load_segmenter_weights
from .task import SegmentationTask
from .train import build_model, load_segmentation_config

log = logging.getLogger("segmentation")


class Predictor:
    """A segmenter in evaluation mode with its class names and test-time views."""

    def __init__(self, cfg, model: torch.nn.Module, class_names: list[str]):
        self.model, self.class_names = model.eval(), list(class_names)
        self.transform = build_transform(train=False)
        self.task = SegmentationTask(self.class_names, views(cfg.eval.tta))

    @classmethod
    def from_run(cls, config, checkpoint) -> "Predictor":
        """The run's config (a path, or loaded) and one of its checkpoints or weights files."""
        if isinstance(config, (str, Path)):
            config = load_segmentation_config(config, training=False)
        names = (read_weights(checkpoint)[1] or {}).get("categories")
        if not names:
            log.warning(f"{checkpoint} records no class names (written before weights carried them): "
                        f"taken from data.classes (or VOC's)")
            names = list(config.data.classes or VOC_CLASSES)
        model = load_segmenter_weights(build_model(config, len(names)), checkpoint)
        return cls(config, model, names)

    @classmethod
    def from_weights(cls, path) -> "Predictor":
        """A weights file this toolkit wrote, alone: its config and class names are inside."""
        description = read_weights(path)[1]
        return cls.from_run(config_from_description(description, load_segmentation_config, path), path)

    @torch.no_grad()
    def predict(self, images) -> list[dict]:
        """Each image's class indices (HxW, its own size) and the share of it each class covers."""
        results = []
        for image in images:  # one at a time: sizes differ
            array = as_rgb_array(image)
            tensor = self.transform(image=array)["image"][None]
            labels = self.task.logits(self.model, tensor)[0].argmax(0)
            present = labels.unique().tolist()
            results.append({"labels": labels, "classes": {
                self.class_names[c]: float((labels == c).float().mean()) for c in present}})
        return results

    def records(self, result: dict, image_id: str) -> list[dict]:
        return [{"image_id": image_id, "classes": result["classes"]}]

    def drawings(self, image: np.ndarray, result: dict) -> dict[str, np.ndarray]:
        """<name>_mask.png: the class indices; <name>.png: the classes drawn over the image."""
        labels = result["labels"]
        masks = torch.stack([labels == c for c in labels.unique().tolist()])
        canvas = draw_segmentation_masks(torch.from_numpy(image).permute(2, 0, 1), masks, alpha=0.5)
        return {"_mask": labels.numpy().astype(np.uint8), "": canvas.permute(1, 2, 0).numpy()}

