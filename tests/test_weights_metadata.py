"""Every weights file says what it is; a load into a model built otherwise is an error naming the
option and both values; dense-task builders take the file's options when not told them."""

import pickle

import numpy as np
import pytest
import torch
import torchvision
from safetensors import safe_open
from safetensors.torch import save_file

from backbones import (
    BackboneError,
    UnsafeCheckpointError,
    WeightsMismatchError,
    create_backbone,
    load_weights,
    read_state_file,
    save_weights,
)
from backbones.metadata import (
    FORMAT,
    TORCHVISION_VGG,
    check_compatible,
    describe,
    find_backbone,
    known_layout,
    parse,
    same_input,
    set_spec,
)
from backbones.msra import BGR_MEAN, description, load_blobs
from classification.pretrain import load_pretrain_config, pretrain
from detection import build_faster_rcnn, load_detector_weights
from helpers import SMOKE, Exploit
from segmentation import build_segmenter
from weights_files import msra_blobs, python2_pickle

INPUT = {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3]}


def paper_bottleneck_file(tmp_path, name="resnet50"):
    """A backbone file as a pretraining run writes it: the paper's stride-in-1x1 bottleneck."""
    net = create_backbone(name, stride_in_1x1=True)
    path = tmp_path / "backbone.safetensors"
    save_file(net.state_dict(), str(path), metadata=describe(net, task="classification",
                                                             input_convention=INPUT))
    return net, path


def test_detector_takes_the_files_layout_and_input(tmp_path, caplog):
    """The issue's reproduction: a stride-in-1x1 file into a detector told nothing."""
    caplog.set_level("INFO", logger="backbones")
    net, path = paper_bottleneck_file(tmp_path)
    detector = build_faster_rcnn("resnet50", head="c4", num_classes=3, backbone_weights=path)
    body = find_backbone(detector)
    assert body.registry_options["stride_in_1x1"] is True
    assert body.stages[1][0].conv1.stride == (2, 2) and body.stages[1][0].conv2.stride == (1, 1)
    assert "taking stride_in_1x1=True" in caplog.text
    torch.testing.assert_close(body.stages[1][0].conv1.weight, net.stages[1][0].conv1.weight)
    assert detector.transform.image_mean == INPUT["mean"] and detector.transform.image_std == INPUT["std"]
    assert parse(describe(detector, task="detection"))["input"] == INPUT  # its files say it again


def test_an_input_convention_typed_to_six_digits_is_the_files():
    """A config's image_mean / image_std typed from a file's convention to six significant digits
    is that convention (relative 1e-5); a zero mean is one to float32 round-off (absolute 1e-7)."""
    msra = {"mean": [m / 255 for m in reversed(BGR_MEAN)], "std": [1 / 255] * 3}
    typed = {key: [float(f"{v:.6g}") for v in values] for key, values in msra.items()}
    assert max(abs(a - b) for key in msra for a, b in zip(typed[key], msra[key])) > 1e-7
    assert same_input(typed, msra)
    assert not same_input({**msra, "mean": [v * (1 + 1e-4) for v in msra["mean"]]}, msra)
    unit = {"mean": [0.0] * 3, "std": [1.0] * 3}
    assert same_input(unit, {**unit, "mean": [3e-8] * 3})
    assert not same_input(unit, {**unit, "mean": [1e-6] * 3})


def test_told_otherwise_is_an_error_naming_option_and_values(tmp_path):
    _, path = paper_bottleneck_file(tmp_path)
    with pytest.raises(WeightsMismatchError, match="stride_in_1x1: file True, model False"):
        build_faster_rcnn("resnet50", head="c4", num_classes=3, backbone_weights=path,
                          stride_in_1x1=False)
    with pytest.raises(WeightsMismatchError, match="stride_in_1x1: file True, model False"):
        load_weights(create_backbone("resnet50"), path)
    with pytest.raises(WeightsMismatchError, match="backbone: file 'resnet50', model 'plain50'"):
        load_weights(create_backbone("plain50", stride_in_1x1=True), path)
    with pytest.raises(ValueError, match=r"image_mean=\[0.485.*differ from the input"):
        build_faster_rcnn("resnet50", head="c4", num_classes=3, backbone_weights=path,
                          image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])


