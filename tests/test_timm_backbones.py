"""`timm/<model>` keeps the same contract as our own nets."""

import pytest
import timm
import torch

from backbones import InvalidOptionError, WeightsMismatchError, create_backbone
from backbones.dense import prepare_backbone


@pytest.mark.parametrize("features_only", [False, True])
@pytest.mark.parametrize("name", ["resnet18", "convnext_atto"])
def test_timm_features_are_stride_keyed(name, features_only):
    model = create_backbone(f"timm/{name}", features_only=features_only).eval()
    features = model.forward_features(torch.randn(1, 3, 64, 64))
    assert list(features) == ["c2", "c3", "c4", "c5"]
    for info in model.feature_info:
        assert features[info["name"]].shape[1:] == (info["channels"], 64 // info["stride"],
                                                    64 // info["stride"])
    assert len(model.stages) == 4 and len(model.stem) >= 1
    assert all(p.requires_grad for p in model.stem.parameters())


def test_timm_logits_equal_timm():
    reference = timm.create_model("resnet18", num_classes=7).eval()
    model = create_backbone("timm/resnet18", num_classes=7,
                            weights=reference.state_dict()).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), atol=1e-5, rtol=0)
        features = model.forward_features(x)
        torch.testing.assert_close(features["c5"], reference.forward_features(x))


def test_features_only_has_no_classifier():
    model = create_backbone("timm/resnet18", features_only=True)
    with pytest.raises(RuntimeError, match="features_only"):
        model(torch.randn(1, 3, 32, 32))


def test_timm_bad_option():
    with pytest.raises(InvalidOptionError, match="resnet18"):
        create_backbone("timm/resnet18", not_an_option=1)


@pytest.mark.parametrize("name, level, our_name", [("convnext_atto", "stages.1.", "model.stages_1"),
                                               ("resnet18", "layer2.", "model.layer2")])
def test_a_whole_timm_model_file_loads_into_the_feature_backbone(tmp_path, name, level, our_name):
    """What a user brings for `model.backbone_weights` (timm's hub file, a timm training's
    state dict): the whole model, which timm's features_only wrapper names otherwise (stages.0 ->
    stages_0) and holds no head of; the features equal timm's own intermediates."""
    reference = timm.create_model(name).eval()
    path = tmp_path / f"{name}.pth"
    torch.save(reference.state_dict(), path)
    net = prepare_backbone(f"timm/{name}", options={}, weights=path, norm="frozen_bn", freeze_at=0).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ours = list(net.forward_features(x).values())
        theirs = reference.forward_intermediates(x, intermediates_only=True)[-len(ours):]
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    broken = {k: v for k, v in reference.state_dict().items() if not k.startswith(level)}
    with pytest.raises(WeightsMismatchError, match=f"missing keys: {our_name}"):
        prepare_backbone(f"timm/{name}", options={}, weights=broken, norm="frozen_bn")
