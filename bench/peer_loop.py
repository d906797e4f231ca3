"""One epoch of cifar_resnet20 training two ways, side by side on the same machine: the usual
reference loop (torchvision ImageFolder + transforms, DataLoader workers, a hand-written SGD loop,
as most CIFAR ResNet repositories do) and this toolkit's trainer (images decoded once, batches
augmented in the training process, channels-last). Same model, batch, optimiser and seed; both
then tested by one shared evaluation."""

import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
import torchvision.transforms as T
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from backbones import create_backbone, load_weights
from classification.pretrain import RECIPE, build_model, load_pretrain_config
from classification.transforms import CIFAR_MEAN, CIFAR_STD
from engine.run import run


def _sgd(model, lr=0.1):
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)


def reference_epoch(root: Path, batch_size: int = 128, workers: int = 2, seed: int = 0):
    """(model, seconds, images trained on) after one epoch the usual way."""
    torch.manual_seed(seed)
    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize(CIFAR_MEAN, CIFAR_STD)])
    start = time.perf_counter()
    train = torchvision.datasets.ImageFolder(str(Path(root) / "train"), transform)
    loader = DataLoader(train, batch_size, shuffle=True, num_workers=workers, drop_last=True)
    model = create_backbone("cifar_resnet20", num_classes=len(train.classes)).train()
    optimizer = _sgd(model)
    for images, labels in tqdm(loader, desc="reference loop", mininterval=5):
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()
    return model, time.perf_counter() - start, len(loader) * batch_size


def toolkit_epoch(config: Path, root: Path, seed: int = 0):
    """(model, decode seconds, epoch seconds, images trained on) after one epoch with the
    toolkit's trainer."""
    with tempfile.TemporaryDirectory() as out:
        cfg = load_pretrain_config(config, [
            f"output_dir={out}", f"data.root={root}", "schedule.unit=epoch", "schedule.total=1",
            "schedule.milestones=[]", "schedule.warmup=0", f"train.seed={seed}"])
        seen = {}

        def timed_datasets(cfg):  # no validation set: test_error tests both models alike
            start = time.perf_counter()
            train_set, _ = RECIPE.datasets(cfg)
            seen.update(decode=time.perf_counter() - start, classes=len(train_set.classes),
                        samples=len(train_set))
            return train_set, None

        start = time.perf_counter()
        run(cfg, replace(RECIPE, datasets=timed_datasets))
        seconds = time.perf_counter() - start - seen["decode"]
        model = load_weights(build_model(cfg, seen["classes"]), Path(out) / "final.safetensors")
        images = seen["samples"] // cfg.train.batch_size * cfg.train.batch_size  # full batches
        return model, seen["decode"], seconds, images


@torch.no_grad()
def test_error(model, root: Path) -> float:
    """Top-1 error on root/test, read the same way for both."""
    transform = T.Compose([T.ToTensor(), T.Normalize(CIFAR_MEAN, CIFAR_STD)])
    test = torchvision.datasets.ImageFolder(str(Path(root) / "test"), transform)
    wrong = 0
    model.eval()
    for images, labels in DataLoader(test, batch_size=500, num_workers=2):
        wrong += (model(images).argmax(1) != labels).sum().item()
    return wrong / len(test)
