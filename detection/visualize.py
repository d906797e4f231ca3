"""Detections drawn on images, to look at what a detector does: predicted boxes coloured by class
with "name score", their masks (Mask R-CNN) translucent in the same colour, ground-truth boxes
(when known) in thin white."""

from pathlib import Path

import numpy as np
import torch
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks, make_grid

from engine.data import IMAGE_EXTENSIONS, decode_image

PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45",
           "#fabed4", "#469990"]


def draw(image: np.ndarray, prediction: dict, class_names: list, score_threshold: float = 0.5,
         ground_truth: torch.Tensor | None = None, scale: int = 1, top: int = 0) -> torch.Tensor:
    """uint8 (3, H*scale, W*scale): `image` (HxWx3) with `prediction` (torchvision's boxes, labels,
    scores and optional masks (N, 1, H, W) of probabilities; labels 1..K index class_names) and
    optional ground-truth boxes (N, 4) drawn; `top` > 0 keeps only that many of the best
    detections above the threshold."""
    canvas = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    if scale > 1:  # small images: enlarge first so labels stay legible
        canvas = canvas.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    if ground_truth is not None and len(ground_truth):
        canvas = draw_bounding_boxes(canvas, ground_truth * scale, colors="white", width=1)
    keep = (prediction["scores"] >= score_threshold).nonzero().flatten()
    keep = keep[prediction["scores"][keep].argsort(descending=True)][: top or None]
    boxes, labels, scores = (prediction[k][keep] for k in ("boxes", "labels", "scores"))
    if len(boxes):
        names = [f"{class_names[int(lab) - 1]} {s:.2f}" for lab, s in zip(labels, scores)]
        colours = [PALETTE[(int(lab) - 1) % len(PALETTE)] for lab in labels]
        if "masks" in prediction:  # binarised at 0.5, as evaluation scores them
            masks = prediction["masks"][keep, 0] > 0.5
            masks = masks.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
            canvas = draw_segmentation_masks(canvas, masks, alpha=0.45, colors=colours)
        canvas = draw_bounding_boxes(canvas, boxes * scale, labels=names, colors=colours, width=2)
    return canvas


@torch.no_grad()
def visualize(model, files: list[Path], out_dir: Path, class_names: list, *, score_threshold=0.5,
              ground_truth: dict | None = None, scale: int = 1, top: int = 0) -> list[Path]:
    """Predict on each file and write <out_dir>/<stem>.png, plus grid.png of them all.
    `ground_truth` maps a file path to its (N, 4) xyxy boxes."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.eval()
    drawn, written = [], []
    for file in files:
        image = decode_image(file)
        tensor = torch.from_numpy(image).permute(2, 0, 1).float() / 255
        prediction = {k: v.cpu() for k, v in model([tensor])[0].items()}
        canvas = draw(image, prediction, class_names, score_threshold,
                      (ground_truth or {}).get(Path(file)), scale, top)
        path = out_dir / f"{Path(file).stem}.png"
        _save(canvas, path)
        drawn.append(canvas)
        written.append(path)
    if drawn and len({c.shape for c in drawn}) == 1:
        _save(make_grid(drawn, nrow=min(4, len(drawn)), padding=4, pad_value=255), out_dir / "grid.png")
        written.append(out_dir / "grid.png")
    return written


def _save(canvas: torch.Tensor, path: Path) -> None:
    from PIL import Image

    Image.fromarray(canvas.permute(1, 2, 0).numpy()).save(path)


def visualize_checkpoint(cfg, checkpoint: Path, out_dir: Path, *, images: Path | None = None,
                         num: int = 8, score_threshold: float = 0.5, top: int = 0,
                         scale: int = 1) -> list[Path]:
    """A detector config's checkpoint drawn on the first `num` validation images (ground truth in
    white) or, given `images`, on any folder of images; class names come from the validation
    annotations, or are numbered when only model.num_classes is set."""
    from .model import load_detector_weights
    from .train import build_detector, read_source

    source = None if images and cfg.model.num_classes else read_source(cfg.data, "val")
    names = source.class_names if source else [f"class {i}" for i in range(1, cfg.model.num_classes)]
    model = load_detector_weights(build_detector(cfg, len(names) + 1), checkpoint)
    if images:
        if not Path(images).is_dir():
            raise FileNotFoundError(f"no such image folder: {images}")
        files = sorted(p for p in Path(images).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        truth = None
    else:
        records = source.records[:num]
        files = [r.file for r in records]
        truth = {Path(r.file): torch.as_tensor(r.boxes) for r in records}
    if not files:
        raise FileNotFoundError(f"no images found in {images}")
    return visualize(model, files[:num], out_dir, names, score_threshold=score_threshold,
                     ground_truth=truth, scale=scale, top=top)
