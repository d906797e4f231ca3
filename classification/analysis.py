"""The paper's analysis measured on a classifier: Fig. 7's layer responses and Sec. 4.1's gradient
norms (`backbones.probes`), on the images the net was trained for.

A `Subject` is a net with its images, built from a training run (`from_run`: its config's test
split under its own test pipeline) or from any weights file the registry loads (`from_weights`:
an ImageFolder or CIFAR batches folder, normalised by the file's recorded input convention).
Responses are summed over every image once, on one process or several (each process takes every
N-th image; the sums are added); gradients are taken in training mode (BN on batch statistics, as
during training) on a copy of the net, so measuring changes nothing.
"""

import copy
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import PartialState
from accelerate.utils import gather_object, reduce, set_seed
from torch.utils.data import DataLoader, Subset

from backbones import create_backbone
from backbones.probes import (
    BlockGradients,
    ResponseRecorder,
    check_probeable,
    check_probeable_name,
    response_layers,
    weight_gradient_norms,
)
from backbones.registry import backbone_input_size
from backbones.weights import check_task, load_state, read_weights, source_name

from .batch_augment import AsStored
from .data import ClassificationDataset, cifar10_batches, scan_image_folder
from .datasets import build_datasets, training_set_as_tested
from .imagenet_input import ImageNetTestCrop
from .pretrain import build_model, build_task, load_classifier_weights, load_pretrain_config
from .task import ClassificationTask

INIT = "init"  # a checkpoint name: the net at initialisation
SINGLE_CROP = ["data.ten_crop=false", "data.multi_scale_test=[]", "data.resident=false"]


@dataclass
class Subject:
    """A net to analyse, its test and training images, and how a batch of them becomes its input.
    `train_set` may be a function making it: only the gradients read it (ImageNet's or CIFAR's
    training split is not decoded for the responses)."""

    name: str
    model: torch.nn.Module
    test_set: ClassificationDataset
    train_set: ClassificationDataset | Callable[[], ClassificationDataset]
    task: ClassificationTask

    def training_images(self) -> ClassificationDataset:
        if callable(self.train_set):
            self.train_set = self.train_set()
        return self.train_set

    def inputs(self, batch: dict) -> torch.Tensor:
        return self.task.images(batch)


def from_run(config, checkpoint, name: str | None = None) -> Subject:
    """A classification run's net (`checkpoint`: one of its checkpoints or weights files, or
    "init": freshly initialised from the run's seed) on its validation split (responses) and its
    training images under the test transform (gradients)."""
    cfg = load_pretrain_config(config, SINGLE_CROP, training=False)
    _, test_set = build_datasets(cfg.data, seed=cfg.train.seed)
    if str(checkpoint) == INIT:  # the net as training starts it: He init from the run's seed
        set_seed(cfg.train.seed)
        model, name = build_model(cfg, len(test_set.classes)), name or f"{cfg.model.name} (init)"
    else:
        model = load_classifier_weights(build_model(cfg, len(test_set.classes)), checkpoint)
    check_probeable(model)
    return Subject(name or cfg.model.name, model, test_set,
                   partial(training_set_as_tested, cfg.data, cfg.train.seed), build_task(cfg))


def from_weights(backbone: str, weights, data, name: str | None = None) -> Subject:
    """Registry net `backbone` with `weights` (its classifier too: any number of classes) on the
    images under `data`: an ImageFolder split (`<class>/<image>`), a folder holding train/ and
    test/ (or val/) splits, or CIFAR-10's python batches. Images are fed at the net's input
    size, normalised as the file records (`input` of its metadata or known layout)."""
    check_probeable_name(backbone)
    state, description = read_weights(weights)
    check_task(description, ("classification", "backbone"), weights, "classifier")
    convention = (description or {}).get("input")
    if not convention:
        raise ValueError(f"{source_name(weights)} records no input convention (mean, std of its "
                         f"input): its images cannot be normalised as it was trained; re-save it with "
                         f"save_weights(..., description=...) or analyse its run (--config)")
    classes = _classifier_rows(state, weights)
    options = {k: v for k, v in (description or {}).get("options", {}).items()
               if k in ("shortcut", "stride_in_1x1")}
    model = create_backbone(backbone, num_classes=classes, **options)
    load_state(model, state, description, source_name(weights))
    side = backbone_input_size(backbone)
    test_set, train_set = _folder_sets(Path(data), side)
    task = ClassificationTask(mean_std=(tuple(convention["mean"]), tuple(convention["std"])))
    return Subject(name or backbone, model, test_set, train_set, task)


def _classifier_rows(state: dict, weights) -> int:
    for key in ("fc.weight", "linear.weight"):
        if key in state:
            return state[key].shape[0]
    raise ValueError(f"{source_name(weights)} holds no classifier (fc.weight): give a whole "
                     f"classifier's weights, or its run's --config and --checkpoint")


def _folder_sets(data: Path, side: int) -> tuple[ClassificationDataset, ClassificationDataset]:
    """(test, train) sets of `data`; a single split serves as both."""
    transform = AsStored() if side <= 64 else ImageNetTestCrop()
    if (data / "test_batch").is_file():
        sets = []
        for train in (False, True):
            images, labels, classes = cifar10_batches(data, train=train)
            sets.append(ClassificationDataset(list(images), labels, classes, uint8_transform=transform))
        return sets[0], sets[1]
    test = next((data / s for s in ("test", "val") if (data / s).is_dir()), None)
    splits = (test, data / "train") if test is not None and (data / "train").is_dir() else (data, data)
    sets = []
    for split in splits:
        paths, labels, classes = scan_image_folder(split)
        dataset = ClassificationDataset(paths, labels, classes, uint8_transform=transform)
        sets.append(dataset.checked(f"images under {split}", same_size=side <= 64))
    return sets[0], sets[1]


