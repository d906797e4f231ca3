"""The nets are the paper's: counts against Table 1 / Table 6 and torchvision, block behaviour."""

import re

import pytest
import torch
import torchvision

from backbones import count_macs, count_params, create_backbone, load_weights
from experiments.paper import TABLE1_GMACS, TABLE6_PARAMS_M, V15_GMACS


def meta(name, **options):
    with torch.device("meta"):
        return create_backbone(name, **options)


@pytest.mark.parametrize(
    "name", ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "vgg16", "vgg19"]
)
def test_params_equal_torchvision(name):
    with torch.device("meta"):
        reference = getattr(torchvision.models, name)()
    assert count_params(meta(name)) == count_params(reference)


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"])
def test_macs_match_table1(name):
    options = {} if name in ("resnet18", "resnet34") else {"stride_in_1x1": True}
    assert count_macs(meta(name, **options)) / 1e9 == pytest.approx(TABLE1_GMACS[name], abs=0.1)


@pytest.mark.parametrize("name", ["resnet50", "resnet101", "resnet152"])
def test_v15_macs(name):
    assert count_macs(meta(name)) / 1e9 == pytest.approx(V15_GMACS[name], abs=0.1)


@pytest.mark.parametrize("name", sorted(TABLE6_PARAMS_M))
def test_cifar_params_match_table6(name):
    shown = TABLE6_PARAMS_M[name]
    digits = 1 if shown >= 1 else 2
    assert round(count_params(meta(name)) / 1e6, digits) == shown


def test_shortcut_options_parameter_order():
    a, b, c = (count_params(meta("resnet34", shortcut=s)) for s in "ABC")
    plain = count_params(meta("plain34"))
    assert a == plain < b < c
    assert count_params(meta("cifar_resnet56")) == count_params(meta("cifar_plain56"))


@pytest.mark.parametrize(
    "name, expected",
    [
        ("resnet18", [("c2", 64, 4), ("c3", 128, 8), ("c4", 256, 16), ("c5", 512, 32)]),
        ("plain50", [("c2", 256, 4), ("c3", 512, 8), ("c4", 1024, 16), ("c5", 2048, 32)]),
        ("cifar_resnet20", [("c2", 16, 1), ("c3", 32, 2), ("c4", 64, 4)]),
        ("vgg11_bn", [("c1", 64, 1), ("c2", 128, 2), ("c3", 256, 4), ("c4", 512, 8),
                      ("c5", 512, 16)]),
    ],
)
def test_feature_strides_and_channels(name, expected):
    model = create_backbone(name).eval()
    size = 64
    features = model.forward_features(torch.randn(1, 3, size, size))
    assert [(f["name"], f["channels"], f["stride"]) for f in model.feature_info] == expected
    assert list(features) == [e[0] for e in expected]
    for (key, channels, stride) in expected:
        assert features[key].shape == (1, channels, size // stride, size // stride)
    assert len(model.stages) == len(expected) - (1 if name.startswith("vgg") else 0)


@pytest.mark.parametrize("name", ["resnet50", "plain34", "cifar_resnet32", "vgg11"])
def test_forward_gives_logits(name):
    model = create_backbone(name, num_classes=5)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 5)


def _zero_branches(stage):
    for block in stage:
        torch.nn.init.zeros_(block.last_norm.weight)
        torch.nn.init.zeros_(block.last_norm.bias)


def test_option_a_stage_passes_input_through_plain_stage_does_not():
    """With each branch's last BN scaled to zero, only the shortcut carries the signal."""
    residual = create_backbone("cifar_resnet20").eval()
    plain = create_backbone("cifar_plain20").eval()
    for model in (residual, plain):
        _zero_branches(model.stages[1])
    x = torch.rand(2, 16, 16, 16)  # after ReLU: non-negative, so the final ReLU keeps it
    out_residual = residual.stages[1](x)
    expected = torch.cat([x[:, :, ::2, ::2], torch.zeros(2, 16, 8, 8)], dim=1)
    torch.testing.assert_close(out_residual, expected)
    out_plain = plain.stages[1](x)
    assert torch.equal(out_plain, torch.zeros_like(out_plain))


@pytest.mark.parametrize("name", ["resnet50", "resnet18", "cifar_resnet20"])
def test_zero_init_residual_makes_blocks_identity(name):
    """Every block's branch ends in zero (identity shortcuts and projections alike), so each
    block passes its shortcut through: the net's output still depends on the input."""
    model = create_backbone(name, zero_init_residual=True).eval()
    assert all(torch.count_nonzero(b.last_norm.weight) == 0 for s in model.stages for b in s)
    size = 32 if name.startswith("cifar") else 64
    out = model(torch.randn(2, 3, size, size))
    assert not torch.allclose(out[0], out[1])


@pytest.mark.parametrize("name", ["plain18", "plain50", "cifar_plain20"])
def test_zero_init_residual_is_refused_for_plain_nets(name):
    """A plain net's blocks have no residual to zero: zeroing their last BN would make every
    block output 0 (the net a constant); the registry and the class both refuse it."""
    from backbones import InvalidOptionError
    from backbones.resnet import ResNet

    with pytest.raises(InvalidOptionError, match="zero_init_residual"):
        create_backbone(name, zero_init_residual=True)
    message = ("zero_init_residual=True zeroes the last BN of each residual branch; a plain net "
               "(shortcut=None) has no residual branch: its blocks would output zero")
    with pytest.raises(InvalidOptionError, match=f"^{re.escape(message)}$"):
        ResNet("basic", [(2, 16, 1), (2, 32, 2), (2, 64, 2)], stem="cifar", shortcut=None,
               zero_init_residual=True)
    plain = create_backbone(name)
    assert all(torch.count_nonzero(b.last_norm.weight) > 0 for s in plain.stages for b in s)


