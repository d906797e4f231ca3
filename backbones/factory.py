"""`create_backbone`: name + options -> model, with optional pretrained weights."""

from pathlib import Path

from torch import nn

from . import hub, metadata
from .errors import BackboneError, InvalidOptionError
from .registry import check_options, get_entry, timm_model_name
from .weights import load_weights, read_state_file

PUBLISHED = ("torchvision", "timm")  # weights by name: the library's own ImageNet files


def create_backbone(name: str, *, num_classes: int | None = None, weights=None, **options) -> nn.Module:
    """Build a registered backbone.

    num_classes: None for the family's default (1000 for ImageNet nets, 10 for CIFAR nets).
    weights: None, "torchvision" (torchvision's ImageNet weights), "timm" (for `timm/` names;
        `pretrained=True` says the same, as in timm), or a path / state dict for `load_weights`.
        Published weights come from the local cache, downloaded once where there is network
        (backbones.hub: an offline machine gets one line saying where to put the file).
    options: the builder's own (e.g. shortcut="A", stride_in_1x1=True, norm="frozen_bn").
    """
    timm_name = timm_model_name(name)
    weights = _pretrained_flag(name, timm_name, weights, options.pop("pretrained", None))
    if timm_name is not None:
        from .timm_backbone import TimmBackbone

        if weights == "torchvision" or not isinstance(weights, (type(None), str, Path, dict)):
            raise InvalidOptionError(f"invalid weights {weights!r} for {name!r}: use None, "
                                     f"'timm', or a path / state dict")
        model = TimmBackbone(timm_name, num_classes=1000 if num_classes is None else num_classes,
                             pretrained_file=hub.timm_file(timm_name) if weights == "timm" else None,
                             **options)
        metadata.set_spec(model, name, options, model.pretrained_input() if weights == "timm" else None)
        if weights not in (None, "timm"):
            load_weights(model, weights)
        return model

    entry = get_entry(name)
    check_options(name, entry, options)
    classes = entry.num_classes if num_classes is None else num_classes
    model = entry.builder(num_classes=classes, **options)
    metadata.set_spec(model, name, {**entry.defaults, **options})
    if weights == "torchvision":
        load_weights(model, _torchvision_state_dict(name, model))
    elif weights is not None:
        load_weights(model, weights)
    return model


def _torchvision_state_dict(name: str, model: nn.Module) -> dict:
    _check_torchvision_has(name)
    layout = metadata.TORCHVISION_VGG if name.startswith("vgg") else metadata.TORCHVISION_RESNET
    metadata.check_compatible(model, layout, f"torchvision's {name}")  # before any download
    return read_state_file(hub.torchvision_file(name))


def _pretrained_flag(name: str, timm_name: str | None, weights, pretrained):
    """timm's `pretrained=True` on a `timm/` name is weights="timm"; on our nets it names no file."""
    if not pretrained:
        return weights
    if timm_name is None:
        raise InvalidOptionError(f"pretrained=True is timm's spelling and {name!r} is not a timm "
                                 f"model: use weights='torchvision' (torchvision's ImageNet weights) "
                                 f"or weights=<file>")
    if weights not in (None, "timm"):
        raise InvalidOptionError(f"pretrained=True and weights={weights!r} both given for {name!r}: "
                                 f"pretrained=True means weights='timm'; give one")
    return "timm"


def published_weights_file(name: str, source: str) -> Path:
    """The local file of `source`'s ("torchvision" | "timm") ImageNet weights of registry `name`."""
    timm_name = timm_model_name(name)
    if source == "timm":
        if timm_name is None:
            raise InvalidOptionError(f"weights='timm' is for timm/<model> names, not {name!r}")
        return hub.timm_file(timm_name)
    if timm_name is not None:
        raise InvalidOptionError(f"weights='torchvision' is not for {name!r}: use 'timm'")
    _check_torchvision_has(name)
    return hub.torchvision_file(name)


def _check_torchvision_has(name: str) -> None:
    import torchvision

    if name not in torchvision.models.list_models(module=torchvision.models):
        raise BackboneError(f"torchvision has no weights for {name!r}; pass a weights file instead")
