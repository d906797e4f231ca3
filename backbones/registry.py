"""Name -> builder registry, in the spirit of timm's: list, create, register your own.

A builder is a function taking keyword options (and `num_classes`); the options it accepts and
their defaults are read from its signature, so `create_backbone` can name a wrong option and the
valid ones before anything is built. Each entry also records its family ("resnet", "plain",
"vgg", ...), so callers ask what a net is instead of guessing from its name. Names starting with
`timm/` are timm's models; this module is the one place that parses that prefix.
"""

import difflib
import fnmatch
import inspect
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from .errors import InvalidOptionError, UnknownBackboneError

TIMM_PREFIX = "timm/"
TIMM_FAMILY = "timm"


@dataclass(frozen=True)
class Entry:
    builder: Callable[..., nn.Module]
    defaults: dict  # option -> default value, from the builder's signature
    num_classes: int  # the family's default number of classes
    family: str  # "resnet", "plain", "vgg", or a user's own
    input_size: int  # the square input side it is trained at (224 ImageNet, 32 CIFAR)


_REGISTRY: dict[str, Entry] = {}


def timm_model_name(name: str) -> str | None:
    """The timm model a `timm/<model>` name stands for; None for a registry name."""
    return name[len(TIMM_PREFIX):] if name.startswith(TIMM_PREFIX) else None


def register_backbone(fn: Callable | None = None, *, name: str | None = None, family: str = "custom",
                      input_size: int = 224):
    """Decorator adding a builder under `name` (default: the function's name).

    The builder must take `num_classes` and keyword-only options with defaults. `family` says
    what the net is ("resnet" and "plain" nets have a stem and stages of blocks, which the C4
    detector splits; "vgg" nets have fc6/fc7, which the VGG detector reuses); `input_size` the
    side of the images it is trained on (what export and benchmarks feed it).
    """

    def add(builder: Callable) -> Callable:
        key = name or builder.__name__
        if key in _REGISTRY or timm_model_name(key) is not None:
            raise ValueError(f"backbone name {key!r} is already taken")
        params = inspect.signature(builder).parameters
        if "num_classes" not in params:
            raise TypeError(f"builder {key!r} must take a num_classes argument")
        defaults = {
            p.name: p.default
            for p in params.values()
            if p.name != "num_classes" and p.default is not inspect.Parameter.empty
        }
        _REGISTRY[key] = Entry(builder, defaults, params["num_classes"].default, family, input_size)
        return builder

    return add(fn) if fn is not None else add


def list_backbones(pattern: str = "*") -> list[str]:
    """Sorted registered names matching a shell-style pattern; "timm/<pattern>" lists timm's."""
    timm_pattern = timm_model_name(pattern)
    if timm_pattern is not None:
        import timm

        return sorted(TIMM_PREFIX + n for n in timm.list_models(timm_pattern))
    return sorted(fnmatch.filter(_REGISTRY, pattern))


def get_entry(name: str) -> Entry:
    if name in _REGISTRY:
        return _REGISTRY[name]
    close = difflib.get_close_matches(name, list(_REGISTRY), n=5, cutoff=0.5)
    hint = f"; closest: {', '.join(close)}" if close else ""
    raise UnknownBackboneError(
        f"unknown backbone {name!r}{hint} (list_backbones() shows all, "
        f"and 'timm/<model>' takes any timm model)"
    )


def backbone_family(name: str) -> str:
    """What kind of net `name` is: its registered family, or "timm" for `timm/<model>`."""
    return TIMM_FAMILY if timm_model_name(name) is not None else get_entry(name).family


def backbone_input_size(name: str) -> int:
    """The square input side `name` is trained at: its registration's, or timm's pretrained_cfg."""
    timm_name = timm_model_name(name)
    if timm_name is None:
        return get_entry(name).input_size
    from timm.models import get_pretrained_cfg_value

    return int((get_pretrained_cfg_value(timm_name, "input_size") or (3, 224, 224))[-1])


def backbone_options(name: str) -> dict | None:
    """The options `create_backbone(name, ...)` accepts, with their defaults; None for timm
    models, which take whatever their own constructor does."""
    return None if timm_model_name(name) is not None else dict(get_entry(name).defaults)


def check_options(name: str, entry: Entry, options: dict) -> None:
    unknown = sorted(set(options) - set(entry.defaults))
    if unknown:
        valid = ", ".join(f"{k}={v!r}" for k, v in entry.defaults.items()) or "none"
        raise InvalidOptionError(
            f"unknown option {', '.join(map(repr, unknown))} for backbone {name!r}; "
            f"valid options (with defaults): {valid}"
        )