def test_stride_in_1x1_moves_the_stride():
    original = create_backbone("resnet50", stride_in_1x1=True).stages[1][0]
    v15 = create_backbone("resnet50").stages[1][0]
    assert (original.conv1.stride, original.conv2.stride) == ((2, 2), (1, 1))
    assert (v15.conv1.stride, v15.conv2.stride) == ((1, 1), (2, 2))


@pytest.mark.parametrize("norm, cls", [
    ("frozen_bn", torchvision.ops.FrozenBatchNorm2d),
    ("gn", torch.nn.GroupNorm),
    ("syncbn", torch.nn.SyncBatchNorm),
])
def test_norm_option(norm, cls):
    model = create_backbone("cifar_resnet20", norm=norm)
    assert isinstance(model.stem.bn, cls) and isinstance(model.stages[2][0].bn2, cls)
    if norm != "syncbn":  # SyncBatchNorm only runs distributed
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_cifar_resnet1202_runs():
    model = create_backbone("cifar_resnet1202").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_the_model_table_sets_the_papers_imagenet_errors_beside_the_nets_it_trained():
    """Tables 2-4 beside the rows they describe: option A for Table 2's ResNets, the original
    bottleneck design (not v1.5) for Tables 3-4."""
    from experiments.model_table import _paper_errors, table_variants

    rows = {(name, tuple(options.items())): _paper_errors(name, options)
            for name, options in table_variants()}
    assert rows[("resnet18", (("shortcut", "A"),))]["paper_top1"] == 27.88
    assert rows[("resnet18", (("shortcut", "B"),))]["paper_top1"] is None
    resnet34_b = rows[("resnet34", (("shortcut", "B"),))]
    assert [resnet34_b["paper_top1"], resnet34_b["paper_top5"]] == [24.52, 7.46]
    assert rows[("resnet152", (("stride_in_1x1", True),))]["paper_multiscale"] == "19.38 / 4.49"
    assert rows[("resnet152", (("stride_in_1x1", False),))]["paper_top1"] is None
    assert rows[("plain18", ())]["paper_top1"] == 27.94 and rows[("vgg16", ())]["paper_top5"] == 9.33


def test_dilated_bottleneck_stages_equal_torchvisions():
    """output_stride=8: the same logits as torchvision's replace_stride_with_dilation from the same
    weights (the 3x3 of each block dilated, the first block's at the stage before's dilation)."""
    reference = torchvision.models.resnet50(replace_stride_with_dilation=[False, True, True]).eval()
    ours = load_weights(create_backbone("resnet50", output_stride=8), reference.state_dict()).eval()
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(images), reference(images), rtol=1e-4, atol=1e-5)


def test_dilated_basic_blocks_dilate_both_3x3s_as_timm():
    """resnet18 at output_stride=8 (torchvision's BasicBlock has no dilated form; timm's): each
    block's (conv1, conv2) dilation, the first block of a stage entering at the stage before's."""
    net = create_backbone("resnet18", output_stride=8)
    dilations = [[(b.conv1.dilation[0], b.conv2.dilation[0]) for b in stage] for stage in net.stages]
    assert dilations == [[(1, 1), (1, 1)], [(1, 1), (1, 1)], [(1, 2), (2, 2)], [(2, 4), (4, 4)]]
    assert all(c.padding == c.dilation for b in net.stages[3] for c in (b.conv1, b.conv2))
    assert net.forward_features(torch.zeros(1, 3, 64, 64))["c5"].shape[-1] == 8


def test_the_resnet_class_defaults_are_the_registrys_resnet50():
    """`ResNet(block, stages)` with its defaults is `resnet50` (1000 classes, shortcut B, the
    stride in the 3x3): resnet50's weights load strictly and give the same logits."""
    from backbones.resnet import ResNet
    from backbones.zoo import imagenet_stages

    torch.manual_seed(0)
    reference = create_backbone("resnet50").eval()
    default = ResNet("bottleneck", imagenet_stages(50)).eval()
    default.load_state_dict(reference.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(default(x), reference(x), atol=0, rtol=0)


def test_he_initialisation_draws_convolutions_by_their_fan_out():
    """torchvision's (and the paper's ref. [13]) std sqrt(2 / fan_out), fan_out = out channels x
    kernel area: the 7x7 stem (64 x 49) and a bottleneck's expanding 1x1 (256), whose fan-in would
    give 4.6 and 2x larger. Sampling error of a std over >= 9408 draws: 0.7 % (1 / sqrt(2n)); the
    tolerance 4 % is over 5 of those."""
    torch.manual_seed(0)
    model = create_backbone("resnet50")
    expand = model.stages[0][0].conv3
    assert expand.out_channels == 256 and expand.in_channels == 64
    for conv in (model.stem.conv, expand):
        fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
        assert conv.weight.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.04)


def test_an_output_stride_the_net_cannot_give_is_refused_naming_the_ones_it_can():
    from backbones import InvalidOptionError

    message = "output_stride=12 is not one of this net's stage strides [8, 16, 32] (or None)"
    with pytest.raises(InvalidOptionError, match=f"^{re.escape(message)}$"):
        create_backbone("resnet50", output_stride=12)
