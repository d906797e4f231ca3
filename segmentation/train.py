"""Training semantic segmenters from a config: data, model, the shared trainer.

    python -m segmentation.train --config <yaml> [key=value ...]   # the library's entry point
"""

from pathlib import Path

from engine.checks import backbone_weights, check_fine_tuning_values, check_run_values
from engine.cli import run_tool, train_from_command_line
from engine.config import check_choice, load_config, to_builtin
from engine.run import Recipe, run
from engine.tta import views

from .coco import coco_pairs
from .config import SegmentationConfig
from .data import VOC_CLASSES, SegmentationDataset, build_transform, folder_pairs, voc_pairs
from .model import build_segmenter, load_segmenter_weights
from .task import SegmentationTask


def load_segmentation_config(path=None, overrides=(), *, training: bool = True):
    """As `detection.load_detection_config`: `training=False` needs no model.backbone_weights."""
    return load_config(SegmentationConfig, path, overrides,
                       check=check_fine_tuning_values if training else check_run_values)


def build_dataset(cfg, split: str, train: bool) -> SegmentationDataset:
    data = cfg.data
    check_choice("data.kind", data.kind, ("voc", "folder", "coco"))
    check_choice("data.on_bad_sample", data.on_bad_sample, ("error", "skip"))
    name = data.train_split if train else data.val_split
    if data.kind == "voc":
        pairs = voc_pairs(data.root, name)
    elif data.kind == "coco":  # VOC's classes, as torchvision's reference
        pairs = coco_pairs(data.root, name, train)
    else:
        pairs = folder_pairs(Path(data.root) / name)
    transform = build_transform(train, data.crop_size, tuple(data.scale_range), data.flip, data.base_size,
                                data.eval_size)
    dataset = SegmentationDataset(pairs, data.classes or VOC_CLASSES, transform, seed=cfg.train.seed,
                                  on_bad_image=data.on_bad_sample)
    checked = dataset.checked(f"{split} split ({data.root}, {name})")
    if not len(checked):
        raise ValueError(f"no usable images in the {split} split of {data.root}")
    return checked


def build_datasets(cfg) -> tuple[SegmentationDataset, SegmentationDataset]:
    return build_dataset(cfg, "train", train=True), build_dataset(cfg, "val", train=False)


def build_model(cfg, num_classes: int | None = None):
    m = cfg.model
    classes = m.num_classes or num_classes
    if classes is None:
        raise ValueError("model.num_classes is not set and no data set gives it")
    model = build_segmenter(m.backbone, head=m.head, num_classes=classes, aux_loss=m.aux_loss,
                            output_stride=m.output_stride, backbone_weights=backbone_weights(m),
                            norm=m.norm, dropout=m.dropout, **to_builtin(m.options))
    if m.weights:
        load_segmenter_weights(model, m.weights)
    return model


RECIPE = Recipe(datasets=build_datasets,
                model=lambda cfg, train_set: build_model(cfg, len(train_set.classes)),
                task=lambda cfg, train_set, val_set: SegmentationTask((val_set or train_set).classes,
                                                                      views(cfg.eval.tta)))


def train_segmenter(cfg) -> dict:
    """Train the segmenter `cfg` describes; returns its last evaluation's metrics."""
    return run(cfg, RECIPE)


def main(argv=None) -> None:
    train_from_command_line("Train an FCN or DeepLabV3 segmenter.", load_segmentation_config,
                            train_segmenter, argv)


if __name__ == "__main__":
    run_tool(main)
