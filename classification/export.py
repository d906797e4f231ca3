"""A classifier (any registry backbone with its classifier) to ONNX, with a dynamic batch, its
logits checked against PyTorch's to 1e-4 at export time."""

from pathlib import Path

import numpy as np
import torch

from engine.onnx import ExportError, export_checked

TOLERANCE = 1e-4


def export_classifier(model, path: str | Path, size: int, *, what: str = "the classifier") -> dict:
    """`model` (logits of NCHW float images) to `path`; returns the check's figures."""
    images = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))

    def check(torch_logits, onnx_outputs):
        difference = float(np.abs(onnx_outputs[0] - torch_logits.numpy()).max())
        if not difference <= TOLERANCE:
            raise ExportError(f"{what}: ONNX logits differ from PyTorch's by {difference:.2e} "
                              f"(tolerance {TOLERANCE:.0e})")
        return {"max_abs_difference": difference, "checked_on": f"2 random {size}x{size} images"}

    return export_checked(model.eval(), (images,), path, check, what=what, dynamo=True,
                          input_names=["images"], output_names=["logits"],
                          dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))


def export_run(cfg, checkpoint, out: Path, size: int | None = None, height=None, width=None) -> dict:
    """A trained classifier run (its config and a checkpoint) to ONNX, checked at its test size."""
    if height or width:
        raise ExportError("a classifier is exported for square images of any batch: give --size, "
                          "not --height / --width")
    from .datasets import test_input_size
    from .predict import Predictor

    model = Predictor.from_run(cfg, checkpoint).model
    return export_classifier(model, out, size or test_input_size(cfg.data),
                             what=f"classifier {cfg.model.name!r}")


def export_backbone(name: str, weights, out: Path, size: int | None = None) -> dict:
    """A registry backbone (with its classifier), random or with `weights`, to ONNX."""
    from backbones import backbone_input_size, create_backbone, load_weights

    model = create_backbone(name)
    if weights:
        load_weights(model, weights)
    return export_classifier(model, out, size or backbone_input_size(name), what=f"backbone {name!r}")
