"""Faster R-CNN and Mask R-CNN (torchvision's) around any registry backbone, with the paper's
heads: one builder, the detector class and its extra branch chosen by the caller."""

import inspect
import logging

from torch import nn
from torchvision.models.detection import FasterRCNN, MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor
from torchvision.ops import MultiScaleRoIAlign

from backbones import backbone_family, backbone_options
from backbones.dense import prepare_backbone, remap_backbone_keys
from backbones.errors import InvalidOptionError, check_choice
from backbones.metadata import same_input
from backbones.weights import check_task, load_state, read_weights, source_name

from .heads import SHARED_MAP, C5Head, FPNBody, RoIPool, SharedMapBody, VGGHead
from .res5_heads import Res5RoIHeads
from .sampling import seed_sampling, set_background_range

log = logging.getLogger("detection")

HEADS = ("c4", "vgg", "fpn")
MASK_HEADS = ("c4", "fpn")
MASK_CHANNELS = 256  # the deconvolution's width in the C4 mask branch (detectron2's CONV_DIM)
# FasterRCNN's own keyword arguments that a config may set (the modules are ours to build).
DETECTOR_OPTIONS = tuple(
    p for p in inspect.signature(FasterRCNN.__init__).parameters
    if p not in ("self", "backbone", "num_classes", "kwargs", "rpn_anchor_generator",
                 "box_roi_pool", "box_head", "box_predictor")
)
SAMPLER_DEFAULTS = {"box_bg_iou_low": 0.0}  # Fast R-CNN's background range (detection/sampling.py)
HEAD_DEFAULTS = {
    # The paper's COCO anchors: 4 scales x 3 aspect ratios on the stride-16 map.
    "c4": {"roi_pool": "align", "roi_size": 14, "anchor_sizes": [64, 128, 256, 512], **SAMPLER_DEFAULTS},
    "vgg": {"roi_pool": "max", "roi_size": 7, "anchor_sizes": [64, 128, 256, 512], **SAMPLER_DEFAULTS},
    "fpn": {"fpn_channels": 256, "anchor_sizes": [32, 64, 128, 256, 512], **SAMPLER_DEFAULTS},
}
ASPECT_RATIOS = (0.5, 1.0, 2.0)
C4_FAMILIES = ("resnet", "plain")  # a stem and stages of blocks: the last stage runs per region


def _route_options(backbone: str, head: str, options: dict, builder: str) -> tuple[dict, dict, dict]:
    """Split options into (backbone, detector, head) by name; anything else is an error."""
    own_options = backbone_options(backbone)  # None: a timm model, which names its own
    backbone_valid = set(own_options or ())
    routed = ({}, {}, {})
    for key, value in options.items():
        if key in backbone_valid:
            routed[0][key] = value
        elif key in DETECTOR_OPTIONS:
            routed[1][key] = value
        elif key in HEAD_DEFAULTS[head]:
            routed[2][key] = value
        elif own_options is None:
            routed[0][key] = value  # timm rejects the options it does not take
        else:
            raise InvalidOptionError(
                f"unknown option {key!r} for {builder}({backbone!r}, head={head!r}); "
                f"backbone options: {sorted(backbone_valid)}; head options: "
                f"{sorted(HEAD_DEFAULTS[head])}; detector options: {list(DETECTOR_OPTIONS)}"
            )
    return routed


def build_faster_rcnn(backbone: str, *, head: str, num_classes: int, backbone_weights=None,
                      freeze_at: int = 2, norm: str = "frozen_bn", **options) -> FasterRCNN:
    """A torchvision FasterRCNN on registry backbone `backbone`.

    num_classes counts the background (COCO: 81). `backbone_weights`: a pretrained backbone
    (e.g. a pretraining run's backbone.safetensors, or a torchvision / timm state dict).
    `norm` applies where the backbone has normalisation layers (frozen BN keeps ImageNet
    statistics, as the paper). Other options are routed by name to the backbone, the head
    (roi_pool, roi_size, anchor_sizes, fpn_channels) or FasterRCNN (min_size, max_size, ...).
    """
    check_choice("head", head, HEADS)
    return _build(FasterRCNN, backbone, head, num_classes, backbone_weights, freeze_at, norm, options)


