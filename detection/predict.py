"""Running a trained detector on images (the predict command's Python side).

    predictor = Predictor("outputs/my/config.yaml", "outputs/my/checkpoints/last.pth")
    predictor = Predictor.from_weights("outputs/my/final.safetensors")   # all the file says
    outputs = predictor.predict(["a.jpg", pil_image, numpy_rgb])   # torchvision's dicts, on the CPU

The class names and COCO category ids travel in the weights' metadata (torchvision's
`Weights.meta["categories"]`); for files written before they did, they are read from the config's
validation annotations, with a note.

Pre- and post-processing are evaluation's: the decoded RGB image as a [0, 1] float tensor, the
model's own resizing and normalisation, detections mapped back to the image's pixels. Paths are
decoded upright as their EXIF orientation says (evaluation's data keep stored pixels, which their
annotations use); any PIL mode (grey, RGBA, palette, 16-bit) becomes 8-bit RGB.
"""

import logging
from pathlib import Path

import numpy as np
import torch

from backbones.weights import read_weights
from engine.config import config_from_description
from engine.data import as_rgb_array
from engine.tta import views as tta_views

from .evaluation import coco_bbox, encode_masks
from .model import load_detector_weights
from .tta import NO_TTA, detect
from .visualize import draw

log = logging.getLogger("detection")


class Predictor:
    """A detector in evaluation mode with its class names; `config_or_model` is a detection
    config (path or loaded) with `checkpoint`, or a built model. `score`: the lowest score of
    the detections `records` and `drawings` keep (`predict` returns all the model gives)."""

    def __init__(self, config_or_model, checkpoint: str | Path | None = None, *, class_names=None,
                 category_ids=None, device: str | None = None, views=None, score: float = 0.5):
        self.score = score
        if isinstance(config_or_model, torch.nn.Module):
            model, self.views = config_or_model, tuple(views or NO_TTA)
            if checkpoint is not None:
                load_detector_weights(model, checkpoint)
        else:
            model, names, ids, config_views = _from_config(config_or_model, checkpoint)
            self.views = tuple(views or config_views)
            class_names, category_ids = class_names or names, category_ids or ids
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.eval().to(self.device)
        if score < self.model.roi_heads.score_thresh:  # the model's own threshold would apply first
            self.model.roi_heads.score_thresh = score
        classes = self.model.roi_heads.box_predictor.cls_score.out_features - 1
        self.class_names = list(class_names or [f"class {i}" for i in range(1, classes + 1)])
        self.category_ids = list(category_ids or range(1, classes + 1))
        if len(self.class_names) != classes:
            raise ValueError(f"{len(self.class_names)} class names for a detector of {classes} classes")

    @torch.no_grad()
    def predict(self, images, batch_size: int | None = None) -> list[dict]:
        """Detections (boxes xyxy in the image's pixels, scores, labels 1..K, and masks
        (N, 1, H, W) probabilities for Mask R-CNN) for each image: a path, PIL image or HxWx3
        uint8 RGB array, or a list of them; `batch_size` images a forward pass (default: all)."""
        single = not isinstance(images, (list, tuple))
        tensors = [as_tensor(image) for image in ([images] if single else images)]
        batch_size = batch_size or len(tensors)  # all given, in one pass (as evaluation batches them)
        outputs = []
        for start in range(0, len(tensors), batch_size):
            batch = [t.to(self.device) for t in tensors[start:start + batch_size]]
            outputs += [{k: v.cpu() for k, v in o.items()} for o in detect(self.model, batch, self.views)]
        return outputs[0] if single else outputs

    @classmethod
    def from_run(cls, config, checkpoint, **options) -> "Predictor":
        """The run's config (a path, or loaded) and one of its checkpoints or weights files."""
        return cls(config, checkpoint, **options)

    @classmethod
    def from_weights(cls, path, **options) -> "Predictor":
        """A weights file this toolkit wrote, alone: its config and class names are inside."""
        from .train import load_detection_config

        description = read_weights(path)[1]
        return cls(config_from_description(description, load_detection_config, path), path, **options)

    def records(self, found: dict, image_id: str) -> list[dict]:
        """COCO results of the detections scoring `score` or more (category ids of the training
        data), with the class name beside."""
        found = self._kept(found)
        masks = encode_masks(found["masks"]) if "masks" in found else None
        records = []
        for i, (box, label, value) in enumerate(zip(found["boxes"].numpy(), found["labels"].tolist(),
                                                    found["scores"].tolist())):
            record = {"image_id": image_id, "category_id": self.category_ids[label - 1],
                      "category": self.class_names[label - 1], "score": value, "bbox": coco_bbox(box)}
            if masks is not None:
                record["segmentation"] = masks[i]
            records.append(record)
        return records

    def drawings(self, image: np.ndarray, found: dict) -> dict[str, np.ndarray]:
        """The image with its boxes, class names, scores (and masks) drawn."""
        canvas = draw(image, self._kept(found), self.class_names, self.score)
        return {"": canvas.permute(1, 2, 0).numpy()}

    def _kept(self, found: dict) -> dict:
        keep = found["scores"] >= self.score
        return {k: v[keep] for k, v in found.items()}


def as_tensor(image) -> torch.Tensor:
    """Float CHW in [0, 1], as the detection data set gives evaluation."""
    image = as_rgb_array(image)
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255


def _from_config(config, checkpoint):
    """The config's detector with `checkpoint` loaded, the class names and category ids the
    file records (or, for files written before they did, those of the config's validation
    annotations, numbered when only model.num_classes is set and those are absent), and its
    test-time views."""
    from .train import build_detector, load_detection_config

    cfg = load_detection_config(config, training=False) if isinstance(config, (str, Path)) else config
    if checkpoint is None:
        raise ValueError("a config needs the checkpoint of the trained detector")
    description = read_weights(checkpoint)[1] or {}
    names, ids = description.get("categories"), description.get("category_ids")
    if not names:
        log.warning(f"{checkpoint} records no class names (written before weights carried them): "
                    f"read from the config's validation annotations")
        names, ids = _names_from_annotations(cfg)
    classes = cfg.model.num_classes or len(names) + 1
    model = load_detector_weights(build_detector(cfg, classes), checkpoint)
    return model, names, ids, tta_views(cfg.eval.tta)


def _names_from_annotations(cfg):
    from .train import read_source

    try:
        source = read_source(cfg.data, "val")
        names, ids = source.class_names, source.category_ids
    except (FileNotFoundError, ValueError):
        if not cfg.model.num_classes:
            raise
        names = ids = None
    return names, ids
