"""Loading weights safely: our checkpoints, torchvision and timm state dicts, .pth or .safetensors,
Detectron's MSRA .pkl models.

Only tensors are ever unpickled (`torch.load(weights_only=True)`; numpy arrays alone for a .pkl);
a pickle that needs code is refused. What the file says it is (`metadata`) must match the model;
keys are mapped by the model's `remap_state_dict`, and any missing, unexpected or mis-shaped key
is an error that lists them, never a silent partial load.
"""

import fnmatch
import logging
import os
import pickle
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn

from . import metadata
from .errors import BackboneError, UnsafeCheckpointError, WeightsMismatchError

log = logging.getLogger("backbones")

# Where a checkpoint dict keeps its weights: ours ("model"), common trainers' and timm's.
_NESTED_KEYS = ("model", "state_dict", "model_state_dict", "state_dict_ema")
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DDP and torch.compile


def read_state_file(path: str | Path) -> dict:
    """Tensors from a `.safetensors` file (its metadata under `meta`), a `.pth`/`.pt`/`.bin`, or a
    Detectron `.pkl` (converted to our names and RGB input), never arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), "pt") as f:
            meta = f.metadata()
        return {"model": load_file(str(path)), metadata.META_KEY: meta}
    if path.suffix == ".pkl":
        from .msra import read_detectron_pkl

        return read_detectron_pkl(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise UnsafeCheckpointError(
            f"refused to load {path}: it is not a plain tensor checkpoint and unpickling it "
            f"would run code ({str(error).splitlines()[0]}). Re-save it as a state dict "
            f"(torch.save(model.state_dict(), ...)) or as safetensors."
        ) from error


def extract_state_dict(checkpoint: Mapping) -> dict:
    """The tensor dict inside a checkpoint, unwrapped from DDP / compile prefixes."""
    for key in _NESTED_KEYS:
        if isinstance(checkpoint.get(key), Mapping):
            checkpoint = checkpoint[key]
            break
    state = {}
    for key, value in checkpoint.items():
        if not isinstance(value, torch.Tensor):
            raise BackboneError(f"checkpoint entry {key!r} is a {type(value).__name__}, not a tensor")
        for prefix in _WRAPPER_PREFIXES:
            key = key.removeprefix(prefix)
        state[key] = value
    return state


def read_weights(source) -> tuple[dict, dict | None]:
    """(state dict, description) of a path or a checkpoint dict; the description is the file's
    own (`metadata.parse`), its known layout, or None (a state dict of unknown origin)."""
    checkpoint = read_state_file(source) if isinstance(source, (str, Path)) else source
    state = extract_state_dict(checkpoint)
    stored = checkpoint.get(metadata.META_KEY) if isinstance(checkpoint, Mapping) else None
    if isinstance(stored, Mapping) and "layout" in stored:  # converted here (Detectron's pkl)
        return state, dict(stored)
    return state, metadata.parse(stored) or metadata.known_layout(state)


def check_task(description: dict | None, tasks: tuple[str, ...], source, what: str, hint: str = "") -> None:
    """A file whose metadata records a run of another task than `tasks` is an error naming both
    (before its keys are compared: a classifier's file in a detector misses every head key)."""
    task = (description or {}).get("task")
    if task and task not in tasks:
        raise metadata.WeightsMismatchError(
            f"{source_name(source)} holds the weights of a {task} run (its metadata says task: {task}), "
            f"not of a {what}{hint}")


def source_name(source) -> str:
    """How messages name a weights source: its path, or "(a state dict)"."""
    return str(source) if isinstance(source, (str, Path)) else "(a state dict)"


def note_undescribed(source, description: dict | None) -> None:
    """Say so when a file cannot be checked against the model (a bare state dict of our names)."""
    if description is None and isinstance(source, (str, Path)):
        log.warning(f"{source} records no architecture (a bare state dict, or a file written before "
                    f"weights files described themselves): its options cannot be checked")


def save_weights(model: nn.Module, path: str | Path, *, description: Mapping[str, str] | None = None,
                 state: Mapping[str, torch.Tensor] | None = None) -> Path:
    """Write `model`'s weights as a `.safetensors` file that says what it is, atomically: the
    public counterpart of `load_weights`, so a backbone built or converted in Python is a file the
    detectors and segmenters accept with its layout checked.

    `description`: the metadata (str -> str) to store, by default `metadata.describe(model,
    task="backbone")` (registry name, architecture options, input convention); `state`: the tensors
    to store, by default `model.state_dict()`. A model with no registry backbone inside needs the
    description given (a task's own model: the trainer's): otherwise its file could not say what
    it is."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"save_weights writes safetensors: name the file <name>.safetensors, not {path}")
    if description is None and metadata.find_backbone(model) is None:
        raise BackboneError(f"{type(model).__name__} holds no registry backbone (create_backbone's), so "
                            f"{path} could not say what it is; build the model with create_backbone")
    description = dict(description if description is not None else metadata.describe(model, task="backbone"))
    if metadata.parse(description) is None:
        raise ValueError(f"the description of {path} lacks format={metadata.FORMAT!r}: use metadata.describe")
    tensors = model.state_dict() if state is None else state
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    _write_safetensors(tensors, path, {k: str(v) for k, v in description.items()})
    return path


def _write_safetensors(tensors: dict, path: Path, meta: dict[str, str]) -> None:
    """Through a temporary file in the same folder, then renamed: a reader never sees half a file."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(tensors, str(tmp), metadata=meta)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _optional(key: str) -> bool:
    """BN's batch counter: absent from frozen-BN and some foreign checkpoints, harmless to miss."""
    return key.endswith("num_batches_tracked")


def _format(keys: Iterable[str], limit: int = 20) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def load_weights(model: nn.Module, source, *, skip: Iterable[str] = ()) -> nn.Module:
    """Load `source` (a path or a state dict / checkpoint dict) into `model`, strictly.

    `skip` holds shell-style patterns of the model's keys to leave as initialised, e.g. ("fc.*",)
    to fine-tune on another number of classes. A file trained as another network (name or
    architecture options, from its metadata or known layout) is refused.
    """
    state, description = read_weights(source)
    note_undescribed(source, description)
    return load_state(model, state, description, source_name(source), skip=skip)


def load_state(model: nn.Module, state: dict, description: dict | None, where: str, *,
               skip: Iterable[str] = ()) -> nn.Module:
    """`load_weights` of a state dict already read, with its description."""
    metadata.check_compatible(model, description, where)
    own = model.state_dict()
    if not set(state) <= set(own) and hasattr(model, "remap_state_dict"):
        state = model.remap_state_dict(state)
    skip = tuple(skip)
    state = {k: v for k, v in state.items() if not any(fnmatch.fnmatch(k, p) for p in skip)}
    expected = {k for k in own if not any(fnmatch.fnmatch(k, p) for p in skip)}

    missing = {k for k in expected - set(state) if not _optional(k)}
    unexpected = {k for k in set(state) - set(own) if not _optional(k)}
    mis_shaped = {
        f"{k} (checkpoint {tuple(state[k].shape)}, model {tuple(own[k].shape)})"
        for k in set(state) & set(own)
        if state[k].shape != own[k].shape
    }
    problems = []
    if missing:
        problems.append(f"missing keys: {_format(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_format(unexpected)}")
    if mis_shaped:
        problems.append(f"shape mismatches: {_format(mis_shaped)}")
    if problems:
        raise WeightsMismatchError(
            f"weights {where} do not fit {type(model).__name__}: " + "; ".join(problems)
        )
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    _take_input_convention(model, description)
    return model


def _take_input_convention(model: nn.Module, description: dict | None) -> None:
    """A backbone loaded from a file expects the file's input (MSRA's: BGR 0-255 converted)."""
    backbone = metadata.find_backbone(model)
    if backbone is not None and description is not None and description.get("input"):
        backbone.input_convention = description["input"]
