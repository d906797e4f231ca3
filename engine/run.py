"""One sequence for every task: seed -> datasets -> model -> task -> fit."""

from collections.abc import Callable
from dataclasses import dataclass

from accelerate.utils import set_seed

from .trainer import Trainer


@dataclass(frozen=True)
class Recipe:
    """How a task package builds a run from its config."""

    datasets: Callable  # cfg -> (train set, val set or None)
    model: Callable  # (cfg, train set) -> nn.Module
    task: Callable  # (cfg, train set, val set) -> Task


def run(cfg, recipe: Recipe) -> dict:
    """Train `cfg` to its end (or `train.stop_at`); returns the last evaluation's metrics.

    The seed is set before the data and the model are built: their randomness is part of the run.
    """
    set_seed(cfg.train.seed)
    train_set, val_set = recipe.datasets(cfg)
    model = recipe.model(cfg, train_set)
    task = recipe.task(cfg, train_set, val_set)
    return Trainer(cfg, model, task, train_set, val_set).fit()
