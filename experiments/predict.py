"""tools/predict.py's work: a trained detector, classifier or segmenter run on a user's images.

Each image gets its predictions in one JSON file (`image_id` = the file's name) and a drawing
(PNG) under the output folder; an image that cannot be read is reported and skipped, never the
end of the run; the JSON is written whole or not at all.
"""

import glob
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from engine.checkpoint import atomic_write_text
from engine.data import IMAGE_EXTENSIONS, BadImageError, decode_image

from .tasks import load_task_config, task_tools


def find_images(inputs: list[str]) -> list[Path]:
    """Image files named by paths, folders (their images, sorted) and glob patterns."""
    files = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        elif path.is_file():
            files.append(path)
        elif glob.has_magic(item):
            files += sorted(Path(p) for p in glob.glob(item) if Path(p).is_file())
        else:
            raise FileNotFoundError(f"no such image, folder or pattern: {item}")
    if not files:
        raise FileNotFoundError(f"no images found in {' '.join(inputs)}")
    return files


def predict(config, checkpoint: Path, inputs: list[str], out: Path, *, score: float = 0.5,
            batch: int = 1, task: str | None = None) -> dict:
    """Predictions for every readable image; returns {"written": [...], "skipped": [...]}."""
    task, cfg = load_task_config(config, task)
    files = find_images(inputs)
    runner = task_tools(task).predictor(cfg, checkpoint, score)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records, skipped = [], []
    for start in tqdm(range(0, len(files), batch), desc=f"predict ({task})", unit="batch"):
        images, names = [], []
        for file in files[start:start + batch]:
            try:
                images.append(decode_image(file, exif_orientation=True))
                names.append(file)
            except BadImageError as error:
                skipped.append(str(error))
                print(f"skipped: {error}")
        if images:
            records += runner.run(images, names, out)
    path = out / "predictions.json"
    atomic_write_text(path, json.dumps(records))
    print(f"{len(files) - len(skipped)} images predicted, {len(skipped)} skipped; written {path} "
          f"and the drawings under {out}")
    return {"predictions": path, "records": records, "skipped": skipped}


def _save_png(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path)


class DetectionRunner:
    """Detections as COCO results (category ids of the training annotations), drawn with the
    evaluation's drawing (boxes, names, scores, masks)."""

    def __init__(self, cfg, checkpoint, score: float):
        from detection.predict import Predictor

        self.predictor, self.score = Predictor(cfg, checkpoint), score

    def run(self, images, files, out: Path) -> list[dict]:
        from detection.evaluation import coco_bbox, encode_masks
        from detection.visualize import draw

        records = []
        for image, file, found in zip(images, files, self.predictor.predict(images, len(images))):
            keep = found["scores"] >= self.score
            found = {k: v[keep] for k, v in found.items()}
            masks = encode_masks(found["masks"]) if "masks" in found else None
            for i, (box, label, value) in enumerate(zip(found["boxes"].numpy(), found["labels"].tolist(),
                                                        found["scores"].tolist())):
                record = {"image_id": file.name, "category_id": self.predictor.category_ids[label - 1],
                          "category": self.predictor.class_names[label - 1], "score": value,
                          "bbox": coco_bbox(box)}
                if masks is not None:
                    record["segmentation"] = masks[i]
                records.append(record)
            canvas = draw(image, found, self.predictor.class_names, self.score)
            _save_png(canvas.permute(1, 2, 0).numpy(), out / f"{file.stem}.png")
        return records


class ClassificationRunner:
    """Top-5 classes, with the evaluation's test transform (ImageNet: shorter side 256, centre
    224; CIFAR-style presets: the image scaled to the training size)."""

    def __init__(self, cfg, checkpoint, score: float):
        from backbones import load_weights
        from classification.datasets import build_transforms
        from classification.pretrain import build_model, build_task

        self.cfg, self.task = cfg, build_task(cfg)
        self.names = classification_names(cfg)
        self.model = load_weights(build_model(cfg, len(self.names)), checkpoint).eval()
        self.transform = build_transforms(cfg.data)[1]

    def run(self, images, files, out: Path) -> list[dict]:
        from classification.data import ClassificationDataset
        from classification.transforms import RESIZING

        if self.cfg.data.preset not in RESIZING:
            size = self.cfg.data.image_size
            images = [np.asarray(Image.fromarray(i).resize((size, size), Image.BILINEAR)) for i in images]
        dataset = ClassificationDataset(images, [0] * len(images), self.names, **self.transform)
        batch = self.task.collate([dataset[i] for i in range(len(dataset))])
        with torch.no_grad():
            scores = self.task.predict(self.model, self.task.images(batch)).float()
        probabilities = scores if self.task.averages_views else scores.softmax(1)
        top = probabilities.topk(min(5, probabilities.shape[1]), dim=1)
        return [{"image_id": file.name, "top5": [{"class": self.names[i], "score": p}
                                                 for p, i in zip(values.tolist(), indices.tolist())]}
                for file, values, indices in zip(files, top.values, top.indices)]


def classification_names(cfg) -> list[str]:
    """The class names training used (the data's folders), or numbered from model.num_classes."""
    from classification.data import scan_image_folder

    try:
        if cfg.data.kind == "imagefolder":
            return scan_image_folder(Path(cfg.data.root) / cfg.data.train_split)[2]
    except FileNotFoundError:
        pass
    count = cfg.model.num_classes or cfg.data.num_classes
    return [f"class {i}" for i in range(count)]


class SegmentationRunner:
    """Per-pixel classes as a PNG of class indices (<name>_mask.png) and drawn over the image;
    the JSON lists the fraction of the image each class covers."""

    def __init__(self, cfg, checkpoint, score: float):
        from engine.tta import views
        from segmentation.data import VOC_CLASSES, build_transform
        from segmentation.model import load_segmenter_weights
        from segmentation.task import SegmentationTask
        from segmentation.train import build_model

        self.names = list(cfg.data.classes or VOC_CLASSES)
        self.model = load_segmenter_weights(build_model(cfg, len(self.names)), checkpoint).eval()
        self.transform = build_transform(train=False)
        self.task = SegmentationTask(self.names, views(cfg.eval.tta))  # evaluation's test-time views

    def run(self, images, files, out: Path) -> list[dict]:
        from torchvision.utils import draw_segmentation_masks

        records = []
        for image, file in zip(images, files):  # one at a time: sizes differ
            tensor = self.transform(image=image)["image"][None]
            with torch.no_grad():
                labels = self.task.logits(self.model, tensor)[0].argmax(0)
            _save_png(labels.numpy().astype(np.uint8), out / f"{file.stem}_mask.png")
            present = labels.unique().tolist()
            masks = torch.stack([labels == c for c in present])
            canvas = draw_segmentation_masks(torch.from_numpy(image).permute(2, 0, 1), masks, alpha=0.5)
            _save_png(canvas.permute(1, 2, 0).numpy(), out / f"{file.stem}.png")
            records.append({"image_id": file.name, "classes": {
                self.names[c]: float((labels == c).float().mean()) for c in present}})
        return records
