"""The schema of a classification (pretraining) config: every key a YAML file or a `key=value`
override may set, with the paper's CIFAR-10 protocol as defaults."""

from dataclasses import dataclass, field

from engine.config import OptimConfig, RunConfig
from engine.tta import TTAConfig

from . import loss, timm_input


@dataclass
class ModelConfig:
    name: str = "cifar_resnet20"
    num_classes: int | None = None  # None: the data set's number of classes
    options: dict = field(default_factory=dict)  # backbone options, e.g. {shortcut: A}
    weights: str | None = None  # a checkpoint / state dict to start from


@dataclass
class TimmInputConfig:
    """`data.preset: timm`: timm's ImageNet input (`timm.data.create_transform`'s train and eval
    pipelines), under timm's names and defaults."""

    train_size: int = 224  # RandomResizedCrop output
    scale: list = field(default_factory=lambda: [0.08, 1.0])  # RandomResizedCrop area range
    ratio: list = field(default_factory=lambda: [3 / 4, 4 / 3])  # and aspect-ratio range
    hflip: float = 0.5
    auto_augment: str | None = None  # e.g. rand-m6-mstd0.5-inc1 (RandAugment), timm's policy strings
    color_jitter: float = 0.4  # timm's default; off when auto_augment is set, as in timm
    train_interpolation: str = "random"  # bilinear | bicubic | random (either, per sample)
    test_size: int = 224  # centre crop
    crop_pct: float = 0.875  # the test image is resized to test_size / crop_pct, then cropped
    interpolation: str = "bicubic"  # test resize


@dataclass
class MixupConfig:
    """`timm.data.Mixup` on training batches; off while both alphas are 0."""

    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    prob: float = 1.0  # of mixing a batch at all
    switch_prob: float = 0.5  # of CutMix rather than Mixup, when both are on
    mode: str = "batch"  # batch | pair | elem: one draw per batch, per pair, per sample


@dataclass
class LossConfig:
    name: str = "ce"  # ce (softmax cross-entropy, the paper's) | bce (timm's BinaryCrossEntropy)
    smoothing: float = 0.0  # label smoothing
    bce_target_thresh: float | None = None  # bce: binarise (mixed) targets above this


@dataclass
class DataConfig:
    kind: str = "imagefolder"  # imagefolder | cifar10 (python batches) | synthetic
    root: str = ""  # imagefolder: holds <train_split>/ and <val_split>/; cifar10: the batches folder
    train_split: str = "train"
    val_split: str = "val"
    preset: str = "cifar"  # augmentation: cifar | imagenet (the paper's) | timm (`timm:`) | none
    holdout: int = 0  # >0: validate on this many training images held out (the paper's 45k/5k)
    in_memory: bool = False  # decode every image once into RAM (small images such as CIFAR)
    batch_augment: bool = False  # cifar/none: augment and normalise uint8 batches on the device
    # (the imagenet preset always does: see classification/imagenet_input.py)
    resident: bool = False  # cifar + batch_augment: the whole uint8 set on the device, no loader
    decode_on_device: bool = False  # imagenet: training JPEGs decoded on the device (nvJPEG on a GPU)
    on_bad_sample: str = "skip"  # skip (counted, reported each epoch) | error
    ten_crop: bool = False  # imagenet: 10-crop testing (Tables 2, 3)
    # imagenet: fully-convolutional testing at these shorter sides, with flips, softmax scores
    # averaged (Table 4: [224, 256, 384, 480, 640]); [] = the single centre crop (or 10-crop)
    multi_scale_test: list = field(default_factory=list)
    timm: TimmInputConfig = field(default_factory=TimmInputConfig)
    mixup: MixupConfig = field(default_factory=MixupConfig)  # Mixup / CutMix of training batches
    # synthetic data (tests, smoke runs)
    num_train: int = 256
    num_val: int = 64
    image_size: int = 32
    num_classes: int = 10


@dataclass
class ClassificationEvalConfig:
    tta: TTAConfig = field(default_factory=TTAConfig)  # flip: softmax of the image and its mirror


@dataclass
class ClassificationConfig(RunConfig):
    task: str = "classification"
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=0.1, lr_batch=128))
    eval: ClassificationEvalConfig = field(default_factory=ClassificationEvalConfig)


def classification_problems(cfg) -> list[str]:
    """Out-of-range values of the classification sections (`loss`, `data`); `data.timm` keys set
    with another preset would be ignored, so they are refused."""
    found = loss.problems(cfg.loss, cfg.data.mixup) + timm_input.problems(cfg.data.timm)
    if cfg.data.preset != "timm" and cfg.data.timm != TimmInputConfig():
        found.append(f"data.timm is set but data.preset={cfg.data.preset!r}: timm's input is "
                     f"data.preset=timm")
    if cfg.data.ten_crop and cfg.data.preset != "imagenet":
        found.append(f"data.ten_crop=true is the paper's ImageNet test (224 crops of the 256 "
                     f"square): it needs data.preset=imagenet, not {cfg.data.preset!r}")
    return found
