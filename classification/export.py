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
