"""`tools/demo.py --smoke` end to end, interrupted during a detector's training and run again:
it resumes rather than restarts, and the report's numbers are the evaluation files' numbers.
The `demo` fixture (conftest.py) is shared with the GPU check's dry run."""

import json
import re
import shutil

from PIL import Image

from engine.metrics import read_metrics
from helpers import REPO, call_tool


def test_interrupted_demo_resumes_rather_than_restarts(demo):
    out, first_log, second_log = demo
    assert "interrupted: run the same command again" in first_log, first_log[-2000:]
    assert f"pretrained: {out / 'pretrain' / 'cifar_plain56'}" in second_log  # kept, not retrained
    log = (out / "detect" / "cifar_plain56_c4" / "train.log").read_text()  # its worker's output
    resumed = re.search(r"resumed from \S+plain56_c4\S+ at iteration (\d+)", log)
    assert resumed and int(resumed.group(1)) >= 2, log[-3000:]


def test_report_holds_both_tables_and_the_pictures(demo):
    out = demo[0]
    report = (out / "report.md").read_text()
    assert all(f"| {net} | " in report for net in ("plain-20", "plain-56", "ResNet-56"))
    assert "| plain-56 (VGG-style) |" in report and "| VGG-16: 41.5 | 21.2 |" in report
    assert "| ResNet-101: 48.4 | 27.2 |" in report
    for picture in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report):
        assert Image.open(out / picture).size[0] > 100, picture
    # curves, Fig. 7, gradients, plain vs residual side by side, each detector's grid, Mask R-CNN's
    assert len(re.findall(r"!\[", report)) == 7
    assert "left plain-56 (VGG-style), right ResNet-56" in report and "score >= 0.5" in report
    side = Image.open(out / "visualize/side_by_side.png")
    assert side.size[0] >= 600  # two columns of 320 px panels


def test_report_numbers_are_the_evaluation_files_numbers(demo):
    out = demo[0]
    report = (out / "report.md").read_text()
    for name, label in (("cifar_plain56_c4", "plain-56 (VGG-style)"), ("cifar_resnet56_c4", "ResNet-56")):
        summary = json.loads((out / "detect" / name / "eval_pycocotools" / "metrics.json").read_text())
        assert summary["backend"] == "pycocotools"
        m = summary["metrics"]
        assert f"| {label} | {100 * m['val_AP50']:.1f} | {100 * m['val_AP']:.1f} |" in report
    for run, label in (("cifar_plain20", "plain-20"), ("cifar_resnet56", "ResNet-56")):
        final = [r for r in read_metrics(out / "pretrain" / run) if "val_top1_error" in r][-1]
        row = re.search(rf"\| {re.escape(label)} \| [^|]+ \| [^|]+ \| ([\d.]+) \|", report)
        assert row and float(row.group(1)) == round(100 * final["val_top1_error"], 1)


def test_mask_rcnn_on_the_residual_net_with_its_mask_ap(demo):
    out = demo[0]
    report = (out / "report.md").read_text()
    results = json.loads((out / "results.json").read_text())
    best, net = "ResNet-56", "cifar_resnet56"
    assert results["masks"]["net"] == best
    evaluation = out / "detect" / f"{net}_c4_mask" / "eval_pycocotools" / "metrics.json"
    summary = json.loads(evaluation.read_text())
    assert summary["kind"] == "mask_rcnn"
    m = summary["metrics"]
    cells = " | ".join(f"{100 * m[f'val_{k}']:.1f}" for k in ("AP50", "AP", "segm_AP50", "segm_AP"))
    assert f"| {best} | {cells} |" in report
    assert (out / "visualize" / f"{net}_c4_mask" / "grid.png").is_file()


def test_visualize_draws_any_image_folder_with_a_demo_checkpoint(demo, tmp_path):
    out = demo[0]
    detect = out / "detect" / "cifar_resnet56_c4"
    result = call_tool("visualize", "--config",
                       str(REPO / "configs/demo/detect.yaml"), "--checkpoint",
                       str(detect / "checkpoints/last.pth"), "--images", str(out / "data/detection/val"),
                       "--num", "3", "--score", "0", "--top", "2", "--out", str(tmp_path / "drawn"),
                       "model.num_classes=6", "model.options.min_size=96", "model.options.max_size=96")
    assert result.returncode == 0, result.stderr[-2000:]
    drawn = sorted(p.name for p in (tmp_path / "drawn").iterdir())
    assert drawn == ["00001.png", "00002.png", "00003.png", "grid.png"]
    assert Image.open(tmp_path / "drawn/00001.png").size == (96, 96)


def test_a_pretraining_finished_without_its_evaluation_is_named(demo, tmp_path):
    """done.json with no final evaluation (an older toolkit's interrupted run) stops the report
    with an error naming it, rather than a KeyError."""
    out = tmp_path / "demo"
    shutil.copytree(demo[0], out)
    done = out / "pretrain" / "cifar_plain20" / "done.json"
    done.write_text(json.dumps({"iteration": 4, "metrics": {}}))
    result = call_tool("demo", "--smoke", "--out", str(out))
    assert result.returncode != 0 and f"{done}: finished without its final evaluation" in result.stderr


def test_report_says_what_fig7_and_the_gradients_show_on_its_nets(demo):
    out = demo[0]
    report = (out / "report.md").read_text()
    responses = {e["net"]: e for e in json.loads((out / "analysis" / "responses.json").read_text())}
    assert sorted(responses) == ["ResNet-56", "plain-20", "plain-56"]
    assert [len(responses[n]["layers"]) for n in ("plain-20", "plain-56", "ResNet-56")] == [19, 55, 55]
    pairs = zip(responses["ResNet-56"]["layers"], responses["plain-56"]["layers"])
    smaller = sum(r["std"] < p["std"] for r, p in pairs)
    assert f"ResNet-56's responses are smaller than plain-56's at {smaller} of 55 layers" in report
    ratio = json.loads((out / "analysis" / "gradients.json").read_text())[1]["stage_ratio"]
    assert f"plain-56's backward signal at its first stage is {ratio:.2f}x its last" in report
