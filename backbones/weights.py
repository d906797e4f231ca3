"""Loading weights safely: our checkpoints, torchvision and timm state dicts, .pth or .safetensors.

Only tensors are ever unpickled (`torch.load(weights_only=True)`); a pickle that needs code is
refused. Keys are mapped by the model's `remap_state_dict`, and any missing, unexpected or
mis-shaped key is an error that lists them, never a silent partial load.
"""

import fnmatch
import pickle
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn

from .errors import BackboneError, UnsafeCheckpointError, WeightsMismatchError

# Where a checkpoint dict keeps its weights: ours ("model"), common trainers' and timm's.
_NESTED_KEYS = ("model", "state_dict", "model_state_dict", "state_dict_ema")
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DDP and torch.compile


def read_state_file(path: str | Path) -> dict:
    """Tensors from a `.safetensors` file or a `.pth`/`.pt`/`.bin`, never arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
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
    to fine-tune on another number of classes.
    """
    checkpoint = read_state_file(source) if isinstance(source, (str, Path)) else source
    state = extract_state_dict(checkpoint)
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
        where = f" from {source}" if isinstance(source, (str, Path)) else ""
        raise WeightsMismatchError(
            f"weights{where} do not fit {type(model).__name__}: " + "; ".join(problems)
        )
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    return model
