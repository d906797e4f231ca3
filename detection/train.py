"""Training detectors from a config: data sources, model, the shared trainer.

    python -m detection.train --config <yaml> [key=value ...]   # the library's entry point
"""

import logging
from pathlib import Path

from engine.checks import backbone_weights, check_fine_tuning_values, check_run_values
from engine.cli import run_tool, train_from_command_line
from engine.config import ConfigError, check_choice, load_config, to_builtin
from engine.run import Recipe, run
from engine.tta import views

from .config import DetectionConfig
from .data import VOC_CLASSES, DetectionDataset, Problems, Source, read_coco, read_voc, voc_class_names
from .evaluation import VOC_CONVENTIONS, coco_ground_truth
from .model import build_faster_rcnn, build_mask_rcnn, load_detector_weights
from .task import DetectionTask
from .transforms import build_detection_transform

log = logging.getLogger("detection")

DETECTORS = {"faster_rcnn": build_faster_rcnn, "mask_rcnn": build_mask_rcnn}


def load_detection_config(path=None, overrides=(), *, training: bool = True):
    """The config at `path` with `overrides`; `training=False` (evaluation, prediction, export,
    where a checkpoint holds every weight) does not ask for model.backbone_weights."""
    return load_config(DetectionConfig, path, overrides,
                       check=check_fine_tuning_values if training else check_run_values)


def read_source(data, split: str, masks: bool = False, classes: tuple | None = None) -> Source:
    """The train or val source of `data` (VOC: several year/split entries joined); `masks`: with
    the instance segmentations (COCO-format data only); `classes`: VOC's, when already known."""
    check_choice("data.kind", data.kind, ("coco", "voc"))
    if data.kind == "coco":
        return read_coco(data[f"{split}_annotations"], data[f"{split}_images"], data.on_bad_sample,
                         masks=masks)
    if masks:
        raise ValueError("model.kind=mask_rcnn needs instance masks, and data.kind=voc reads "
                         "boxes only: use COCO-format annotations with segmentations")
    classes = classes or voc_classes(data)
    parts, first_id = [], 0
    for entry in data[f"voc_{split}"]:
        part = read_voc(_voc_folder(data, entry), str(entry).rpartition("/")[2], classes,
                        on_bad_record=data.on_bad_sample, first_id=first_id)
        parts.append(part)
        first_id = max((r.image_id + 1 for r in part.records), default=first_id)  # ids stay unique
    if not parts:
        raise ValueError(f"data.voc_{split} names no VOC split")
    problems = Problems()
    for part in parts:
        problems.counts.update(part.problems.counts)
        problems.examples += part.problems.examples
    records = [r for part in parts for r in part.records]
    first = parts[0]
    return Source(records, first.category_ids, first.class_names,
                  coco_ground_truth(records, first.category_ids, first.class_names), problems)


def _where(data, split: str) -> str:
    """The annotation file (COCO) or the devkit splits (VOC) a split comes from."""
    if data.kind == "coco":
        return data[f"{split}_annotations"]
    return f"{data.voc_root} {list(data[f'voc_{split}'])}"


def _voc_folder(data, entry) -> Path:
    """The devkit folder of a "<folder>/<split>" entry (a bare "<split>": voc_root itself)."""
    return Path(data.voc_root) / str(entry).rpartition("/")[0]


def voc_classes(data) -> tuple:
    """data.classes: PASCAL's 20 by default, the names given, or ("auto") every name the train
    and val splits' XML files use, sorted, so both splits number them alike."""
    if data.classes is None:
        return VOC_CLASSES
    if data.classes != "auto":
        if isinstance(data.classes, str) or not len(data.classes):
            raise ConfigError(f"data.classes={data.classes!r}: give a list of class names or 'auto'")
        return tuple(str(c) for c in data.classes)
    entries = [*data.voc_train, *data.voc_val]
    names = sorted(set().union(*(voc_class_names(_voc_folder(data, e), str(e).rpartition("/")[2])
                                 for e in entries)))
    if not names:
        raise ValueError(f"data.classes=auto: no object names in the XML files of {entries}")
    log.info(f"data.classes=auto: {len(names)} classes from the annotations: {names}")
    return tuple(names)


def with_masks(cfg) -> bool:
    """Whether the config's detector predicts instance masks (Mask R-CNN)."""
    check_choice("model.kind", cfg.model.kind, DETECTORS)
    return cfg.model.kind == "mask_rcnn"


