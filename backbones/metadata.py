"""What a weights file is: the registry name, the architecture options, the input convention.

Every file the toolkit writes records this (safetensors metadata; a `meta` entry in a `.pth`
checkpoint), because a shape-compatible wrong model is the worst bug a backbone toolkit can ship:
ResNet-50 with the stride in the 1x1 (the paper's) and in the 3x3 (torchvision's v1.5) have the
same keys and shapes. Files of known foreign layouts (torchvision's and timm's ResNets and VGGs)
are described by their layout. A load into a model built with other options is an error naming
each option and both values (`check_compatible`).

The input convention is what the first layer expects, always as `(rgb - mean) / std` with `rgb`
in [0, 1]: a model trained on BGR 0-255 input (Caffe's MSRA ResNets) is converted to RGB when
loaded, so one convention serves every detector's `image_mean` / `image_std`.
"""

import json
import math

from torch import nn

from .community import is_community_cifar
from .errors import WeightsMismatchError

META_KEY = "meta"  # where a .pth checkpoint keeps this module's description
FORMAT = "resnet-reproduce/weights-v1"
IMAGENET_INPUT = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
# Options that say how a net is used, not what its weights mean: a file's value may differ.
USE_OPTIONS = ("output_stride", "zero_init_residual", "dropout", "features_only", "norm")
# Normalisations whose weights carry BN statistics (loadable into one another); GN has none.
_BN_LIKE = ("bn", "frozen_bn", "syncbn")
# Known foreign layouts: the options under which our nets are those architectures exactly.
TORCHVISION_RESNET = {"layout": "torchvision/timm ResNet",
                      "options": {"shortcut": "B", "stride_in_1x1": False}, "input": IMAGENET_INPUT}
TORCHVISION_VGG = {"layout": "torchvision VGG", "options": {}, "input": IMAGENET_INPUT}
# akamaster/pytorch_resnet_cifar10 (and forks) normalise CIFAR with ImageNet's mean and std.
COMMUNITY_CIFAR = {"layout": "community CIFAR ResNet", "options": {}, "input": IMAGENET_INPUT}


def set_spec(model: nn.Module, name: str, options: dict, input_convention: dict | None = None) -> None:
    """Record on a built backbone what it is (`create_backbone` calls this)."""
    model.registry_name, model.registry_options = name, dict(options)
    model.input_convention = input_convention


def inherit_spec(module: nn.Module, backbone: nn.Module) -> None:
    """A module made of a backbone's parts (a detector's shared-map body) says what it is."""
    if hasattr(backbone, "registry_name"):
        set_spec(module, backbone.registry_name, backbone.registry_options, backbone.input_convention)


def find_backbone(model: nn.Module) -> nn.Module | None:
    """The registry backbone inside `model` (itself, or a detector's / segmenter's body)."""
    return next((m for m in model.modules() if hasattr(m, "registry_name")), None)


def describe(model: nn.Module, *, task: str, input_convention: dict | None = None) -> dict[str, str]:
    """The metadata (str -> str, as safetensors stores it) of weights of `model`: the registry
    backbone inside it, its options, and the input it expects (given, or the backbone's own)."""
    meta = {"format": FORMAT, "task": task}
    backbone = find_backbone(model)
    if backbone is not None:
        convention = input_convention or backbone.input_convention
        meta.update(backbone=backbone.registry_name,
                    options=_as_json(backbone.registry_options))
        if convention is not None:
            meta["input"] = json.dumps({k: [float(v) for v in convention[k]] for k in ("mean", "std")})
    return meta


def _as_json(options: dict) -> str:
    """Options as JSON (tuples become lists; anything else JSON lacks, its text)."""
    return json.dumps(options, sort_keys=True, default=str)


def parse(meta: dict | None) -> dict | None:
    """A stored description as {"backbone", "options", "input", "task", "categories",
    "category_ids", "config"} (the last three where the trainer wrote them); None when absent."""
    if not meta or meta.get("format") != FORMAT:
        return None
    lists = {key: json.loads(meta[key]) for key in ("categories", "category_ids") if key in meta}
    return {"backbone": meta.get("backbone"), "task": meta.get("task"),
            "options": json.loads(meta.get("options", "{}")),
            "input": json.loads(meta["input"]) if "input" in meta else None,
            "config": meta.get("config"), **lists}


def known_layout(state: dict) -> dict | None:
    """The description of a file without one, from its keys: torchvision's / timm's ResNets and
    VGGs, the community CIFAR ResNets; None for anything else (our own files always carry theirs)."""
    if "layer4.0.conv1.weight" in state and "conv1.weight" in state:  # not CIFAR's 3-stage nets
        return TORCHVISION_RESNET
    if "features.0.weight" in state and "classifier.0.weight" in state:
        return TORCHVISION_VGG
    if is_community_cifar(state):
        return COMMUNITY_CIFAR
    return None


def _norm_fits(stored: str, wanted: str) -> bool:
    """BN statistics load into BN, frozen BN or SyncBN, and BN weights into GN (convolutions and
    affine only, the statistics skipped); GN weights have no statistics for a BN net."""
    return stored == wanted or stored in _BN_LIKE and (wanted in _BN_LIKE or wanted == "gn")


def option_conflicts(stored: dict, model_options: dict) -> list[str]:
    """'option: file X, model Y' for every architecture option on which they differ."""
    conflicts, model_options = [], json.loads(_as_json(model_options))  # as the file stores them
    for key, value in stored.items():
        if key not in model_options:
            continue
        wanted = model_options[key]
        if key == "norm":
            if value is not None and wanted is not None and not _norm_fits(value, wanted):
                conflicts.append(f"norm: file {value!r}, model {wanted!r}")
        elif key not in USE_OPTIONS and value != wanted:
            conflicts.append(f"{key}: file {value!r}, model {wanted!r}")
    return conflicts


def check_compatible(model: nn.Module, description: dict | None, source) -> None:
    """Raise WeightsMismatchError if the weights in `source` were trained as another network
    than the registry backbone inside `model` (name or architecture options)."""
    backbone = find_backbone(model)
    if backbone is None or description is None:
        return
    problems = []
    stored_name = description.get("backbone")
    if stored_name is not None and stored_name != backbone.registry_name:
        problems.append(f"backbone: file {stored_name!r}, model {backbone.registry_name!r}")
    problems += option_conflicts(description.get("options", {}), backbone.registry_options)
    if problems:
        what = description.get("layout") or "the file's metadata"
        raise WeightsMismatchError(
            f"weights {source} were trained as another network ({what}): " + "; ".join(problems)
            + ". Build the model with the file's options (or leave them unset in a detection / "
              "segmentation config, which then takes the file's)")


def same_input(a: dict, b: dict) -> bool:
    return all(math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-7)
               for key in ("mean", "std") for x, y in zip(a[key], b[key]))
