"""ONNX export, checked by onnxruntime against PyTorch at export time: classifiers to 1e-4,
detectors (C4 and FPN) to 1e-3 px for the boxes both keep; failures name the model."""


import numpy as np
import pytest
import torch

from backbones import create_backbone
from classification.export import export_classifier
from detection import build_faster_rcnn
from detection.export import export_detector
from engine.onnx import ExportError
from helpers import call_tool

onnxruntime = pytest.importorskip("onnxruntime", reason="the export extra: pip install -e '.[export]'")


@pytest.mark.parametrize("name, size", [("resnet18", 64), ("cifar_resnet20", 32)])
def test_backbone_logits_equal_pytorchs(name, size, tmp_path):
    torch.manual_seed(0)
    model = create_backbone(name).eval()
    report = export_classifier(model, tmp_path / "net.onnx", size)
    assert report["max_abs_difference"] <= 1e-4
    session = onnxruntime.InferenceSession(str(tmp_path / "net.onnx"))
    images = torch.randn(5, 3, size, size)  # another batch size: the batch axis is dynamic
    with torch.no_grad():
        expected = model(images).numpy()
    assert np.abs(session.run(None, {"images": images.numpy()})[0] - expected).max() <= 1e-4


@pytest.mark.parametrize("head, options", [
    ("c4", {"anchor_sizes": [16, 32, 64], "roi_size": 7}),
    ("fpn", {"anchor_sizes": [8, 16, 32, 64, 128]}),
])
def test_detector_boxes_equal_pytorchs(head, options, tmp_path):
    torch.manual_seed(0)
    model = build_faster_rcnn("resnet18", head=head, num_classes=3, min_size=96, max_size=96,
                              box_score_thresh=0.0, rpn_post_nms_top_n_test=50, **options)
    report = export_detector(model, tmp_path / "det.onnx", 96, 96)
    assert report["boxes"] > 10 and report["matched"] >= 0.9 * report["boxes"]
    assert report["max_abs_difference"] <= 1e-3
    session = onnxruntime.InferenceSession(str(tmp_path / "det.onnx"))
    image = torch.rand(3, 96, 96, generator=torch.Generator().manual_seed(1))
    boxes, labels, scores = session.run(None, {"image": image.numpy()})
    with torch.no_grad():
        expected = model.eval()([image])[0]
    assert len(boxes) == len(expected["boxes"])
    assert np.abs(boxes - expected["boxes"].numpy()).max() <= 1e-3


def test_a_model_that_does_not_export_is_named_and_nothing_is_written(tmp_path):
    class Unexportable(torch.nn.Module):
        def forward(self, x):
            return torch.linalg.svd(x.flatten(1)).S  # no ONNX operator computes an SVD

    with pytest.raises(ExportError, match="cannot export the toy net to ONNX: operator aten._linalg_svd"):
        export_classifier(Unexportable(), tmp_path / "x.onnx", 8, what="the toy net")
    assert list(tmp_path.iterdir()) == []


def test_a_wrong_export_is_refused_before_the_file_is_written(tmp_path, monkeypatch):
    """The check compares: an ONNX file computing something else is not written."""
    import engine.onnx

    real = onnxruntime.InferenceSession

    class Shifted(real):
        def run(self, *args, **kwargs):
            return [o + 1e-2 for o in super().run(*args, **kwargs)]

    monkeypatch.setattr(onnxruntime, "InferenceSession", Shifted)
    with pytest.raises(ExportError, match="differ from PyTorch's by 1.00e-02"):
        export_classifier(create_backbone("cifar_resnet20"), tmp_path / "x.onnx", 32)
    assert list(tmp_path.iterdir()) == [] and engine.onnx


def test_export_tool_for_a_bare_backbone_and_its_errors(tmp_path):
    result = call_tool("export", "--backbone", "cifar_resnet20",
                       "--out", str(tmp_path / "r20.onnx"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "max_abs_difference" in result.stdout
    assert (tmp_path / "r20.onnx").stat().st_size > 4 * 270_000  # the weights inside: one file
    assert [p.name for p in tmp_path.iterdir()] == ["r20.onnx"]
    wrong = tmp_path / "wrong.pth"
    torch.save(create_backbone("cifar_resnet32").state_dict(), wrong)
    result = call_tool("export", "--backbone", "cifar_resnet20",
                       "--weights", str(wrong), "--out", str(tmp_path / "bad.onnx"))
    assert result.returncode == 2 and "unexpected keys" in result.stderr
    assert not (tmp_path / "bad.onnx").exists()


def test_the_detector_check_fails_boxes_a_pixel_apart_and_passes_round_off():
    """The runtimes' boxes compared at torchvision's tolerance (1e-3 of the image side, 0.8 px at
    800 px): round-off passes, a box moved by 2 px (a wrong resize or normalisation) fails."""
    import numpy as np

    from detection.export import RELATIVE_TOLERANCE, TOLERANCE, _check

    boxes = torch.tensor([[10.0, 20.0, 300.0, 400.0], [500.0, 100.0, 780.0, 700.0]])
    torch_output = {"boxes": boxes, "labels": torch.tensor([1, 2])}
    limit = TOLERANCE + RELATIVE_TOLERANCE * 800
    near = [(boxes + 0.05).numpy(), np.array([1, 2])]
    assert _check(torch_output, near, "d", limit)["matched"] == 2
    far = boxes.clone()
    far[1, 2] += 2.0
    with pytest.raises(ExportError, match="ONNX detections differ"):
        _check(torch_output, [far.numpy(), np.array([1, 2])], "d", limit)
