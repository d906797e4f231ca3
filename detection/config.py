"""The schema of a detection config; defaults follow torchvision's / detectron2's 1x recipe."""

from dataclasses import dataclass, field
from typing import Any

from engine.config import OptimConfig, RunConfig, TrainConfig
from engine.schedule import ScheduleConfig
from engine.tta import TTAConfig


@dataclass
class DetectorConfig:
    kind: str = "faster_rcnn"  # faster_rcnn | mask_rcnn (instance masks: COCO-format data)
    backbone: str = "resnet50"  # any registry name, timm/<model> included
    head: str = "fpn"  # c4 | vgg | fpn (mask_rcnn: c4 | fpn)
    num_classes: int | None = None  # None: the data set's classes + background
    backbone_weights: str | None = None  # e.g. a pretraining run's backbone.safetensors
    weights: str | None = None  # a whole detector: our checkpoint or a torchvision state dict
    freeze_at: int = 2
    norm: str = "frozen_bn"
    options: dict = field(default_factory=dict)  # routed by name: backbone, head or the detector


@dataclass
class DetectionDataConfig:
    kind: str = "coco"  # coco | voc
    train_annotations: str = ""  # coco: instances JSON (2014 or 2017)
    train_images: str = ""
    val_annotations: str = ""
    val_images: str = ""
    voc_root: str = "data/VOCdevkit"  # voc: folder holding VOC2007/, VOC2012/ (or your folders)
    # "<folder>/<split>": <voc_root>/<folder>/{Annotations,JPEGImages,ImageSets/Main/<split>.txt};
    # a bare "<split>" reads voc_root itself
    voc_train: list = field(default_factory=lambda: ["VOC2007/trainval", "VOC2012/trainval"])
    voc_val: list = field(default_factory=lambda: ["VOC2007/test"])
    classes: Any = None  # voc: class names (default PASCAL's 20), or "auto": read from the XML
    flip: bool = True
    on_bad_sample: str = "error"  # error | skip (counted and reported)


@dataclass
class EvalConfig:
    backend: str = "faster_coco_eval"  # or pycocotools, the reference
    # how the VOC figures count box areas: devkit (the PASCAL devkit's: pixel indices, +1 on each
    # width, height and intersection) | continuous (the same numbers as continuous coordinates);
    # null: devkit for VOC XML data, continuous for COCO JSON (whose boxes are not pixel indices)
    voc_convention: str | None = None
    tta: TTAConfig = field(default_factory=TTAConfig)  # flip, scales (of the test size): boxes merged


@dataclass
class DetectionConfig(RunConfig):
    task: str = "detection"
    name: str = "detector"
    output_dir: str = "outputs/detector"
    model: DetectorConfig = field(default_factory=DetectorConfig)
    data: DetectionDataConfig = field(default_factory=DetectionDataConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=0.02, lr_batch=16))
    schedule: ScheduleConfig = field(default_factory=lambda: ScheduleConfig(
        kind="step", unit="iter", total=90000, milestones=[60000, 80000], warmup=1000,
        warmup_factor=0.001, warmup_kind="linear"))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        batch_size=16, num_workers=4, log_every=20, eval_every=5000, ckpt_every=1000))
    eval: EvalConfig = field(default_factory=EvalConfig)
