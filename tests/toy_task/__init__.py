"""A fourth task in one package and one registration: which quadrant of a dark image holds the
bright square. It shows what a new task supplies (schema, datasets, model, Task, evaluation,
predictor; no exporter) and that the tools train, resume, evaluate and predict it unchanged."""

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from backbones.weights import load_state, read_weights, source_name
from engine.checks import check_run_values
from engine.config import OptimConfig, RunConfig, load_config
from engine.evaluate import evaluate_model
from engine.run import Recipe
from engine.task import Evaluation, Task
from engine.tasks import TaskSpec, register_task
from engine.tta import TTAConfig

QUADRANTS = ["top left", "top right", "bottom left", "bottom right"]


@dataclass
class ToyData:
    num_train: int = 64
    num_val: int = 24
    size: int = 16


@dataclass
class ToyEval:
    tta: TTAConfig = field(default_factory=TTAConfig)


@dataclass
class ToyConfig(RunConfig):
    task: str = "toy_task"
    width: int = 8
    data: ToyData = field(default_factory=ToyData)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=0.05, lr_batch=16))
    eval: ToyEval = field(default_factory=ToyEval)


def load_toy_config(path=None, overrides=(), *, training: bool = True):
    return load_config(ToyConfig, path, overrides, check=check_run_values)


def draw(quadrant: int, size: int, rng) -> np.ndarray:
    """A dark HxWx3 uint8 image, its `quadrant` holding a bright square."""
    image = rng.integers(0, 40, (size, size, 3), dtype=np.uint8)
    half = size // 2
    top, left = (quadrant // 2) * half, (quadrant % 2) * half
    image[top + 1:top + half - 1, left + 1:left + half - 1] = 230
    return image


def to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255


class Quadrants(torch.utils.data.Dataset):
    classes = QUADRANTS

    def __init__(self, count: int, size: int, seed: int):
        rng = np.random.default_rng(seed)
        self.labels = [int(q) for q in rng.integers(0, 4, count)]
        self.images = [to_tensor(draw(q, size, rng)) for q in self.labels]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        return self.images[index], self.labels[index]


def build_model(cfg, train_set=None) -> nn.Module:
    w = cfg.width
    return nn.Sequential(nn.Conv2d(3, w, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(4 * w, len(QUADRANTS)))


class QuadrantTask(Task):
    best_metric, best_higher = "val_error", False
    categories = QUADRANTS

    def collate(self, samples: list) -> dict:
        return {"image": torch.stack([s[0] for s in samples]), "label": torch.tensor([s[1] for s in samples])}

    def train_step(self, model, batch: dict):
        logits = model(batch["image"])
        loss = F.cross_entropy(logits.float(), batch["label"])
        n = len(batch["label"])
        wrong = (logits.argmax(1) != batch["label"]).sum()
        return loss, {"loss": loss.detach() * n, "error": wrong, "samples": n}

    def evaluate(self, model, loader, accelerator) -> Evaluation:
        wrong = total = 0
        for batch in loader:
            miss = accelerator.gather_for_metrics(model(batch["image"]).argmax(1) != batch["label"])
            wrong, total = wrong + int(miss.sum()), total + len(miss)
        return Evaluation({"val_error": wrong / total, "val_images": total})


RECIPE = Recipe(datasets=lambda cfg: (Quadrants(cfg.data.num_train, cfg.data.size, cfg.train.seed),
                                      Quadrants(cfg.data.num_val, cfg.data.size, 1000 + cfg.train.seed)),
                model=build_model, task=lambda cfg, train_set, val_set: QuadrantTask())


def evaluate_checkpoint(cfg, checkpoint, out_dir, batch_size: int = 8) -> dict:
    val_set = Quadrants(cfg.data.num_val, cfg.data.size, 1000 + cfg.train.seed)
    state, description = read_weights(checkpoint)
    model = load_state(build_model(cfg), state, description, source_name(checkpoint))
    return evaluate_model(model, QuadrantTask(), val_set, cfg.train, out_dir, batch_size)


class Predictor:
    def __init__(self, cfg, checkpoint):
        state, description = read_weights(checkpoint)
        self.model = load_state(build_model(cfg), state, description, source_name(checkpoint)).eval()
        self.class_names = description["categories"]  # as the trainer recorded them
        self.size = cfg.data.size

    @torch.no_grad()
    def predict(self, images) -> list[dict]:
        batch = torch.stack([to_tensor(np.asarray(image)[:self.size, :self.size]) for image in images])
        return [{"quadrant": self.class_names[int(i)]} for i in self.model(batch).argmax(1)]

    def records(self, result: dict, image_id: str) -> list[dict]:
        return [{"image_id": image_id, **result}]

    def drawings(self, image, result: dict) -> dict:
        return {}


SPEC = register_task(TaskSpec(
    name="toy_task", load_config=load_toy_config, recipe=RECIPE, evaluate=evaluate_checkpoint,
    predictor=Predictor, no_export="the toy task has no exporter"))
