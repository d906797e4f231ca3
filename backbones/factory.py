"""`create_backbone`: name + options -> model, with optional pretrained weights."""

from pathlib import Path

from torch import nn

from . import metadata
from .errors import BackboneError, InvalidOptionError
from .registry import check_options, get_entry, timm_model_name
from .weights import load_weights


def create_backbone(name: str, *, num_classes: int | None = None, weights=None, **options) -> nn.Module:
    """Build a registered backbone.

    num_classes: None for the family's default (1000 for ImageNet nets, 10 for CIFAR nets).
    weights: None, "torchvision" (torchvision's weights API, needs the network once),
        "timm" (for `timm/` names), or a path / state dict for `load_weights`.
    options: the builder's own (e.g. shortcut="A", stride_in_1x1=True, norm="frozen_bn").
    """
    timm_name = timm_model_name(name)
    if timm_name is not None:
        from .timm_backbone import TimmBackbone

        if weights == "torchvision" or not isinstance(weights, (type(None), str, Path, dict)):
            raise InvalidOptionError(f"invalid weights {weights!r} for {name!r}: use None, "
                                     f"'timm', or a path / state dict")
        model = TimmBackbone(timm_name, num_classes=1000 if num_classes is None
                             else num_classes, pretrained=weights == "timm", **options)
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
    import torchvision

    if name not in torchvision.models.list_models(module=torchvision.models):
        raise BackboneError(f"torchvision has no weights for {name!r}; pass a weights file instead")
    layout = metadata.TORCHVISION_VGG if name.startswith("vgg") else metadata.TORCHVISION_RESNET
    metadata.check_compatible(model, layout, f"torchvision's {name}")  # before any download
    weights = torchvision.models.get_model_weights(name).DEFAULT
    return weights.get_state_dict(progress=True)
