"""A registry backbone prepared for a dense task (detection, segmentation): one place for both.

Options the caller did not set are taken from the weights file (the options it was trained with:
ResNet-101 pretrained with the paper's stride in the 1x1 stays so in its detector), options it
did set must match the file's (`metadata.check_compatible`); then the weights (classifier skipped;
BN statistics skipped for GroupNorm), the file's input convention, frozen stages (detectron2's
`freeze_at`) and no classifier.
"""

import logging

from torch import nn

from . import metadata
from .errors import InvalidOptionError
from .factory import PUBLISHED, create_backbone, published_weights_file
from .registry import TIMM_FAMILY, backbone_family, backbone_options
from .weights import load_state, note_undescribed, read_weights, source_name

log = logging.getLogger("backbones")

BN_STATISTICS = ("*.running_mean", "*.running_var", "*.num_batches_tracked")


def prepare_backbone(name: str, *, options: dict, weights=None, norm: str | None = None,
                     freeze_at: int = 0) -> nn.Module:
    """`create_backbone(name, **options)` for a dense task, with pretrained `weights` (a path or
    state dict; None: random), `norm` where the net has normalisation layers, the stem and the
    first `freeze_at - 1` stages frozen, and the ImageNet classifier removed."""
    family = backbone_family(name)
    options = dict(options)
    if family == TIMM_FAMILY:
        options.setdefault("features_only", True)
    elif norm is not None and "norm" in backbone_options(name):
        options.setdefault("norm", norm)
    if weights in PUBLISHED:  # model.backbone_weights=torchvision | timm: the cached file
        weights = published_weights_file(name, weights)
    state, description = read_weights(weights) if weights is not None else (None, None)
    if weights is not None:
        note_undescribed(weights, description)
    if description is not None and family != TIMM_FAMILY:
        options = _with_file_options(name, options, description, weights)
    net = create_backbone(name, **options)
    if state is not None:
        skip = tuple(getattr(net, "classifier_patterns", ()))
        if options.get("norm") == "gn":  # from BN pretraining: convolutions and affine only
            skip += BN_STATISTICS
        load_state(net, state, description, source_name(weights), skip=skip)
    freeze(net, freeze_at)
    if hasattr(net, "fc"):
        del net.fc  # the ImageNet classifier has no part in a dense task
    return net


def remap_backbone_keys(state: dict, own_keys, body: nn.Module, prefix: str,
                        ours: str) -> tuple[dict, dict | None]:
    """A whole detector's or segmenter's state dict in torchvision's names: the backbone's keys
    (under `prefix`) renamed by `body.remap_state_dict` and put under `ours`, with the known
    layout of those backbone weights (None if unknown). Our own names pass unchanged."""
    if set(state) <= set(own_keys) or not hasattr(body, "remap_state_dict"):
        return state, None
    inner = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    mapped = {k: v for k, v in state.items() if not k.startswith(prefix)}
    mapped.update({ours + k: v for k, v in body.remap_state_dict(inner).items()})
    return mapped, metadata.known_layout(inner)


def _with_file_options(name: str, options: dict, description: dict, source) -> dict:
    """`options` completed with the file's architecture options the caller left unset."""
    accepted = backbone_options(name)
    taken = {k: v for k, v in description.get("options", {}).items()
             if k in accepted and k not in options and k not in metadata.USE_OPTIONS
             and v != accepted[k]}
    if taken:
        shown = ", ".join(f"{k}={v!r}" for k, v in taken.items())
        log.info(f"{name}: taking {shown} from {source} (the options its weights were trained with)")
    return {**options, **taken}


def freeze(backbone: nn.Module, freeze_at: int) -> None:
    """detectron2's convention: 1 freezes the stem, 2 also the first stage (res2), and so on."""
    stages = list(backbone.stages)
    if not 0 <= freeze_at <= len(stages) + 1:
        raise InvalidOptionError(f"freeze_at={freeze_at} must be between 0 and {len(stages) + 1}")
    frozen = ([backbone.stem] if freeze_at >= 1 else []) + stages[: max(freeze_at - 1, 0)]
    for module in frozen:
        for parameter in module.parameters():
            parameter.requires_grad_(False)
