"""ONNX export checked at export time: the file is written under a temporary name, run by
onnxruntime on the same inputs as PyTorch, and moved into place only when the caller's check of
the two outputs passes. An operator or model the exporter cannot handle is an ExportError that
says which."""

import os
import re
import warnings
from pathlib import Path

import torch

from .checkpoint import temporary_path

LEGACY_EXPORT_WARNING = "You are using the legacy TorchScript-based ONNX export"


class ExportError(RuntimeError):
    """A model that cannot be exported to ONNX, or whose export does not compute what PyTorch does."""


def export_checked(model, inputs: tuple, path: str | Path, check, *, what: str, dynamo: bool,
                   **export_options) -> dict:
    """Export `model(*inputs)` to `path`; `check(torch_outputs, onnx_outputs)` returns a report
    (dict) or raises ExportError. Returns the report."""
    try:
        import onnxruntime
    except ImportError as error:
        raise ExportError("ONNX export needs the `export` extra: pip install -e '.[export]' "
                          "(onnx, onnxruntime, onnxscript)") from error
    path = Path(path)
    temporary = temporary_path(path)
    try:
        if dynamo:
            export_options.setdefault("external_data", False)  # one self-contained file
        try:
            with warnings.catch_warnings():
                if not dynamo:  # asked for by name, where the exporter of today cannot (the caller says why)
                    warnings.filterwarnings("ignore", LEGACY_EXPORT_WARNING, DeprecationWarning)
                torch.onnx.export(model, inputs, str(temporary), dynamo=dynamo, **export_options)
        except Exception as error:
            raise ExportError(f"cannot export {what} to ONNX: {_reason(error)}") from error
        session = onnxruntime.InferenceSession(str(temporary), providers=["CPUExecutionProvider"])
        feeds = {i.name: t.detach().cpu().numpy() for i, t in zip(session.get_inputs(), _flat(inputs))}
        onnx_outputs = session.run(None, feeds)
        with torch.no_grad():
            torch_outputs = model(*inputs)
        report = check(torch_outputs, onnx_outputs)
        os.replace(temporary, path)
        return report
    finally:
        temporary.unlink(missing_ok=True)
        temporary.with_name(temporary.name + ".data").unlink(missing_ok=True)


def _reason(error: Exception) -> str:
    """The operator the exporter could not translate, where its message names one."""
    text = str(error)
    found = re.search(r"op='([\w.]+)'", text) or re.search(r"operator '([\w:.]+)'", text)
    if found:
        return f"operator {found.group(1)} has no ONNX translation"
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def _flat(inputs) -> list:
    """The tensors of (possibly nested list) inputs, in the order the exported graph takes them."""
    if isinstance(inputs, torch.Tensor):
        return [inputs]
    return [t for item in inputs for t in _flat(item)]
