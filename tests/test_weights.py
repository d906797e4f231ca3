"""Weights: torchvision / timm state dicts give identical logits; bad files are refused clearly."""

import collections

import pytest
import timm
import torch
import torchvision
from safetensors.torch import save_file

from backbones import (
    UnsafeCheckpointError,
    WeightsMismatchError,
    create_backbone,
    load_weights,
)
from helpers import Exploit


def assert_same_logits(ours, reference, size=64):
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), reference.eval()(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnet101", "vgg16"])
def test_torchvision_state_dict_from_file_gives_identical_logits(name, tmp_path):
    reference = getattr(torchvision.models, name)()
    path = tmp_path / f"{name}.pth"
    torch.save(reference.state_dict(), path)
    ours = create_backbone(name, weights=str(path))
    assert_same_logits(ours, reference)


def test_timm_resnet50_from_safetensors(tmp_path):
    reference = timm.create_model("resnet50")
    path = tmp_path / "timm_resnet50.safetensors"
    save_file(reference.state_dict(), str(path))
    assert_same_logits(load_weights(create_backbone("resnet50"), path), reference)


def test_frozen_bn_loads_torchvision_weights():
    reference = torchvision.models.resnet18()
    ours = load_weights(create_backbone("resnet18", norm="frozen_bn"), reference.state_dict())
    assert_same_logits(ours, reference)


def test_own_checkpoint_round_trip_with_ddp_prefix(tmp_path):
    model = create_backbone("cifar_resnet20")
    path = tmp_path / "ckpt.pth"
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save({"model": state, "step": torch.tensor(3)}, path)
    assert_same_logits(create_backbone("cifar_resnet20", weights=path), model, size=32)


def test_skip_patterns_allow_new_classifier():
    source = create_backbone("cifar_resnet20").state_dict()
    with pytest.raises(WeightsMismatchError, match=r"fc\.weight \(checkpoint \(10, 64\)"):
        load_weights(create_backbone("cifar_resnet20", num_classes=100), source)
    model = load_weights(create_backbone("cifar_resnet20", num_classes=100), source,
                         skip=["fc.*"])
    torch.testing.assert_close(model.stem.conv.weight, source["stem.conv.weight"])


def test_mismatch_lists_offending_keys():
    option_b = create_backbone("resnet18").state_dict()  # a bare state dict: no description
    with pytest.raises(WeightsMismatchError) as info:
        load_weights(create_backbone("resnet18", shortcut="A"), option_b)
    assert "unexpected keys" in str(info.value)
    assert "stages.1.0.shortcut.conv.weight" in str(info.value)
    with pytest.raises(WeightsMismatchError, match="missing keys: .*shortcut"):
        load_weights(create_backbone("resnet18", shortcut="C"), option_b)


def test_unsafe_pickle_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    torch.save({"model": collections.OrderedDict(), "payload": Exploit()}, path)
    with pytest.raises(UnsafeCheckpointError, match="evil.pth"):
        load_weights(create_backbone("cifar_resnet20"), path)
    assert "must never run" not in capsys.readouterr().out


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.pth"):
        load_weights(create_backbone("cifar_resnet20"), tmp_path / "nothere.pth")


def test_torchvision_weights_refuse_a_different_layout():
    with pytest.raises(ValueError, match="stride_in_1x1: file False, model True"):
        create_backbone("resnet50", stride_in_1x1=True, weights="torchvision")
    with pytest.raises(ValueError, match="no weights for 'cifar_resnet20'"):
        create_backbone("cifar_resnet20", weights="torchvision")
