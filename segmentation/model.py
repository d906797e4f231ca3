"""FCN and DeepLabV3 (torchvision's models and heads) on any registry ResNet or plain net, or a
timm model (dilated by timm's own `output_stride`).

torchvision's `FCN` / `DeepLabV3` take a backbone that returns {"out": last map, "aux": the map
before} (its `IntermediateLayerGetter` contract); `StageFeatures` gives a registry backbone that
contract, so the forward pass, heads, upsampling and output dict are torchvision's own.
"""

from collections import OrderedDict

import torch
from torch import nn
from torchvision.models.segmentation.deeplabv3 import DeepLabHead, DeepLabV3
from torchvision.models.segmentation.fcn import FCN, FCNHead

from backbones import backbone_family, backbone_options
from backbones.dense import prepare_backbone, remap_backbone_keys
from backbones.errors import InvalidOptionError, check_choice
from backbones.metadata import IMAGENET_INPUT, same_input
from backbones.norm import make_norm
from backbones.registry import TIMM_FAMILY
from backbones.weights import check_task, load_state, read_weights, source_name

HEADS = ("fcn", "deeplabv3")
HEAD_OPTIONS = {"fcn": {}, "deeplabv3": {"atrous_rates": (12, 24, 36)}}
DILATABLE_FAMILIES = ("resnet", "plain")


class StageFeatures(nn.Module):
    """A registry backbone's last two stages as torchvision's {"out", "aux"}."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        features = list(self.body.forward_features(x).values())
        return OrderedDict(out=features[-1], aux=features[-2])


def _route_options(backbone: str, head: str, options: dict) -> tuple[dict, dict]:
    """(backbone, head) options by name; a timm model takes every other option (and rejects the
    ones it does not know)."""
    own_options = backbone_options(backbone)
    own = set(own_options or ())
    backbone_opts, head_opts = {}, dict(HEAD_OPTIONS[head])
    for key, value in options.items():
        if key in HEAD_OPTIONS[head]:
            head_opts[key] = value
        elif key in own or own_options is None:
            backbone_opts[key] = value
        else:
            raise InvalidOptionError(
                f"unknown option {key!r} for build_segmenter({backbone!r}, head={head!r}); backbone "
                f"options: {sorted(own)}; head options: {sorted(HEAD_OPTIONS[head])}")
    return backbone_opts, head_opts


def build_segmenter(backbone: str, *, head: str, num_classes: int, aux_loss: bool = False,
                    output_stride: int | None = 8, backbone_weights=None, norm: str = "bn",
                    dropout: float = 0.1, **options) -> nn.Module:
    """torchvision's FCN or DeepLabV3 on registry backbone `backbone`.

    output_stride: 8 or 16 dilate conv5_x (and conv4_x for 8) instead of striding, as
    torchvision's `replace_stride_with_dilation` (timm models: timm's `output_stride`); None keeps
    the backbone's own strides (CIFAR nets: 4). `aux_loss` adds the FCN head on the stage before
    the last (weight 0.5 in the task). `backbone_weights`: pretrained classification weights (the
    classifier is skipped). `norm` is the backbone's, and the heads' where gn or syncbn;
    `dropout` the heads' (torchvision's 0.1).
    """
    if not 0 <= dropout < 1:
        raise InvalidOptionError(f"model.dropout={dropout} must be in [0, 1)")
    check_choice("head", head, HEADS)
    family = backbone_family(backbone)
    if family not in (*DILATABLE_FAMILIES, TIMM_FAMILY):
        raise InvalidOptionError(f"segmentation needs a ResNet, plain net or timm model, not "
                                 f"{backbone!r} (family {family!r})")
    backbone_opts, head_opts = _route_options(backbone, head, options)
    if family != TIMM_FAMILY or output_stride is not None:
        backbone_opts["output_stride"] = output_stride
    net = prepare_backbone(backbone, options=backbone_opts, weights=backbone_weights, norm=norm)
    _check_input_convention(net.input_convention, backbone_weights)
    out_channels, aux_channels = (f["channels"] for f in net.feature_info[-1:-3:-1])
    aux = FCNHead(aux_channels, num_classes) if aux_loss else None
    if head == "fcn":
        classifier = FCNHead(out_channels, num_classes)
    else:
        classifier = DeepLabHead(out_channels, num_classes, tuple(head_opts["atrous_rates"]))
    for module in (classifier, aux):
        if module is not None:
            _with_norm(module, norm)
            for dropout_layer in (m for m in module.modules() if isinstance(m, nn.Dropout)):
                dropout_layer.p = dropout
    return (FCN if head == "fcn" else DeepLabV3)(StageFeatures(net), classifier, aux)


def _with_norm(head: nn.Module, norm: str) -> nn.Module:
    """torchvision's heads normalise with BN; `norm=gn` or `syncbn` there too (small or split
    batches: statistics that do not depend on how the batch is shared out). Frozen BN is for
    pretrained statistics, which a new head has not: it keeps BN."""
    if norm not in ("gn", "syncbn"):
        return head
    for name, child in head.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(head, name, make_norm(norm, child.num_features))
        else:
            _with_norm(child, norm)
    return head


def _check_input_convention(convention: dict | None, source) -> None:
    """The segmentation data are normalised with ImageNet's mean and std (`data.py`): weights
    that expect another input would see wrongly scaled images."""
    if convention is not None and not same_input(convention, IMAGENET_INPUT):
        raise InvalidOptionError(
            f"the backbone weights {source} expect input normalised with mean={convention['mean']}, "
            f"std={convention['std']}; segmentation data are normalised with ImageNet's "
            f"(mean={IMAGENET_INPUT['mean']}, std={IMAGENET_INPUT['std']})")


def load_segmenter_weights(model: nn.Module, source) -> nn.Module:
    """Our segmentation checkpoints, or torchvision's (fcn_resnet50, deeplabv3_resnet50, ...)
    state dicts, loaded strictly; torchvision's backbone names are mapped to ours."""
    state, description = read_weights(source)
    check_task(description, ("segmentation",), source, "segmenter",
               "; a backbone's weights go in model.backbone_weights, a segmenter's in --checkpoint "
               "(or model.weights)")
    state, layout = remap_backbone_keys(state, model.state_dict(), model.backbone.body, "backbone.",
                                        "backbone.body.")
    description = description or layout
    return load_state(model, state, description, source_name(source))