def test_segmenter_takes_the_files_layout_through_the_same_adapter(tmp_path):
    net = create_backbone("resnet50", stride_in_1x1=True)
    path = tmp_path / "b.safetensors"
    imagenet = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    save_file(net.state_dict(), str(path), metadata=describe(net, task="classification",
                                                             input_convention=imagenet))
    model = build_segmenter("resnet50", head="fcn", num_classes=3, backbone_weights=path)
    assert find_backbone(model).registry_options["stride_in_1x1"] is True
    _, other = paper_bottleneck_file(tmp_path)  # trained on INPUT, not ImageNet's normalisation
    with pytest.raises(ValueError, match="segmentation data are normalised with ImageNet's"):
        build_segmenter("resnet50", head="fcn", num_classes=3, backbone_weights=other)


def test_torchvision_files_are_a_known_layout(tmp_path):
    path = tmp_path / "tv.pth"
    torch.save(torchvision.models.resnet50().state_dict(), path)
    with pytest.raises(WeightsMismatchError, match="torchvision/timm ResNet.*stride_in_1x1: file False"):
        load_weights(create_backbone("resnet50", stride_in_1x1=True), path)
    detector = build_faster_rcnn("resnet50", head="c4", num_classes=3, backbone_weights=path)
    assert find_backbone(detector).registry_options["stride_in_1x1"] is False


def test_known_layouts_need_both_of_their_keys():
    one = torch.zeros(1)
    assert known_layout({"features.0.weight": one, "classifier.0.weight": one}) is TORCHVISION_VGG
    assert known_layout({"features.0.weight": one}) is None  # a VGG's convolutions alone: not the file
    assert known_layout({"classifier.0.weight": one}) is None


def test_options_are_stored_as_sorted_json_with_the_text_of_what_json_lacks():
    """The same options give the same metadata whatever their order; a value JSON has no type for
    (a dtype) is stored as its text rather than failing the save."""
    model = create_backbone("cifar_resnet20")
    set_spec(model, "cifar_resnet20", {"shortcut": "A", "levels": (1, 2), "dtype": torch.float32})
    assert describe(model, task="classification")["options"] == (
        '{"dtype": "torch.float32", "levels": [1, 2], "shortcut": "A"}')


def test_parse_reads_what_the_trainer_and_the_tasks_write():
    written = {"format": FORMAT, "task": "detection", "backbone": "resnet18", "options": '{"shortcut": "B"}',
               "config": "name: run\n", "categories": '["cat", "dog"]', "category_ids": "[17, 18]"}
    assert parse(written) == {"backbone": "resnet18", "task": "detection", "options": {"shortcut": "B"},
                              "input": None, "config": "name: run\n", "categories": ["cat", "dog"],
                              "category_ids": [17, 18]}
    assert parse({"format": FORMAT, "task": "classification"}) == {  # a model with no registry backbone
        "backbone": None, "task": "classification", "options": {}, "input": None, "config": None}
    assert parse({"format": "another/v1", "task": "x"}) is None and parse(None) is None


def test_a_mismatch_names_every_option_the_model_has_and_how_to_build_it():
    """Options the model does not know (a later version's) are passed over, not the end of the
    check; a file that records no options is compared by name only."""
    model = create_backbone("resnet18")
    description = {"backbone": "resnet50", "options": {"from_a_later_version": 1, "shortcut": "A"}}
    with pytest.raises(WeightsMismatchError) as error:
        check_compatible(model, description, "w.safetensors")
    assert str(error.value) == (
        "weights w.safetensors were trained as another network (the file's metadata): backbone: file "
        "'resnet50', model 'resnet18'; shortcut: file 'A', model 'B'. Build the model with the file's "
        "options (or leave them unset in a detection / segmentation config, which then takes the file's)")
    check_compatible(model, {"backbone": "resnet18"}, "w.safetensors")


