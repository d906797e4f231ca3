"""The registry's public names and its errors."""

import pytest
import torch
from torch import nn

from backbones import (
    InvalidOptionError,
    UnknownBackboneError,
    backbone_family,
    backbone_options,
    create_backbone,
    list_backbones,
    register_backbone,
)

PAPER_NETS = (
    [f"resnet{d}" for d in (18, 34, 50, 101, 152)]
    + [f"plain{d}" for d in (18, 34, 50, 101, 152)]
    + [f"cifar_resnet{d}" for d in (20, 32, 44, 56, 110, 1202)]
    + [f"cifar_plain{d}" for d in (20, 32, 44, 56, 110)]
    + [f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")]
)


def test_every_paper_net_is_registered():
    assert set(PAPER_NETS) <= set(list_backbones())


def test_list_is_sorted_and_filtered():
    assert list_backbones() == sorted(list_backbones())
    assert list_backbones("cifar_plain*") == [
        "cifar_plain110", "cifar_plain20", "cifar_plain32", "cifar_plain44", "cifar_plain56"
    ]
    assert "timm/resnet50" in list_backbones("timm/resnet5*")


def test_unknown_name_lists_closest():
    with pytest.raises(UnknownBackboneError, match="resnet50") as info:
        create_backbone("resnet05")
    assert "closest" in str(info.value)


def test_unknown_option_names_it_and_valid_ones():
    with pytest.raises(InvalidOptionError, match="'depth'") as info:
        create_backbone("resnet18", depth=3)
    assert "shortcut='B'" in str(info.value) and "norm='bn'" in str(info.value)


def test_plain_nets_take_no_shortcut_option():
    with pytest.raises(InvalidOptionError, match="'shortcut'"):
        create_backbone("plain18", shortcut="A")


@pytest.mark.parametrize(
    "option, value", [("shortcut", "D"), ("norm", "layernorm")]
)
def test_invalid_value_names_option_and_valid_values(option, value):
    with pytest.raises(InvalidOptionError, match=f"'{option}'") as info:
        create_backbone("cifar_resnet20", **{option: value})
    assert repr(value) in str(info.value)


def test_family_default_classes():
    assert create_backbone("cifar_resnet20").fc.out_features == 10
    assert create_backbone("resnet18").fc.out_features == 1000
    assert create_backbone("resnet18", num_classes=7).fc.out_features == 7


@pytest.fixture(autouse=True)
def _forget_registered():
    """The names a test registers leave the registry after it, so the file runs twice in one
    process (mutmut's runs do)."""
    from backbones.registry import _REGISTRY

    before = set(_REGISTRY)
    yield
    for name in set(_REGISTRY) - before:
        del _REGISTRY[name]


def test_register_your_own():
    @register_backbone(name="tiny_test_net")
    def build(*, num_classes=3, width=4):
        return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))

    assert "tiny_test_net" in list_backbones("tiny_*")
    model = create_backbone("tiny_test_net", width=8)
    assert model(torch.zeros(1, 2, 2)).shape == (1, 3)
    with pytest.raises(InvalidOptionError, match="'depth'"):
        create_backbone("tiny_test_net", depth=1)
    with pytest.raises(ValueError, match="already taken"):
        register_backbone(build, name="tiny_test_net")


def test_family_and_options_are_asked_not_guessed_from_names():
    assert [backbone_family(n) for n in ("resnet50", "plain34", "cifar_resnet20", "cifar_plain56",
                                         "vgg16_bn", "timm/resnet18")] == \
        ["resnet", "plain", "resnet", "plain", "vgg", "timm"]
    assert backbone_options("cifar_resnet20")["shortcut"] == "A"
    assert backbone_options("resnet50") == {"shortcut": "B", "stride_in_1x1": False,
                                            "zero_init_residual": False, "norm": "bn",
                                            "output_stride": None}
    assert backbone_options("timm/resnet18") is None  # timm takes its own constructor's options
    with pytest.raises(UnknownBackboneError):
        backbone_family("resnet51")


def test_detection_picks_heads_by_family_not_by_name():
    from detection import build_faster_rcnn

    @register_backbone(name="lab_net_c4_ok", family="resnet")
    def lab_net(*, num_classes=10, norm="bn"):
        return create_backbone("cifar_resnet20", num_classes=num_classes, norm=norm)

    model = build_faster_rcnn("lab_net_c4_ok", head="c4", num_classes=3, min_size=64, max_size=64,
                              anchor_sizes=[16, 32])
    res5, last_stage = model.roi_heads.box_head.stage, create_backbone("cifar_resnet20").stages[-1]
    convs = [[p.shape for p in stage.parameters() if p.dim() == 4] for stage in (res5, last_stage)]
    assert convs[0] == convs[1] and len(convs[0]) > 3  # the backbone's last stage, whole
    with pytest.raises(InvalidOptionError, match="head='vgg' needs a VGG"):
        build_faster_rcnn("lab_net_c4_ok", head="vgg", num_classes=3)
