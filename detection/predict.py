"""Running a trained detector on images (the predict command's Python side).

    predictor = Predictor("outputs/my/config.yaml", "outputs/my/checkpoints/last.pth")
    outputs = predictor.predict(["a.jpg", pil_image, numpy_rgb])   # torchvision's dicts, on the CPU

Pre- and post-processing are evaluation's: the decoded RGB image as a [0, 1] float tensor, the
model's own resizing and normalisation, detections mapped back to the image's pixels. Paths are
decoded upright as their EXIF orientation says (evaluation's data keep stored pixels, which their
annotations use); any PIL mode (grey, RGBA, palette, 16-bit) becomes 8-bit RGB.
"""

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from engine.data import decode_image, to_rgb8
from engine.tta import views as tta_views

from .model import load_detector_weights
from .tta import NO_TTA, detect


class Predictor:
    """A detector in evaluation mode with its class names; `config_or_model` is a detection
    config (path or loaded) with `checkpoint`, or a built model."""

    def __init__(self, config_or_model, checkpoint: str | Path | None = None, *, class_names=None,
                 category_ids=None, device: str | None = None, views=None):
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
        classes = self.model.roi_heads.box_predictor.cls_score.out_features - 1
        self.class_names = list(class_names or [f"class {i}" for i in range(1, classes + 1)])
        self.category_ids = list(category_ids or range(1, classes + 1))
        if len(self.class_names) != classes:
            raise ValueError(f"{len(self.class_names)} class names for a detector of {classes} classes")

    @torch.no_grad()
    def predict(self, images, batch_size: int = 1) -> list[dict]:
        """Detections (boxes xyxy in the image's pixels, scores, labels 1..K, and masks
        (N, 1, H, W) probabilities for Mask R-CNN) for each image: a path, PIL image or HxWx3
        uint8 RGB array, or a list of them."""
        single = not isinstance(images, (list, tuple))
        tensors = [as_tensor(image) for image in ([images] if single else images)]
        outputs = []
        for start in range(0, len(tensors), batch_size):
            batch = [t.to(self.device) for t in tensors[start:start + batch_size]]
            outputs += [{k: v.cpu() for k, v in o.items()} for o in detect(self.model, batch, self.views)]
        return outputs[0] if single else outputs


def as_tensor(image) -> torch.Tensor:
    """Float CHW in [0, 1], as the detection data set gives evaluation."""
    if isinstance(image, (str, Path)):
        image = decode_image(image, exif_orientation=True)
    elif isinstance(image, Image.Image):
        image = to_rgb8(image)
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"an image array must be HxWx3 uint8 RGB, not {image.shape} {image.dtype}")
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255


def _from_config(config, checkpoint):
    """The config's detector with `checkpoint` loaded, the class names and category ids of its
    validation annotations (numbered when only model.num_classes is set and those are absent),
    and its test-time views."""
    from .train import build_detector, load_detection_config, read_source

    cfg = load_detection_config(config, training=False) if isinstance(config, (str, Path)) else config
    if checkpoint is None:
        raise ValueError("a config needs the checkpoint of the trained detector")
    try:
        source = read_source(cfg.data, "val")
        names, ids = source.class_names, source.category_ids
    except (FileNotFoundError, ValueError):
        if not cfg.model.num_classes:
            raise
        names = ids = None
    classes = cfg.model.num_classes or len(names) + 1
    model = load_detector_weights(build_detector(cfg, classes), checkpoint)
    return model, names, ids, tta_views(cfg.eval.tta)