def build_mask_rcnn(backbone: str, *, head: str, num_classes: int, backbone_weights=None,
                    freeze_at: int = 2, norm: str = "frozen_bn", **options) -> MaskRCNN:
    """A torchvision MaskRCNN on registry backbone `backbone`; arguments as build_faster_rcnn.

    head="fpn": torchvision's mask branch (four 3x3 convolutions, a deconvolution) on 14x14 RoIAlign
    of the pyramid, as `maskrcnn_resnet50_fpn`. head="c4": the Mask R-CNN paper's ResNet-C4 heads
    (Res5RoIHeads): conv5_x per region feeds the box branch and a 2x deconvolution to per-class
    14x14 masks.
    """
    check_choice("head", head, MASK_HEADS)
    return _build(MaskRCNN, backbone, head, num_classes, backbone_weights, freeze_at, norm, options)


def _build(detector: type, backbone: str, head: str, num_classes: int, backbone_weights,
           freeze_at: int, norm: str, options: dict):
    """`detector` (FasterRCNN or MaskRCNN) with the body, anchors and box head of `head`."""
    builder = "build_mask_rcnn" if detector is MaskRCNN else "build_faster_rcnn"
    backbone_opts, detector_opts, head_opts = _route_options(backbone, head, options, builder)
    head_opts = {**HEAD_DEFAULTS[head], **head_opts}
    family = backbone_family(backbone)
    net = prepare_backbone(backbone, options=backbone_opts, weights=backbone_weights, norm=norm,
                           freeze_at=freeze_at)
    detector_opts = _with_input_convention(detector_opts, net.input_convention, backbone_weights)
    if head == "fpn":
        model = _fpn_detector(detector, FPNBody(net, head_opts["fpn_channels"]), num_classes,
                              head_opts["anchor_sizes"], detector_opts)
    else:
        model = _shared_map_detector(detector, net, head, family, num_classes, head_opts, detector_opts)
    set_background_range(model.roi_heads, head_opts["box_bg_iou_low"])
    seed_sampling(model)
    return model


def _shared_map_detector(detector: type, net: nn.Module, head: str, family: str, num_classes: int,
                         head_opts: dict, detector_opts: dict):
    """The paper's designs: one shared map (C4: conv1..conv4_x; VGG: conv1_1..conv5_3) and a
    per-region head (conv5_x; fc6, fc7) after RoI pooling."""
    if head == "c4" and family not in C4_FAMILIES:
        raise InvalidOptionError(f"head='c4' needs a ResNet or plain net, not {net.registry_name!r}")
    if head == "vgg" and family != "vgg":
        raise InvalidOptionError(f"head='vgg' needs a VGG backbone, not {net.registry_name!r}")
    if head == "c4":  # conv1..conv4_x shared; conv5_x per region
        body, box_head = SharedMapBody(net, num_stages=len(net.stages) - 1), C5Head(net)
    else:  # conv1_1..conv5_3 shared; fc6, fc7 per region
        body, box_head = SharedMapBody(net, num_stages=len(net.stages)), VGGHead(net)
    check_choice("roi_pool", head_opts["roi_pool"], ("align", "max"))
    # C4 masks come from conv5_x per region (Res5RoIHeads below), not from MaskRCNN's own branch
    mask = {"mask_head": nn.Identity(), "mask_predictor": MaskRCNNPredictor(
        box_head.out_channels, MASK_CHANNELS, num_classes)} if detector is MaskRCNN else {}
    anchors = AnchorGenerator((tuple(head_opts["anchor_sizes"]),), (ASPECT_RATIOS,))
    model = detector(
        body, None, rpn_anchor_generator=anchors, box_head=box_head,
        box_roi_pool=MultiScaleRoIAlign([SHARED_MAP], head_opts["roi_size"], sampling_ratio=0),
        box_predictor=_predictor(box_head.out_channels, num_classes), **mask, **detector_opts,
    )
    if head_opts["roi_pool"] == "max":  # Fast R-CNN's RoI max pooling (the constructor takes RoIAlign)
        model.roi_heads.box_roi_pool = RoIPool(SHARED_MAP, head_opts["roi_size"], 1 / body.stride)
    if mask:
        model.roi_heads = Res5RoIHeads.replacing(model.roi_heads, mask["mask_predictor"])
    return model


