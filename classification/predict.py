"""A trained classifier on images: its top classes, under the test protocol it was evaluated with.

    predictor = Predictor.from_weights("outputs/run/final.safetensors")   # all the file says
    predictor = Predictor.from_run("outputs/run/config.yaml", "outputs/run/checkpoints/best.pth")
    results = predictor.predict(["a.jpg", pil_image, numpy_rgb])   # [{"top5": [{"class", "score"}]}]

The class names and the run's config (its test transform: ImageNet's shorter side 256 and centre
224, 10-crop or multi-scale; CIFAR-style presets' training size) travel in the weights' metadata,
as torchvision's `Weights.meta["categories"]` and `transforms()`; files written before they did
take names from the config's data (its folders) or number them, with a note.
"""

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from backbones.weights import check_task, read_weights
from engine.config import config_from_description
from engine.data import as_rgb_array

from .data import ClassificationDataset, scan_image_folder
from .datasets import build_transforms
from .pretrain import build_model, build_task, load_classifier_weights, load_pretrain_config
from .transforms import RESIZING

log = logging.getLogger("classification")
TOP = 5


class Predictor:
    """A classifier in evaluation mode with its class names and test transform."""

    def __init__(self, cfg, model: torch.nn.Module, class_names: list[str]):
        self.cfg, self.model, self.class_names = cfg, model.eval(), list(class_names)
        self.task = build_task(cfg)  # the evaluation's views: 10-crop, multi-scale, flip
        self.transform = build_transforms(cfg.data)[1]

    @classmethod
    def from_run(cls, config, checkpoint) -> "Predictor":
        """The run's config (a path, or loaded) and one of its checkpoints or weights files."""
        cfg = load_pretrain_config(config) if isinstance(config, (str, Path)) else config
        description = read_weights(checkpoint)[1]
        check_task(description, ("classification", "backbone"), checkpoint, "classifier")
        names = (description or {}).get("categories") or _names_from_config(cfg, checkpoint)
        return cls(cfg, load_classifier_weights(build_model(cfg, len(names)), checkpoint), names)

    @classmethod
    def from_weights(cls, path) -> "Predictor":
        """A weights file this toolkit wrote, alone: its config and class names are inside."""
        _, description = read_weights(path)
        return cls.from_run(config_from_description(description, load_pretrain_config, path), path)

    @torch.no_grad()
    def predict(self, images) -> list[dict]:
        """The top classes of each image (a path, PIL image or HxWx3 uint8 RGB array)."""
        arrays = [as_rgb_array(image) for image in images]
        if self.cfg.data.preset not in RESIZING:  # CIFAR-style: the training size
            size = self.cfg.data.image_size
            arrays = [np.asarray(Image.fromarray(a).resize((size, size), Image.BILINEAR)) for a in arrays]
        dataset = ClassificationDataset(arrays, [0] * len(arrays), self.class_names, **self.transform)
        batch = self.task.collate([dataset[i] for i in range(len(dataset))])
        scores = self.task.predict(self.model, self.task.images(batch)).float()
        probabilities = scores if self.task.averages_views else scores.softmax(1)
        top = probabilities.topk(min(TOP, probabilities.shape[1]), dim=1)
        return [{"top5": [{"class": self.class_names[i], "score": p}
                          for p, i in zip(values.tolist(), indices.tolist())]}
                for values, indices in zip(top.values, top.indices)]

    def records(self, result: dict, image_id: str) -> list[dict]:
        return [{"image_id": image_id, **result}]

    def drawings(self, image: np.ndarray, result: dict) -> dict:
        return {}




def _names_from_config(cfg, source) -> list[str]:
    """A file without class names (written before they travelled with it): the training data's
    folders, or numbered from model.num_classes."""
    log.warning(f"{source} records no class names (written before weights carried them): taken "
                f"from the config's data, or numbered")
    try:
        if cfg.data.kind == "imagefolder":
            return scan_image_folder(Path(cfg.data.root) / cfg.data.train_split)[2]
    except FileNotFoundError:
        pass
    count = cfg.model.num_classes or cfg.data.num_classes
    return [f"class {i}" for i in range(count)]