def test_pretraining_run_files_record_name_options_and_input(tmp_path):
    cfg = load_pretrain_config(SMOKE, [f"output_dir={tmp_path}", "model.name=cifar_resnet20",
                                       "model.options.shortcut=B"])
    pretrain(cfg)
    for name in ("backbone.safetensors", "final.safetensors"):
        with safe_open(str(tmp_path / name), "pt") as f:
            meta = parse(f.metadata())
        assert meta["backbone"] == "cifar_resnet20" and meta["options"]["shortcut"] == "B"
        assert meta["task"] == "classification" and len(meta["input"]["mean"]) == 3
    last = torch.load(tmp_path / "checkpoints/last.pth", weights_only=True)
    assert parse(last["meta"])["options"]["shortcut"] == "B"
    with pytest.raises(WeightsMismatchError, match="shortcut: file 'B', model 'A'"):
        load_weights(create_backbone("cifar_resnet20"), tmp_path / "checkpoints/last.pth")
    detector = build_faster_rcnn("cifar_resnet20", head="c4", num_classes=3, norm="gn",
                                 backbone_weights=tmp_path / "backbone.safetensors",
                                 anchor_sizes=[16, 32], roi_size=8)
    assert find_backbone(detector).registry_options["shortcut"] == "B"


def test_detector_files_say_which_backbone(tmp_path):
    detector = build_faster_rcnn("resnet18", head="c4", num_classes=3)
    path = tmp_path / "final.safetensors"
    save_file({k: v.contiguous() for k, v in detector.state_dict().items()}, str(path),
              metadata=describe(detector, task="detection"))
    load_detector_weights(build_faster_rcnn("resnet18", head="c4", num_classes=3), path)
    with pytest.raises(WeightsMismatchError, match="norm: file 'gn', model 'frozen_bn'"):
        gn = build_faster_rcnn("resnet18", head="c4", num_classes=3, norm="gn")
        save_file({k: v.contiguous() for k, v in gn.state_dict().items()}, str(path),
                  metadata=describe(gn, task="detection"))
        load_detector_weights(detector, path)


# ---- Detectron's MSRA models -----------------------------------------------------------------

@pytest.fixture(scope="module")
def msra(tmp_path_factory):
    torch.manual_seed(0)
    reference = create_backbone("resnet50", stride_in_1x1=True).eval()
    for module in reference.modules():  # random statistics, so folding them matters
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    path = tmp_path_factory.mktemp("msra") / "R-50.pkl"
    path.write_bytes(python2_pickle(msra_blobs(reference)))  # as Detectron's: Python 2, numpy 1
    return reference, path


def test_msra_pkl_gives_the_original_logits_on_rgb_input(msra):
    reference, path = msra
    ours = load_weights(create_backbone("resnet50", stride_in_1x1=True, norm="frozen_bn"), path).eval()
    rgb = torch.rand(2, 3, 64, 64)
    bgr255 = rgb.flip(1) * 255 - torch.tensor(BGR_MEAN).view(1, 3, 1, 1)
    convention = ours.input_convention
    mean, std = (torch.tensor(convention[k]).view(1, 3, 1, 1) for k in ("mean", "std"))
    with torch.no_grad():
        expected, got = reference(bgr255), ours((rgb - mean) / std)
    # float32 round-off through 50 layers at activations of O(100): relative, not absolute
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())


def test_msra_pkl_into_a_detector_sets_its_normalisation(msra):
    _, path = msra
    detector = build_faster_rcnn("resnet50", head="c4", num_classes=3, backbone_weights=path)
    assert find_backbone(detector).registry_options["stride_in_1x1"] is True
    assert detector.transform.image_std == pytest.approx([1 / 255] * 3)
    assert detector.transform.image_mean == pytest.approx([m / 255 for m in reversed(BGR_MEAN)])
    with pytest.raises(WeightsMismatchError, match="backbone: file 'resnet50', model 'resnet101'"):
        build_faster_rcnn("resnet101", head="c4", num_classes=3, backbone_weights=path)