def _fpn_detector(detector: type, body: FPNBody, num_classes: int, anchor_sizes, options: dict):
    """torchvision's FPN detector: one anchor size per level, RoIAlign over the levels (7x7 boxes,
    14x14 masks, as `fasterrcnn_resnet50_fpn` / `maskrcnn_resnet50_fpn`); MaskRCNN adds
    torchvision's own mask branch."""
    levels = len(body.featmap_names) + 1  # and the max-pooled level, for the RPN only
    if len(anchor_sizes) != levels:
        raise InvalidOptionError(f"anchor_sizes={list(anchor_sizes)}: head='fpn' on this backbone "
                                 f"has {levels} levels ({', '.join(body.levels)}, pool), one size each")
    anchors = AnchorGenerator(tuple((s,) for s in anchor_sizes), (ASPECT_RATIOS,) * levels)
    pools = {"box_roi_pool": MultiScaleRoIAlign(body.featmap_names, 7, sampling_ratio=2)}
    if detector is MaskRCNN:
        pools["mask_roi_pool"] = MultiScaleRoIAlign(body.featmap_names, 14, sampling_ratio=2)
    return detector(body, num_classes, rpn_anchor_generator=anchors, **pools, **options)


def _with_input_convention(options: dict, convention: dict | None, source) -> dict:
    """The detector normalises images as its backbone's weights expect: image_mean / image_std
    from the weights file unless set, and an error if set otherwise."""
    if convention is None:
        return options
    given = {k: options.get(f"image_{k}") for k in ("mean", "std")}
    if all(v is None for v in given.values()):
        log.info(f"image_mean={convention['mean']}, image_std={convention['std']}: the input "
                 f"convention of {source}")
        return {**options, "image_mean": list(convention["mean"]), "image_std": list(convention["std"])}
    filled = {k: list(given[k] if given[k] is not None else convention[k]) for k in given}
    if not same_input(filled, convention):
        raise InvalidOptionError(
            f"image_mean={filled['mean']}, image_std={filled['std']} differ from the input the "
            f"backbone weights {source} expect (image_mean={convention['mean']}, "
            f"image_std={convention['std']}); leave them unset to take the file's")
    return options


def _predictor(channels: int, num_classes: int) -> nn.Module:
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

    return FastRCNNPredictor(channels, num_classes)


def load_detector_weights(model: FasterRCNN, source) -> FasterRCNN:
    """Our detection checkpoints, or torchvision detection state dicts (fasterrcnn_resnet50_fpn,
    maskrcnn_resnet50_fpn), loaded strictly and safely; torchvision's backbone names are mapped
    to ours; a file whose backbone was built otherwise (its metadata) is refused."""
    state, description = read_weights(source)
    check_task(description, ("detection",), source, "detector",
               "; a backbone's weights go in model.backbone_weights, a detector's in --checkpoint "
               "(or model.weights)")
    body = getattr(model.backbone, "body", None)
    if body is not None:  # FPN: torchvision's backbone.body.layerN...
        state, layout = remap_backbone_keys(state, model.state_dict(), body, "backbone.body.",
                                            "backbone.body.")
        description = description or layout
    return load_state(model, state, description, source_name(source))
