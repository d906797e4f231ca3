"""The CIFAR-10 depth study's planning, table, checks and Figure 6 on tiny fake runs (the real
runs are hours long: docs/results/cifar10/)."""

import json

import pytest
from PIL import Image

from classification.pretrain import load_pretrain_config
from experiments import depth_study


def fake_run(run_dir, model, train_errors, test_error, done=True):
    """Two epochs of 10 iterations: train_error logged every 5, evaluated at each epoch end."""
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(
        f"model:\n  name: {model}\nschedule:\n  unit: epoch\n  total: 2\n")
    records = []
    for i, error in enumerate(train_errors, start=1):
        records.append({"iteration": 5 * i, "epoch": i / 2, "train_error": error,
                        "images_per_s": 100.0 * i, "elapsed_s": 10.0 * i})
        if i % 2 == 0:
            records.append({"iteration": 5 * i, "epoch": i / 2, "elapsed_s": 10.0 * i + 1,
                            "val_top1_error": test_error + 0.1 * (4 - i) / 2})
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if done:
        (run_dir / "done.json").write_text("{}")
    return run_dir


def test_plan_compresses_the_short_schedule_proportionally(tmp_path):
    runs = depth_study.plan([20, 56], "short", tmp_path, epochs=5)
    assert [r.name for r in runs] == ["plain20", "plain56", "resnet20", "resnet56"]
    cfg = load_pretrain_config(runs[1].config, runs[1].overrides)
    assert cfg.model.name == "cifar_plain56" and cfg.schedule.total == 5
    assert [m / cfg.schedule.total for m in cfg.schedule.milestones] == [0.5, 0.75]
    assert f"output_dir={tmp_path / 'plain56'}" in runs[1].command()
    with pytest.raises(FileNotFoundError, match="cifar10_plain57"):
        depth_study.plan([57], "short", tmp_path)


def test_report_table_checks_and_figure_from_fake_runs(tmp_path):
    runs = depth_study.plan([20, 56], "short", tmp_path / "runs")
    errors = {"plain20": ([0.5, 0.4, 0.3, 0.2], 0.25), "plain56": ([0.6, 0.5, 0.4, 0.3], 0.35),
              "resnet20": ([0.5, 0.4, 0.3, 0.2], 0.25), "resnet56": ([0.5, 0.35, 0.25, 0.15], 0.2)}
    for run in runs:
        train, test = errors[run.name]
        fake_run(run.run_dir, f"cifar_{run.name}", train, test, done=run.name != "resnet56")
    report = depth_study.write_report(runs, tmp_path / "out", "python tools/reproduce.py cifar10")
    text = report.read_text()
    # train error: mean of the last epoch's windows; test error: the last evaluation
    assert "| plain-56 | 0.85 | 2 | 35.00 | 35.00 | - (Figure 6 only) | 0.7 | 300 |" in text
    assert "| resnet-56 | 0.85 | 2 | 20.00 | 20.00 | 6.97 |" in text
    assert "plain-56 train error 35.00% vs plain-20 25.00%: paper expects higher -> as expected" in text
    assert "resnet-56 test error 20.00% vs resnet-20 25.00%: paper expects no higher -> as expected" in text
    assert "Missing or unfinished: resnet56 (unfinished" in text
    # iterations to the worst net's final training error (plain-56's 35%): the first window under it
    assert "iterations to 35.0% train error |" in text
    assert "| 300 | 20 |" in text
    assert "| resnet-56 | 0.85 | 2 | 20.00 | 20.00 | 6.97 | 0.7 | 300 | 10 |" in text
    assert "Figure 7" not in text  # no weights in fake runs: nothing to measure
    assert (tmp_path / "out/plain56/metrics.jsonl").is_file()
    assert Image.open(tmp_path / "out/figure6.png").size[0] > 600  # two panels


def test_progress_reads_iterations_against_the_schedule(tmp_path):
    run = fake_run(tmp_path / "r", "cifar_resnet20", [0.5, 0.4, 0.3], 0.3, done=False)
    assert depth_study.progress(run) == pytest.approx(15 / 20)
    assert depth_study.progress(tmp_path / "missing") == 0.0


def test_terminated_study_saves_its_runs_and_continues(tmp_path):
    """SIGTERM to tools/reproduce.py reaches the runs, which save; the same command continues."""
    import signal
    import subprocess
    import sys
    import time

    from helpers import REPO, call_tool

    command = [sys.executable, str(REPO / "tools/reproduce.py"), "cifar10", "--depths", "20",
               "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out"),
               "data.kind=synthetic", "data.num_train=64", "data.num_val=32", "data.num_classes=4",
               "schedule.unit=iter", "schedule.total=12", "schedule.milestones=[8]", "train.batch_size=16",
               "train.ckpt_every=2", "train.log_every=2"]
    first = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    deadline = time.time() + 120
    while not (tmp_path / "runs/plain20/checkpoints/last.pth").exists() and time.time() < deadline:
        time.sleep(0.1)
    first.send_signal(signal.SIGTERM)
    log = first.communicate(timeout=120)[0]
    assert first.returncode != 0 and "interrupted: every run saved" in log, log[-2000:]
    assert "interrupted at iteration" in (tmp_path / "runs/plain20/train.log").read_text()
    second = call_tool("reproduce", *command[2:])  # the same command, in this process
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    assert "resumed from" in (tmp_path / "runs/plain20/train.log").read_text()
    assert all((tmp_path / f"runs/{n}/done.json").is_file() for n in ("plain20", "resnet20"))
    assert (tmp_path / "out/README.md").is_file()


def test_figure7_from_the_studys_trained_nets(tmp_path):
    """Four real (2-iteration) runs on generated images: Figure 7 and the gradients drawn from
    their weights, the claims said for the pair of equal depth and the two ResNets."""
    synthetic = ["data.kind=synthetic", "data.num_train=64", "data.num_val=21", "data.num_classes=4",
                 "data.in_memory=false", "schedule.unit=iter", "schedule.total=2", "schedule.milestones=[1]",
                 "train.batch_size=32", "train.log_every=1", "train.precision=fp32"]
    runs = depth_study.plan([20, 56], "short", tmp_path / "runs", overrides=synthetic)
    for run in runs:
        depth_study.train_run(str(run.config), str(run.run_dir), tuple(run.overrides))
    text = depth_study.write_report(runs, tmp_path / "out", "python tools/reproduce.py cifar10",
                                    reach=99.0).read_text()
    responses = json.loads((tmp_path / "out" / "responses.json").read_text())
    assert [(e["net"], e["images"], len(e["layers"])) for e in responses] == [
        ("plain-20", 21, 19), ("plain-56", 21, 55), ("resnet-20", 21, 19), ("resnet-56", 21, 55)]
    assert "iterations to 99.0% train error" in text and "![Figure 7](responses.png)" in text
    assert "resnet-56's responses are smaller than plain-56's at" in text
    assert "resnet-56's median response std is" in text and "against resnet-20's" in text
    assert text.count("backward signal at its first stage") == 1  # the deepest plain net's
    assert "plain-56's backward signal" in text
    assert Image.open(tmp_path / "out" / "responses.png").size[1] > 600  # two panels, stacked