def build_val_dataset(cfg, classes: tuple | None = None) -> DetectionDataset:
    val = DetectionDataset(read_source(cfg.data, "val", with_masks(cfg), classes),
                           build_detection_transform(False), train=False, seed=cfg.train.seed,
                           on_bad_record=cfg.data.on_bad_sample)
    val = val.checked(f"val images ({_where(cfg.data, 'val')})")
    if not len(val):  # COCOeval would print -1 for every metric
        raise ValueError(f"the validation set ({_where(cfg.data, 'val')}) has no usable images")
    return val


def build_datasets(cfg) -> tuple[DetectionDataset, DetectionDataset]:
    classes = voc_classes(cfg.data) if cfg.data.kind == "voc" else None  # "auto" reads once
    train = DetectionDataset(read_source(cfg.data, "train", with_masks(cfg), classes),
                             build_detection_transform(True, flip=cfg.data.flip), train=True,
                             seed=cfg.train.seed, on_bad_record=cfg.data.on_bad_sample)
    train = train.checked(f"train images ({_where(cfg.data, 'train')})")
    val = build_val_dataset(cfg, classes)
    if train.category_ids != val.category_ids:  # labels index categories: they must agree
        raise ValueError(f"train and val categories differ: {train.category_ids} vs "
                         f"{val.category_ids} ({cfg.data.kind} data)")
    for name, dataset in (("train", train), ("val", val)):
        log.info(f"{name}: {len(dataset)} images; problems: {dataset.problems.report()}")
    return train, val


def build_detector(cfg, num_classes: int | None = None):
    """The FasterRCNN or MaskRCNN a config describes (num_classes: the data's classes +
    background)."""
    m = cfg.model
    classes = m.num_classes or num_classes
    if classes is None:
        raise ValueError("model.num_classes is not set and no data set gives it")
    check_choice("model.kind", m.kind, DETECTORS)
    model = DETECTORS[m.kind](m.backbone, head=m.head, num_classes=classes,
                              backbone_weights=backbone_weights(m), freeze_at=m.freeze_at,
                              norm=m.norm, **to_builtin(m.options))
    if m.weights:
        load_detector_weights(model, m.weights)
    return model


def voc_convention(cfg) -> str:
    """The VOC figures' IoU convention: the config's, devkit for VOC XML data when it names none;
    COCO JSON boxes are continuous coordinates, which the devkit's pixel counting does not fit."""
    chosen, voc = cfg.eval.voc_convention, cfg.data.kind == "voc"
    if chosen is not None and chosen not in VOC_CONVENTIONS:
        raise ConfigError(f"eval.voc_convention={chosen!r}: valid: {', '.join(VOC_CONVENTIONS)} (or null)")
    if chosen == "devkit" and not voc:
        raise ConfigError(f"eval.voc_convention=devkit counts the pixels of VOC XML boxes (1-based, "
                          f"inclusive); data.kind={cfg.data.kind!r} boxes are continuous coordinates: "
                          f"use continuous (or null)")
    return chosen or ("devkit" if voc else "continuous")


def build_task(cfg, train_set=None, val_set=None) -> DetectionTask:
    describe = {"name": cfg.name, "kind": cfg.model.kind, "backbone": cfg.model.backbone,
                "head": cfg.model.head, "data": cfg.data.kind}
    task = DetectionTask(val_set, cfg.eval.backend, describe, masks=with_masks(cfg),
                         views=views(cfg.eval.tta), voc_convention=voc_convention(cfg),
                         voc_boxes=cfg.data.kind == "voc")
    source = train_set if train_set is not None else val_set
    if source is not None:  # label i is categories[i - 1], COCO category category_ids[i - 1]
        task.categories, task.category_ids = list(source.classes), list(source.category_ids)
    return task


RECIPE = Recipe(datasets=build_datasets,
                model=lambda cfg, train_set: build_detector(cfg, len(train_set.classes) + 1),
                task=build_task)


def train_detector(cfg) -> dict:
    """Train the detector `cfg` describes; its last evaluation is written to <output_dir>/eval."""
    return run(cfg, RECIPE)


def main(argv=None) -> None:
    train_from_command_line("Train a Faster R-CNN or Mask R-CNN detector.", load_detection_config,
                            train_detector, argv)


if __name__ == "__main__":
    run_tool(main)
