"""The contract between the trainer and a task (classification, detection, segmentation).

The trainer calls nothing but what `Task` declares; optional parts have working defaults, so a
new task overrides `collate`, `train_step` and `evaluate` and, where it has them, the rest.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

SKIPPED = "skipped"  # batch key: paths of unreadable samples the collate dropped (counted, reported)


@dataclass
class Evaluation:
    """What an evaluation returns: metrics to log, and the task's own predictions (e.g. COCO
    detections) for `Task.save_evaluation` to write."""

    metrics: dict = field(default_factory=dict)
    predictions: Any = None
    details: dict = field(default_factory=dict)  # what metrics.json adds to the metrics (per class)


class Task:
    best_metric: str | None = None  # metric of `evaluate` that picks best.pth; None: no best.pth
    best_higher: bool = False  # whether a higher `best_metric` is better
    # the names of the classes, as the model numbers them: recorded in every weights file, so a
    # predictor needs no training data (torchvision's Weights.meta["categories"])
    categories: list[str] | None = None

    def batch_groups(self, dataset) -> list[int] | None:
        """A group id per training sample to batch within (e.g. aspect ratios); None: no groups."""
        return None

    def collate(self, samples: list) -> dict:
        """A batch dict; under SKIPPED, the paths of samples that could not be read."""
        raise NotImplementedError

    def train_step(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
        """The loss to minimise, and per-sample sums to log as train_<key> means, with the number
        of samples: e.g. {"loss": loss * n, "error": wrong, "samples": n}."""
        raise NotImplementedError

    def evaluate(self, model: nn.Module, loader, accelerator) -> Evaluation:
        """Metrics over the whole loader, each sample counted once across processes (on the main
        process; others may return empty metrics)."""
        raise NotImplementedError

    def backbone_state(self, model: nn.Module) -> dict | None:
        """The backbone's weights, for the next task's `backbone_weights`; None if the model is
        not itself a backbone."""
        return None

    def weights_metadata(self, model: nn.Module) -> dict[str, str]:
        """What the run's weights files are (registry backbone, options, input convention), as
        safetensors metadata; every file the trainer writes carries it."""
        return {}

    def save_evaluation(self, evaluation: Evaluation, out_dir: Path) -> Path:
        """Write the final evaluation under `out_dir` (metrics.json, and what the task adds)."""
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "metrics.json"
        path.write_text(json.dumps({"metrics": evaluation.metrics}, indent=2))
        return path
