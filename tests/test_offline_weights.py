"""Published weights with no network: one line saying where the file goes, within seconds; a file
already in the cache loads with no network; timm's `pretrained=True` (issue 32)."""

import socket
import time

import pytest
import timm
import torch
import torchvision
from huggingface_hub import constants
from safetensors.torch import save_file

from backbones import InvalidOptionError, create_backbone
from backbones.hub import WeightsUnavailableError
from detection import build_faster_rcnn


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """Empty torch and Hugging Face caches; every connection refused (a count of the tries)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    tries = []

    def refuse(address, *args, **kwargs):
        tries.append(address)
        raise ConnectionRefusedError("network refused by the test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    return tries


def torchvision_cache_file(tmp_path, name: str):
    url = torchvision.models.get_model_weights(name).DEFAULT.url
    return tmp_path / "torch" / "hub" / "checkpoints" / url.rsplit("/", 1)[1], url


def timm_cache_file(tmp_path, model: str, commit: str = "0" * 40):
    """Where huggingface_hub's cache keeps the default weights of timm's `model`."""
    repo = timm.models.get_pretrained_cfg(model).hf_hub_id
    folder = tmp_path / "hf" / "hub" / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    path = folder / "snapshots" / commit / "model.safetensors"
    path.parent.mkdir(parents=True)
    return path, repo


def test_torchvision_weights_offline_is_one_line_naming_url_and_place(tmp_path, offline):
    path, url = torchvision_cache_file(tmp_path, "resnet50")
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailableError) as error:
        create_backbone("resnet50", weights="torchvision")
    assert time.perf_counter() - start < 5
    message = str(error.value)
    assert "\n" not in message and url in message and str(path) in message and "weights=<path>" in message
    assert len(offline) == 1  # one try, no retries


def test_torchvision_weights_in_the_cache_load_with_no_network(tmp_path, offline):
    path, _ = torchvision_cache_file(tmp_path, "resnet18")
    path.parent.mkdir(parents=True)
    reference = torchvision.models.resnet18()
    torch.save(reference.state_dict(), path)
    model = create_backbone("resnet18", weights="torchvision")
    torch.testing.assert_close(model.stem.conv.weight, reference.conv1.weight)
    detector = build_faster_rcnn("resnet18", head="c4", num_classes=3, backbone_weights="torchvision")
    torch.testing.assert_close(detector.backbone.stem.conv.weight, reference.conv1.weight)
    assert not offline


def test_timm_weights_offline_is_one_line_with_no_retries(tmp_path, offline):
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailableError) as error:
        create_backbone("timm/resnet18", pretrained=True)
    assert time.perf_counter() - start < 5
    message = str(error.value)
    assert "\n" not in message and "timm/resnet18.a1_in1k" in message
    assert constants.HF_HUB_CACHE in message and "weights=<path>" in message
    assert len(offline) == 1


@pytest.mark.parametrize("spelling", [{"pretrained": True}, {"weights": "timm"}])
def test_timm_weights_in_the_hugging_face_cache_load_with_no_network(tmp_path, offline, spelling):
    path, _ = timm_cache_file(tmp_path, "resnet18")
    reference = timm.create_model("resnet18")
    save_file(reference.state_dict(), str(path))
    model = create_backbone("timm/resnet18", **spelling)
    torch.testing.assert_close(model.model.conv1.weight, reference.conv1.weight)
    assert model.input_convention["mean"] == pytest.approx(list(reference.pretrained_cfg["mean"]))
    assert not offline


def test_pretrained_true_on_our_nets_names_the_weights_to_use():
    with pytest.raises(InvalidOptionError, match="weights='torchvision'"):
        create_backbone("resnet50", pretrained=True)
    with pytest.raises(InvalidOptionError, match="both given"):
        create_backbone("timm/resnet18", pretrained=True, weights="w.pth")
