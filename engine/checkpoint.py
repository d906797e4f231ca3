"""Checkpoints that are never half-written and resume exactly.

Saved with `torch.save` to a temporary file (unique to the writing process) in the same folder,
flushed to disk, then renamed over the old one: a crash leaves either the old checkpoint or the
new, never a torn file. Everything in them is a tensor or plain Python data, so they load with
`torch.load(weights_only=True)`.
"""

import errno
import os
import pickle
import random
import zipfile
from pathlib import Path

import numpy as np
import torch

from .errors import CheckpointError


def temporary_path(path: str | Path) -> Path:
    """Where to write `path` before renaming it into place: beside it (same file system, so the
    rename is atomic) and unique to the writing process."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def atomic_write_text(path: str | Path, text: str) -> None:
    """`path` holds the old text or `text`, never a part of it."""
    tmp = temporary_path(path)
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_save(obj, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as error:
        if _disk_full(error):
            kept = "the previous checkpoint is intact" if path.exists() else "no earlier checkpoint"
            raise CheckpointError(f"disk full while writing {path}; {kept}") from error
        raise
    finally:
        tmp.unlink(missing_ok=True)


def cpu_tensors(state: dict) -> dict:
    """A state dict's tensors detached, on the CPU, contiguous: what a file stores."""
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def _disk_full(error: BaseException) -> bool:
    """ENOSPC, whether raised as OSError or wrapped in torch's writer's RuntimeError."""
    while error is not None:
        if getattr(error, "errno", None) == errno.ENOSPC or "No space left" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint's contents, loaded as tensors and plain data only."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(f"not a checkpoint this toolkit can read: {path} (it holds objects "
                              f"other than tensors and plain data)") from error
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(f"not a checkpoint this toolkit can read: {path} (truncated or "
                              f"corrupt: {reason})") from error
    if not isinstance(state, dict):
        raise CheckpointError(f"not a checkpoint this toolkit can read: {path} (holds a "
                              f"{type(state).__name__}, not a dict)")
    return state


def rng_state() -> dict:
    """Python, NumPy and torch (CPU and CUDA) generator states, as tensors and plain data."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos,
                  "has_gauss": has_gauss, "cached": cached},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