def test_msra_pkl_says_what_it_is_and_python_3_files_load(msra, tmp_path):
    """Depth from conv4_x's block count (Table 1), the paper's bottleneck, BGR 0-255 input; the
    blobs pickled again by Python 3 and numpy 2 (module `numpy._core`) read the same arrays."""
    _, path = msra
    blobs = load_blobs(path)
    assert description(blobs) == {
        "layout": "Detectron MSRA (Caffe) ResNet", "task": "classification", "backbone": "resnet50",
        "options": {"stride_in_1x1": True, "shortcut": "B", "norm": "frozen_bn"},
        "input": {"mean": [m / 255 for m in reversed(BGR_MEAN)], "std": [1 / 255] * 3}}
    five = {name: blob for name, blob in blobs.items() if not name.startswith("res4_5_")}
    assert description(five)["backbone"] is None  # no depth of Table 1 has 5 blocks in conv4_x
    (tmp_path / "py3.pkl").write_bytes(pickle.dumps(blobs, protocol=2))
    assert b"numpy._core" in (tmp_path / "py3.pkl").read_bytes()
    again = load_blobs(tmp_path / "py3.pkl")
    assert again.keys() == blobs.keys() and all(np.array_equal(again[k], blobs[k]) for k in blobs)
    doubles = tmp_path / "float64.pkl"  # read as the float32 every other file gives
    doubles.write_bytes(python2_pickle({**blobs, "conv1_w": blobs["conv1_w"].astype(np.float64)}))
    assert {t.dtype for t in read_state_file(doubles)["model"].values()} == {torch.float32}
    (tmp_path / "list.pkl").write_bytes(pickle.dumps([blobs["conv1_w"]], protocol=2))
    with pytest.raises(WeightsMismatchError, match=r"list\.pkl is not a Detectron model: it holds a list"):
        load_blobs(tmp_path / "list.pkl")


def test_msra_pkl_with_other_objects_or_blobs_is_refused(tmp_path, capsys):
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"conv1_w": np.zeros(3), "x": Exploit()}, protocol=2))
    with pytest.raises(UnsafeCheckpointError, match=r"refused to unpickle .*print"):
        load_weights(create_backbone("resnet50", stride_in_1x1=True), evil)
    assert "must never run" not in capsys.readouterr().out
    odd = tmp_path / "odd.pkl"
    odd.write_bytes(pickle.dumps({"conv1_w": np.zeros((64, 3, 7, 7), np.float32),
                                  "res2_0_branch2d_w": np.zeros(1), "pred_w": np.zeros(1)}))
    with pytest.raises(WeightsMismatchError, match=r"odd\.pkl: blobs that are not an MSRA ResNet's: "
                                                   r"pred_w, res2_0_branch2d_w$"):
        load_weights(create_backbone("resnet50", stride_in_1x1=True), odd)


def test_save_weights_writes_a_described_file_the_detector_checks(tmp_path):
    """backbones.save_weights: what a pretraining run writes, from Python; the layout is checked
    when a detector loads it (the paper's bottleneck is not torchvision's, same shapes)."""
    net = create_backbone("resnet50", stride_in_1x1=True)
    path = save_weights(net, tmp_path / "r50.safetensors")
    with safe_open(str(path), "pt") as f:
        stored = parse(f.metadata())
    assert stored["backbone"] == "resnet50" and stored["options"]["stride_in_1x1"] is True
    detector = build_faster_rcnn("resnet50", head="c4", num_classes=3, backbone_weights=path)
    body = find_backbone(detector)
    assert body.registry_options["stride_in_1x1"] is True
    torch.testing.assert_close(body.stages[0][0].conv1.weight, net.stages[0][0].conv1.weight)
    with pytest.raises(WeightsMismatchError, match="stride_in_1x1: file True, model False"):
        load_weights(create_backbone("resnet50"), path)
    assert not list(tmp_path.glob(".*.tmp"))


def test_save_weights_refuses_what_could_not_say_what_it_is(tmp_path):
    with pytest.raises(ValueError, match=r"\.safetensors"):
        save_weights(create_backbone("resnet18"), tmp_path / "r18.pth")
    with pytest.raises(BackboneError, match="no registry backbone"):
        save_weights(torchvision.models.resnet18(), tmp_path / "tv.safetensors")
    assert not list(tmp_path.iterdir())
