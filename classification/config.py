"""The schema of a classification (pretraining) config: every key a YAML file or a `key=value`
override may set, with the paper's CIFAR-10 protocol as defaults."""

from dataclasses import dataclass, field

from engine.schedule import ScheduleConfig
from engine.trainer import OptimConfig, TrainConfig
from engine.tta import TTAConfig


@dataclass
class ModelConfig:
    name: str = "cifar_resnet20"
    num_classes: int | None = None  # None: the data set's number of classes
    options: dict = field(default_factory=dict)  # backbone options, e.g. {shortcut: A}
    weights: str | None = None  # a checkpoint / state dict to start from


@dataclass
class DataConfig:
    kind: str = "imagefolder"  # imagefolder | cifar10 (python batches) | synthetic
    root: str = ""  # imagefolder: holds <train_split>/ and <val_split>/; cifar10: the batches folder
    train_split: str = "train"
    val_split: str = "val"
    preset: str = "cifar"  # augmentation: cifar | imagenet | none
    holdout: int = 0  # >0: validate on this many training images held out (the paper's 45k/5k)
    in_memory: bool = False  # decode every image once into RAM (small images such as CIFAR)
    batch_augment: bool = False  # cifar/none: augment and normalise uint8 batches on the device
    # (the imagenet preset always does: see classification/imagenet_input.py)
    on_bad_image: str = "skip"  # skip (counted, reported each epoch) | error
    ten_crop: bool = False  # imagenet: 10-crop testing (Tables 2, 3)
    # imagenet: fully-convolutional testing at these shorter sides, with flips, softmax scores
    # averaged (Table 4: [224, 256, 384, 480, 640]); [] = the single centre crop (or 10-crop)
    multi_scale_test: list = field(default_factory=list)
    # synthetic data (tests, smoke runs)
    num_train: int = 256
    num_val: int = 64
    image_size: int = 32
    num_classes: int = 10


@dataclass
class ClassificationEvalConfig:
    tta: TTAConfig = field(default_factory=TTAConfig)  # flip: softmax of the image and its mirror


@dataclass
class ClassificationConfig:
    task: str = "classification"  # what the config is for (tools read it; another task is an error)
    name: str = "run"
    output_dir: str = "outputs/run"
    resume: str = "auto"  # auto | none | <path to a checkpoint>
    resume_changes: str = "error"  # error | allow: settings that differ from the checkpoint's
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=0.1, lr_batch=128))
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: ClassificationEvalConfig = field(default_factory=ClassificationEvalConfig)
