"""`make gpu-check` cannot rot: its dry run (`--cpu`) runs every stage at toy size here."""

import json
import shutil
import subprocess
import sys

import pytest
import torch

import gpu_report as check
import gpu_throughput as throughput
from experiments.jobs import GRACE_S
from gpu_report import STAGES, gpu_check, run_stage
from helpers import REPO, call_tool


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory, demo):
    """`bench/gpu_check.py --cpu`. Stage b finds the smoke demo of test_demo.py (the `demo`
    fixture, trained, interrupted and resumed there) already done: it rebuilds its report and
    pictures rather than training the same nets a second time in this suite."""
    out = tmp_path_factory.mktemp("gpu_check")
    shutil.copytree(demo[0], out / "demo")
    done = subprocess.run([sys.executable, "bench/gpu_check.py", "--cpu", "--out", str(out),
                           "--bundle", str(out / "bundle")], cwd=REPO,
                          capture_output=True, text=True)
    return out, done


def test_the_dry_run_passes_every_stage_on_the_cpu_and_reports_them(dry_run):
    out, done = dry_run
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert list(report["stages"]) == list(STAGES)
    for key, stage in report["stages"].items():
        assert stage["status"] == "passed" and stage["device"].startswith("CPU"), key
    text = (out / "report.md").read_text()
    assert all(f"## {k}. {s.title}: passed" in text for k, s in STAGES.items())
    tables = {t["title"].split(" (")[0]: t for t in report["stages"]["d"]["tables"]}
    resnet = tables["ResNet-50 training, bf16 autocast, channels-last"]["rows"]
    assert [r[0] for r in resnet] == ["ours resnet50", "torchvision resnet50"]
    assert all(float(r[2]) > 0 for r in resnet)
    assert (out / "pip-freeze.txt").read_text().count("==") > 10
    images = {p.name for p in sorted((out / "demo/data/detection/val").glob("*.png"))[:4]}
    found = json.loads((out / "predict" / "predictions.json").read_text())
    assert found and all(r["image_id"] in images and r["score"] >= 0.05 for r in found)
    assert len(list((out / "predict").glob("*.png"))) == 4  # one picture per image
    assert (out / "detector.onnx").stat().st_size > 1e5
    assert 0 <= report["stages"]["c"]["figures"]["segmentation_val_mIoU"] <= 1
    for path in report["stages"]["f"]["files"]:  # Table 6's report and Figure 6
        assert (out / path).is_file(), path
    assert any(p.endswith(".png") for p in report["stages"]["f"]["files"])
    brought = sorted(str(p.relative_to(out / "bundle")) for p in (out / "bundle").rglob("*") if p.is_file())
    assert len(brought) == 8 and "report.md" in brought and "table6/figure6.png" in brought


def test_without_a_gpu_the_check_says_so_in_one_line_and_exits_2(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    done = call_tool("gpu_check", "--out", tmp_path)
    assert done.returncode == 2 and not done.stdout
    error = done.stderr.strip()
    assert error.startswith("error: no CUDA GPU") and "--cpu" in error and "\n" not in error
    done = call_tool("gpu_check", "--cpu", "--only", "a,z", "--out", tmp_path)
    assert done.returncode == 2 and "unknown stage z" in done.stderr


def test_a_stage_over_its_budget_is_stopped_and_reported_and_the_rest_run(tmp_path, monkeypatch):
    result = run_stage("a", tmp_path, cpu=True, budget=0.5)  # importing torch alone takes longer
    assert result["status"] == "over budget" and result["seconds"] < 0.5 + GRACE_S

    def fake(key, out, cpu, budget):
        return {"status": "over budget" if key == "a" else "passed", "seconds": 1.0, "budget_s": budget}

    monkeypatch.setattr(check, "run_stage", fake)
    report, failed = gpu_check(tmp_path, cpu=True, only="a,b")
    assert failed == ["a"] and "## a. environment: over budget" in report.read_text()
    assert "## b. the demo pipeline (tools/demo.py): passed" in report.read_text()


def test_out_of_gpu_memory_halves_the_batch_and_says_so(monkeypatch):
    tried = []

    def at(batch, settings, device, sync):
        tried.append(batch)
        if batch > 64:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return ["model"], [["ours resnet50", batch]]

    monkeypatch.setattr(throughput, "_classification_at", at)
    monkeypatch.setitem(throughput.CLASSIFICATION, "cpu", {"batches": (256, 128, 64)})
    header, rows, notes = throughput.classification_rows(cpu=True, sync=lambda: None)
    assert tried == [256, 128, 64] and rows == [["ours resnet50", 64]]
    assert notes == [f"ResNet-50 at batch {b} ran out of GPU memory: batch halved" for b in (256, 128)]


def test_stage_f_unpacks_the_cifar_jpeg_archive_beside_the_checkout_or_says_where_it_looked(tmp_path):
    import tarfile

    from gpu_stages import CIFAR_JPEG, cifar_jpeg

    with pytest.raises(FileNotFoundError, match=f"data/{CIFAR_JPEG}"):
        cifar_jpeg(tmp_path / "data", shared=tmp_path / "none")
    tree = tmp_path / "tree"
    for split in ("train", "test"):
        (tree / split / "cat").mkdir(parents=True)
        (tree / split / "cat" / "0.jpg").write_bytes(b"jpeg")
    (tmp_path / "data").mkdir()
    with tarfile.open(tmp_path / "data" / CIFAR_JPEG, "w:xz") as tar:  # laid out as the real one
        for split in ("train", "test"):
            tar.add(tree / split, arcname=split)
    folder = cifar_jpeg(tmp_path / "data", shared=tmp_path / "none")
    assert folder == tmp_path / "data/cifar10-jpeg" and (folder / "test/cat/0.jpg").is_file()
