"""The schema of a semantic segmentation config; defaults follow torchvision's segmentation
reference: SGD lr 0.02 for 8 GPUs x 4 images, poly schedule (power 0.9), 30 epochs, aux loss,
random rescale 0.5-2.0 of a 520 base (here: of the image) and 480 crops."""

from dataclasses import dataclass, field

from engine.config import OptimConfig, RunConfig, TrainConfig
from engine.schedule import ScheduleConfig
from engine.tta import TTAConfig


@dataclass
class SegmenterConfig:
    backbone: str = "resnet50"  # a registry ResNet or plain net
    head: str = "fcn"  # fcn | deeplabv3
    num_classes: int | None = None  # None: the data set's classes (VOC: 21, background included)
    aux_loss: bool = True
    output_stride: int | None = 8  # 8 | 16 | 32; null: the backbone's own (CIFAR nets: 4)
    backbone_weights: str | None = None  # e.g. a pretraining run's backbone.safetensors
    weights: str | None = None  # a whole segmenter: our checkpoint or a torchvision state dict
    norm: str = "bn"  # of the backbone; gn and syncbn also of the heads
    dropout: float = 0.1  # the heads' dropout before their classifier (torchvision's 0.1)
    options: dict = field(default_factory=dict)  # backbone options, or atrous_rates (deeplabv3)


@dataclass
class SegmentationDataConfig:
    kind: str = "voc"  # voc (VOC2012 SegmentationClass) | folder (images/ + masks/) | coco (VOC classes)
    root: str = "data/VOCdevkit/VOC2012"  # voc: holds JPEGImages/, SegmentationClass/, ImageSets/;
    # coco: holds annotations/instances_<split>.json and <split>/ (e.g. train2017, val2017)
    train_split: str = "train"  # voc: ImageSets/Segmentation/<split>.txt; folder: <root>/<split>/
    val_split: str = "val"
    classes: list | None = None  # folder: class names by label (default: VOC's 21)
    crop_size: int = 480
    scale_range: list = field(default_factory=lambda: [0.5, 2.0])  # random rescale before the crop
    # null: scale_range multiplies each image's own size; a number: the shorter side becomes a
    # random whole number in scale_range x base_size (torchvision's reference: 520 -> 260..1040)
    base_size: int | None = None
    # null: evaluated at the image's own size; a number: the shorter side resized to it (the mask
    # by nearest neighbour) and scored there, as torchvision's reference (520)
    eval_size: int | None = None
    flip: bool = True
    on_bad_sample: str = "error"  # error | skip (counted and reported)


@dataclass
class SegmentationEvalConfig:
    tta: TTAConfig = field(default_factory=TTAConfig)  # flip, scales: logits averaged at full size


@dataclass
class SegmentationConfig(RunConfig):
    task: str = "segmentation"
    name: str = "segmenter"
    output_dir: str = "outputs/segmenter"
    model: SegmenterConfig = field(default_factory=SegmenterConfig)
    data: SegmentationDataConfig = field(default_factory=SegmentationDataConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=0.02, lr_batch=32))
    schedule: ScheduleConfig = field(default_factory=lambda: ScheduleConfig(
        kind="poly", unit="epoch", total=30, milestones=[]))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        batch_size=32, num_workers=4, log_every=20, eval_every=0, ckpt_every=1000))
    eval: SegmentationEvalConfig = field(default_factory=lambda: SegmentationEvalConfig())