def process_state() -> PartialState:
    """This process's place among those `accelerate launch` started (alone without it), without
    an Accelerator's settings: a demo's process has already made its own for training."""
    several = int(os.environ.get("WORLD_SIZE", "1")) > 1
    return PartialState(cpu=several and not torch.cuda.is_available())  # gloo for CPU processes


def pick(count: int, images: int | None) -> list[int]:
    """A fixed spread of `images` indices out of `count` (all without a cap): seeded, so runs of
    any number of processes see the same images; sorted, as the split is."""
    if images is None or images >= count:
        return list(range(count))
    if images < 1:
        raise ValueError(f"--images {images}: give at least 1")
    return sorted(torch.randperm(count, generator=torch.Generator().manual_seed(0))[:images].tolist())


def measure_responses(subject: Subject, *, images: int | None = None, all_convs: bool = False,
                      batch_size: int = 100, state: PartialState | None = None) -> dict:
    """Fig. 7: the std of each layer's response over the test images (`images`: a seeded subset),
    in eval mode as the net is tested. Returns {"net", "images", "layers": [{"name", "stage",
    "std"}]}."""
    if len(subject.test_set) == 0:
        raise ValueError(f"{subject.name}: the test split holds no images")
    state = state or process_state()
    indices = pick(len(subject.test_set), images)
    mine = indices[state.process_index::state.num_processes]
    model = subject.model.to(state.device).eval()
    layers = response_layers(model, all_convs)
    with ResponseRecorder(layers) as recorder, torch.no_grad():
        for batch in _batches(subject, Subset(subject.test_set, mine), batch_size):
            model(subject.inputs(_to(batch, state.device)))
    sums = recorder.sums.to(state.device)
    if state.num_processes > 1:
        sums = reduce(sums, "sum")
    stds = recorder.std(sums)
    return {"net": subject.name, "images": len(indices),
            "layers": [{"name": layer.name, "stage": layer.stage, "std": stds[layer.name]}
                       for layer in layers]}


def measure_gradients(subject: Subject, *, batches: int = 4, batch_size: int = 128,
                      all_convs: bool = False, state: PartialState | None = None) -> dict:
    """Sec. 4.1: the norm of the cross-entropy's gradient with respect to each layer's weights and
    each block's output, averaged over `batches` seeded training batches, at the weights given
    (training-mode BN, on a copy). `stage_ratio`: the first stage's mean block-output gradient
    (per element: its RMS) over the last stage's; well below 1 means gradients vanish toward the
    input. Returns {"net", "batches", "layers": [{"name", "stage", "weight_grad_norm"}], "blocks":
    [{"name", "stage", "grad_norm", "grad_rms"}], "stage_ratio"}."""
    train_set = subject.training_images()
    if len(train_set) == 0:
        raise ValueError(f"{subject.name}: the training split holds no images")
    state = state or process_state()
    order = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(0)).tolist()
    chunks = [order[i * batch_size:(i + 1) * batch_size] for i in range(batches)]
    chunks = [c for c in chunks if c]
    model = copy.deepcopy(subject.model).to(state.device).train()
    layers = response_layers(model, all_convs)
    records = []
    with BlockGradients(model) as blocks:
        for chunk in chunks[state.process_index::state.num_processes]:
            batch = _to(next(iter(_batches(subject, Subset(train_set, chunk), len(chunk)))),
                        state.device)
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(subject.inputs(batch)), batch["label"]).backward()
            records.append(weight_gradient_norms(layers))
    if state.num_processes > 1:
        records, block_records = gather_object(records), gather_object(blocks.records)
    else:
        block_records = blocks.records
    return summarise_gradients(subject.name, layers, blocks.blocks, records, block_records)


def summarise_gradients(net: str, layers, blocks, weight_records: list[dict],
                        block_records: list[dict]) -> dict:
    """Means over batches, per layer and block, and the first-to-last stage ratio."""
    n = len(weight_records)
    layer_rows = [{"name": layer.name, "stage": layer.stage,
                   "weight_grad_norm": sum(r[layer.name] for r in weight_records) / n} for layer in layers]
    block_rows = []
    for name, stage, _ in blocks:
        norm = sum(r[name][0] for r in block_records) / n
        block_rows.append({"name": name, "stage": stage, "grad_norm": norm,
                           "grad_rms": norm / block_records[0][name][1] ** 0.5})
    by_stage = {}
    for row in block_rows:
        if row["stage"] > 0:
            by_stage.setdefault(row["stage"], []).append(row["grad_rms"])
    first, last = by_stage[min(by_stage)], by_stage[max(by_stage)]
    ratio = (sum(first) / len(first)) / (sum(last) / len(last))
    return {"net": net, "batches": n, "layers": layer_rows, "blocks": block_rows, "stage_ratio": ratio}


def _batches(subject: Subject, dataset, batch_size: int):
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=subject.task.collate)


def _to(batch: dict, device) -> dict:
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
