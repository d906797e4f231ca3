"""Pretraining end to end on synthetic data: logging, resume, checkpoints, distributed equality."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import engine.checkpoint
from backbones import create_backbone, load_weights
from classification.pretrain import load_pretrain_config, pretrain
from classification.task import ClassificationTask
from engine.config import ConfigError
from engine.metrics import read_metrics
from helpers import REPO, SMOKE, call_tool, free_port, stop_before_done

# Two float32 computations of the same loss in another summation order (a batch split in two, or
# across processes): each of cifar_resnet20's 20 layers sums up to 3*3*64 = 576 products, about
# sqrt(576) * 2**-24 = 1.4e-6 relative round-off per layer, ~3e-5 over the net, so logged losses
# agree to ~1e-4 of their size on any CPU (AVX-512 kernels block the sums differently).
LOSS_RTOL = 1e-4
LOG_FIELDS = {"iteration", "epoch", "lr", "train_loss", "train_error", "images_per_s", "processes"}
EVAL_FIELDS = {"iteration", "epoch", "val_top1_error", "val_top5_error"}


def run(tmp_path, *overrides, name="run"):
    cfg = load_pretrain_config(SMOKE, [f"output_dir={tmp_path / name}", *overrides])
    return cfg, pretrain(cfg)


def test_loss_decreases_and_metrics_are_logged(tmp_path):
    cfg, final = run(tmp_path, "schedule.total=24", "schedule.milestones=[16,20]", "train.log_every=4")
    records = read_metrics(cfg.output_dir)
    train = [r for r in records if "train_loss" in r]
    evals = [r for r in records if "val_top1_error" in r]
    assert all(LOG_FIELDS <= r.keys() for r in train)
    assert all(EVAL_FIELDS <= r.keys() for r in evals) and len(evals) == 6  # each epoch
    assert train[-1]["train_loss"] < 0.7 * train[0]["train_loss"]
    assert final["val_top1_error"] < 0.5  # 4 classes: chance is 0.75
    out = tmp_path / "run"
    assert (out / "config.yaml").is_file() and (out / "checkpoints" / "best.pth").is_file()
    weights = load_file(str(out / "backbone.safetensors"))
    load_weights(create_backbone("cifar_resnet20", num_classes=4), weights)


@pytest.mark.parametrize("workers, accum", [(0, 1), (2, 1), (0, 2)])
def test_kill_and_resume_equals_uninterrupted(tmp_path, workers, accum):
    """Random augmentation on, paused mid-epoch at 5 of 12 steps, resumed: identical weights; with
    accumulation the resume skips the epoch's first step as its two micro-batches."""
    common = ["schedule.total=12", "schedule.milestones=[6,9]", f"train.num_workers={workers}",
              "train.ckpt_every=100", f"train.grad_accum={accum}"]
    run(tmp_path, *common, name="straight")
    run(tmp_path, *common, "train.stop_at=5", name="paused")
    paused_state = torch.load(tmp_path / "paused/checkpoints/last.pth", weights_only=True)
    assert paused_state["step"] == 5 and not (tmp_path / "paused/backbone.safetensors").exists()
    assert max(r["iteration"] for r in read_metrics(tmp_path / "paused")) == 5  # no step past stop_at
    run(tmp_path, *common, name="paused")
    straight = load_file(str(tmp_path / "straight/backbone.safetensors"))
    resumed = load_file(str(tmp_path / "paused/backbone.safetensors"))
    for key, value in straight.items():
        torch.testing.assert_close(resumed[key], value, atol=0, rtol=0, msg=key)
    iterations = [r["iteration"] for r in read_metrics(tmp_path / "paused") if "train_loss" in r]
    assert iterations == sorted(set(iterations))  # no record logged twice


def test_stop_at_is_a_short_try_of_the_shipped_schedule(tmp_path, monkeypatch):
    """train.stop_at=N: checkpoint and evaluation at N with the schedule as shipped; the stop's
    evaluation leaves the trajectory alone (random state, plateau), so the run resumes exactly.
    Mixup draws from NumPy's generator in training; the evaluation draws from all three."""
    evaluate = ClassificationTask.evaluate

    def drawing_evaluate(self, *args):
        random.random(), np.random.rand(), torch.rand(1)
        return evaluate(self, *args)

    monkeypatch.setattr(ClassificationTask, "evaluate", drawing_evaluate)
    common = ["schedule.kind=plateau", "schedule.patience=1", "schedule.total=12",
              "schedule.milestones=[]", "train.ckpt_every=100", "train.eval_every=4",
              "data.mixup.mixup_alpha=0.4"]
    run(tmp_path, *common, name="straight")
    _, metrics = run(tmp_path, *common, "train.stop_at=6", name="tried")
    assert set(metrics) >= {"val_top1_error", "val_top5_error"}
    stop_records = [r for r in read_metrics(tmp_path / "tried") if r.get("stop_at")]
    assert [r["iteration"] for r in stop_records] == [6] and "val_top1_error" in stop_records[0]
    assert not (tmp_path / "tried/done.json").exists()
    run(tmp_path, *common, name="tried")
    straight = load_file(str(tmp_path / "straight/backbone.safetensors"))
    resumed = load_file(str(tmp_path / "tried/backbone.safetensors"))
    for key, value in straight.items():
        torch.testing.assert_close(resumed[key], value, atol=0, rtol=0, msg=key)


def test_a_shortened_schedule_refusal_names_stop_at(tmp_path):
    with pytest.raises(ConfigError, match=r"schedule.milestones=.*train.stop_at=N"):
        run(tmp_path, "schedule.total=4", "schedule.milestones=[6,9]")


def test_interrupted_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    cfg, _ = run(tmp_path, "train.stop_at=4")
    last = tmp_path / "run/checkpoints/last.pth"
    before = last.read_bytes()

    def torn_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(engine.checkpoint.torch, "save", torn_save)
    with pytest.raises(OSError, match="disk full"):
        engine.checkpoint.atomic_save({"x": torch.zeros(1)}, last)
    assert last.read_bytes() == before
    assert torch.load(last, weights_only=True)["step"] == 4
    assert not list(last.parent.glob(".*.tmp"))


def test_fresh_run_refuses_to_overwrite(tmp_path):
    run(tmp_path, "train.stop_at=2")
    with pytest.raises(FileExistsError, match="resume=auto"):
        run(tmp_path, "resume=none")


def assert_same_training(run_a, run_b, weights_atol: float) -> list[list[float]]:
    """The two runs' exported weights agree to `weights_atol`; returns their logged losses."""
    a = load_file(str(run_a / "backbone.safetensors"))
    b = load_file(str(run_b / "backbone.safetensors"))
    for key, value in a.items():
        torch.testing.assert_close(b[key], value, atol=weights_atol, rtol=0, msg=key)
    return [[r["train_loss"] for r in read_metrics(run) if "train_loss" in r] for run in (run_a, run_b)]


def test_gradient_accumulation_equals_the_full_batch(tmp_path):
    """Two accumulated micro-batches of 16 = one batch of 32 (GroupNorm, no augmentation), over two
    epochs (4 steps each: an epoch counts steps, not micro-batches): the same losses (to float32
    round-off: LOSS_RTOL), iterations and epochs, and weights equal to float round-off (summing
    gradients in two halves moved them by 1e-4 after four steps and 2.3e-3 after eight: momentum
    at lr 0.1 amplifies the round-off; atol 1e-2)."""
    common = ["model.options={norm: gn}", "data.preset=none", "schedule.total=2", "schedule.unit=epoch",
              "schedule.milestones=[]", "train.log_every=2"]
    run(tmp_path, *common, name="full")
    run(tmp_path, *common, "train.grad_accum=2", name="accumulated")
    losses = assert_same_training(tmp_path / "full", tmp_path / "accumulated", weights_atol=1e-2)
    assert losses[0] == pytest.approx(losses[1], rel=LOSS_RTOL) and len(losses[0]) == 4
    for name in ("full", "accumulated"):
        evals = [(r["iteration"], r["epoch"]) for r in read_metrics(tmp_path / name) if "val_top1_error" in r]
        assert evals == [(4, 1), (8, 2)], name


class RankedModel(torch.nn.Module):
    """Scores over 12 classes that rank each image's true class (carried in its pixel [0, 0, 0])
    `rank`-th, the other classes in order around it."""

    def __init__(self, rank: int, classes: int = 12):
        super().__init__()
        self.rank, self.classes = rank, classes

    def forward(self, images):
        scores = torch.zeros(len(images), self.classes)
        for i, label in enumerate(images[:, 0, 0, 0].long().tolist()):
            others = [c for c in range(self.classes) if c != label]
            order = others[:self.rank - 1] + [label] + others[self.rank - 1:]
            scores[i, order] = torch.arange(self.classes, 0, -1, dtype=torch.float32)
        return scores


@pytest.mark.parametrize("rank, top1, top5", [(1, 0.0, 0.0), (2, 1.0, 0.0), (5, 1.0, 0.0), (6, 1.0, 1.0)])
def test_top1_and_top5_error_count_the_true_class_rank(rank, top1, top5):
    """12 classes (top-5 means something only with more than 5): the true class second is a top-1
    miss and a top-5 hit; sixth misses both."""
    from accelerate import Accelerator

    labels = torch.arange(12) % 12
    images = torch.zeros(12, 3, 2, 2)
    images[:, 0, 0, 0] = labels.float()
    batches = [{"image": images[:7], "label": labels[:7]}, {"image": images[7:], "label": labels[7:]}]
    metrics = ClassificationTask().evaluate(RankedModel(rank), batches, Accelerator(cpu=True)).metrics
    assert (metrics["val_top1_error"], metrics["val_top5_error"], metrics["val_images"]) == (top1, top5, 12)


def test_top5_error_on_ten_class_data_equals_the_hand_count(tmp_path):
    """A random cifar_resnet20 on a 10-class ImageFolder: the task's top-1 and top-5 errors are
    those counted from the net's own scores (and differ: a random net's top-5 hits ~half)."""
    from accelerate import Accelerator
    from torch.utils.data import DataLoader

    from classification.datasets import build_datasets
    from helpers import write_image_folder

    classes = [f"class{c}" for c in range(10)]
    for split in ("train", "val"):
        write_image_folder(tmp_path / split, classes=classes, per_class=3, seed=len(split))
    cfg = load_pretrain_config(SMOKE, ["data.kind=imagefolder", f"data.root={tmp_path}",
                                       "data.val_split=val"])
    task = ClassificationTask()
    _, val = build_datasets(cfg.data)
    loader = DataLoader(val, batch_size=8, collate_fn=task.collate)
    torch.manual_seed(0)
    model = create_backbone("cifar_resnet20").eval()
    with torch.no_grad():
        metrics = task.evaluate(model, loader, Accelerator(cpu=True)).metrics
        batches = list(loader)
        scores = torch.cat([model(task.images(b)) for b in batches])
    labels = torch.cat([b["label"] for b in batches])
    ranks = (scores > scores.gather(1, labels[:, None])).sum(1)  # classes scored above the true one
    assert metrics["val_images"] == 30
    assert metrics["val_top1_error"] == pytest.approx((ranks >= 1).sum().item() / len(ranks), abs=1e-9)
    assert metrics["val_top5_error"] == pytest.approx((ranks >= 5).sum().item() / len(ranks), abs=1e-9)
    assert metrics["val_top1_error"] != metrics["val_top5_error"]


def test_ten_crop_prediction_averages_ten_views():
    from classification.task import ClassificationTask

    model = create_backbone("cifar_resnet20").eval()
    images = torch.randn(2, 3, 256, 256)
    # the four corners and the centre of a 256 image, 224 pixels each, and their mirrors
    windows = [(0, 0), (0, 32), (32, 0), (32, 32), (16, 16)]
    crops = [images[:, :, y:y + 224, x:x + 224] for y, x in windows]
    with torch.no_grad():
        scores = ClassificationTask(ten_crop=True).predict(model, images)
        by_hand = torch.stack([model(c).softmax(1) for c in crops + [c.flip(-1) for c in crops]]).mean(0)
        centre = model(crops[-1]).softmax(1)
    assert scores.shape == (2, 10)
    torch.testing.assert_close(scores, by_hand)
    assert not torch.allclose(scores, centre)  # more than the centre crop went in


def test_sigterm_saves_and_rerun_continues(tmp_path):
    """A run whose process group gets SIGTERM (a scheduler's preemption) keeps its work, loader
    workers included; running it again resumes it."""
    out = tmp_path / "run"
    command = [sys.executable, str(REPO / "tools/pretrain.py"), "--config", str(SMOKE),
               f"output_dir={out}", "schedule.total=400", "schedule.milestones=[]",
               "train.log_every=1", "train.ckpt_every=1000", "data.num_val=8", "train.num_workers=1"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, env=env, cwd=tmp_path, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "metrics.jsonl").is_file():
        time.sleep(0.2)
    time.sleep(1)
    os.killpg(process.pid, signal.SIGTERM)
    assert process.wait(timeout=60) != 0
    stopped_at = torch.load(out / "checkpoints/last.pth", weights_only=True)["step"]
    assert 0 < stopped_at < 400
    call_tool("pretrain", *command[2:], f"schedule.total={stopped_at + 2}", "resume_changes=allow",
              cwd=tmp_path, check=True)  # rerun, in this process
    iterations = [r["iteration"] for r in read_metrics(out) if "train_loss" in r]
    assert iterations == list(range(1, stopped_at + 3))  # continued, not restarted


@pytest.mark.parametrize("epoch", [0, 2])
def test_a_signal_during_the_epochs_bookkeeping_stops_at_the_epochs_end(tmp_path, monkeypatch, epoch):
    """SIGTERM after an epoch's last step (while its skipped samples are reported): the run stops
    there, saved at that step, not a step later; after the last epoch's, the run has nothing left
    to train and finishes."""
    import engine.trainer
    from engine.signals import StopRequested

    report = engine.trainer.report_skipped

    def report_then_signal(trainer, skipped, at):
        report(trainer, skipped, at)
        if at == epoch:
            os.kill(os.getpid(), signal.SIGTERM)
    monkeypatch.setattr(engine.trainer, "report_skipped", report_then_signal)
    overrides = ["schedule.total=12", "schedule.milestones=[]", "train.ckpt_every=100"]
    if epoch == 2:
        try:
            run(tmp_path, *overrides)
        except StopRequested:  # a KeyboardInterrupt: pytest would stop the whole session
            pytest.fail("stopped after the last step instead of finishing the run")
        assert (tmp_path / "run/done.json").is_file()
        return
    with pytest.raises(StopRequested, match=f"^signal {int(signal.SIGTERM)}$"):
        run(tmp_path, *overrides)
    assert torch.load(tmp_path / "run/checkpoints/last.pth", weights_only=True)["step"] == 4  # an epoch


def test_a_signal_during_a_step_stops_after_it_saved_and_names_the_signal(tmp_path, monkeypatch):
    from engine.signals import StopRequested

    original, calls = ClassificationTask.train_step, []

    def signal_in_third_step(self, model, batch):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, model, batch)
    monkeypatch.setattr(ClassificationTask, "train_step", signal_in_third_step)
    with pytest.raises(StopRequested, match=f"^signal {int(signal.SIGTERM)}$"):
        run(tmp_path, "schedule.total=12", "schedule.milestones=[]", "train.ckpt_every=100")
    assert torch.load(tmp_path / "run/checkpoints/last.pth", weights_only=True)["step"] == 3


class StepClock:
    """time.perf_counter for engine.trainer: one second later at each call."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += 1.0
        return self.now


def test_throughput_and_elapsed_time_add_up_each_steps_seconds(tmp_path, monkeypatch):
    """With a clock that ticks once per reading the trainer takes one reading at an epoch's start
    and two per step (after its compute; after its hooks): a step's loading + compute is 1 s, its
    whole time 2 s. A window of 2 steps of 32 images: 64 images in 2 s; `elapsed_s` logged at
    iteration k (by that step's hooks, before its time is added): the k - 1 steps before, 2 s each."""
    import engine.trainer

    monkeypatch.setattr(engine.trainer, "time", StepClock())
    cfg, _ = run(tmp_path, "schedule.total=8", "train.log_every=2")
    records = [r for r in read_metrics(cfg.output_dir) if "train_loss" in r]
    assert [r["iteration"] for r in records] == [2, 4, 6, 8]
    assert [r["images_per_s"] for r in records] == [32.0] * 4
    assert [r["elapsed_s"] for r in records] == [2.0 * (k - 1) for k in (2, 4, 6, 8)]


def test_an_epoch_with_no_step_is_an_error_not_an_endless_loop(tmp_path, monkeypatch):
    """A loader that gives nothing (here: every batch skipped from the start) would make the
    epoch loop spin at 100 % CPU deaf to signals; it stops with a message instead."""
    from engine.trainer import Trainer

    monkeypatch.setattr(Trainer, "_epoch_batches", lambda self, epoch: iter(()))
    with pytest.raises(RuntimeError, match="epoch 0 made no training step"):
        run(tmp_path, "schedule.total=12", "schedule.milestones=[]")


def test_finished_run_writes_its_outputs_and_a_rerun_keeps_them(tmp_path):
    """final.safetensors (the model), backbone.safetensors, eval/metrics.json, then done.json with
    the last metrics; running the same command again trains nothing and rewrites nothing."""
    _, final = run(tmp_path)
    out = tmp_path / "run"
    done = json.loads((out / "done.json").read_text())
    assert done["iteration"] == 8 and done["metrics"] == final
    assert json.loads((out / "eval/metrics.json").read_text())["metrics"] == final
    weights = load_file(str(out / "final.safetensors"))
    assert weights.keys() == load_file(str(out / "backbone.safetensors")).keys()
    names = ("final.safetensors", "backbone.safetensors", "done.json", "eval/metrics.json")
    outputs = [out / n for n in names]
    stamps = [p.stat().st_mtime_ns for p in outputs]
    assert run(tmp_path)[1] == {}  # nothing left to train
    assert [p.stat().st_mtime_ns for p in outputs] == stamps


def test_a_run_stopped_after_its_last_step_finishes_with_its_final_evaluation(tmp_path):
    """Stopped after the last step's checkpoint but before done.json (a signal during the final
    evaluation, a kill): the rerun evaluates the saved weights again and writes the outputs with
    those metrics (it wrote an empty evaluation before), logging the evaluation once."""
    _, final = run(tmp_path)
    out = tmp_path / "run"

    def final_evaluations():
        return [r for r in read_metrics(out) if "val_top1_error" in r and r["iteration"] == 8]

    stop_before_done(out)
    assert run(tmp_path)[1] == final
    assert json.loads((out / "done.json").read_text())["metrics"] == final
    assert (out / "final.safetensors").is_file() and (out / "eval/metrics.json").is_file()
    assert len(final_evaluations()) == 1
    stop_before_done(out)  # and before the evaluation was logged
    lines = (out / "metrics.jsonl").read_text().splitlines()
    (out / "metrics.jsonl").write_text("".join(f"{line}\n" for line in lines if "val_top1_error" not in line
                                               or json.loads(line)["iteration"] != 8))
    assert final_evaluations() == [] and run(tmp_path)[1] == final
    assert [{k: r[k] for k in final} for r in final_evaluations()] == [final]


def test_bf16_autocast_trains_and_the_records_say_so(tmp_path):
    """The precision that ran is in every training record ("auto" resolved per machine)."""
    cfg, final = run(tmp_path, "train.precision=bf16", "schedule.total=2", "schedule.milestones=[]")
    records = [r for r in read_metrics(cfg.output_dir) if "train_loss" in r]
    assert {r["precision"] for r in records} == {"bf16"} and final["val_top1_error"] <= 1


FAKE_SRUN = """#!/usr/bin/env bash
# srun on a fake allocation: the step's command once per node, all on this machine
while [[ $1 == --* ]]; do shift; done
pids=()
for node in $(seq 0 $((SLURM_NNODES - 1))); do SLURM_NODEID=$node SLURM_PROCID=$node "$@" & pids+=($!); done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit $status
"""


def test_slurm_script_resumes_a_preempted_job_on_two_nodes_as_one_process(tmp_path):
    """tools/slurm/train.sbatch's launch line under a fake Slurm allocation of 2 nodes on
    localhost (fake srun and scontrol), requeued after a 1-process start in the job's folder: it
    resumes there and ends with the weights of an uninterrupted 1-process run (float round-off,
    as tests/test_distributed.py)."""
    common = ["model.options={norm: gn}", "data.preset=none", "schedule.total=4",
              "schedule.milestones=[]", "train.eval_every=4"]
    run(tmp_path, *common, name="one")
    run(tmp_path, *common, "train.stop_at=2", name="outputs/smoke_job")  # preempted at 2
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(FAKE_SRUN)
    (bin_dir / "scontrol").write_text("#!/usr/bin/env bash\nprintf 'localhost\\nlocalhost\\n'\n")
    for tool in ("srun", "scontrol"):
        (bin_dir / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(REPO),
           "OMP_NUM_THREADS": "1", "PYTHON": sys.executable, "SLURM_NNODES": "2",
           "SLURM_JOB_NODELIST": "node[1-2]", "SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "smoke_job",
           "MASTER_PORT": str(free_port())}
    printed = subprocess.run(["bash", str(REPO / "tools/slurm/train.sbatch"), str(REPO / "tools/pretrain.py"),
                              "--config", str(SMOKE), *common], env=env, cwd=tmp_path, timeout=300,
                             check=True, capture_output=True, text=True).stdout
    assert "2 nodes x 1 processes, rendezvous localhost:" in printed
    logged = read_metrics(tmp_path / "outputs/smoke_job")
    assert [r["processes"] for r in logged if "processes" in r] == [1, 2]  # iterations 2 and 4
    assert_same_training(tmp_path / "one", tmp_path / "outputs/smoke_job", weights_atol=5e-4)


def test_a_global_batch_that_does_not_split_over_the_processes_names_the_counts_that_would():
    from engine.accelerator import split_batch

    assert split_batch(256, 2, 8) == 128
    with pytest.raises(ValueError, match="train.batch_size=96 must split evenly into train.grad_accum=2 "
                                         "steps and 5 processes; .*: 1, 2, 3, 4, 6, 8, 12, 16, 24, 48$"):
        split_batch(96, 2, 5)


def test_compiled_training_saves_uncompiled_names_and_resumes_exactly(tmp_path, monkeypatch):
    """train.compile=true: checkpoints hold the model's own key names (no `_orig_mod.`), so a run
    paused compiled, continued uncompiled and finished compiled ends where a straight uncompiled
    run does. torch.compile runs with its "eager" backend here: dynamo's capture and wrapper are
    the real ones; inductor's code generation (minutes on 2 cores) is what a GPU run adds."""
    compile_ = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, **kw: compile_(model, backend="eager", **kw))
    common = ["schedule.total=6", "schedule.milestones=[3,5]", "train.ckpt_every=100", "train.precision=fp32"]
    run(tmp_path, *common, name="straight")
    run(tmp_path, *common, "train.compile=true", "train.stop_at=2", name="mixed")
    state = torch.load(tmp_path / "mixed/checkpoints/last.pth", weights_only=True)
    assert state["step"] == 2
    assert set(state["model"]) == set(create_backbone("cifar_resnet20", num_classes=4).state_dict())
    run(tmp_path, *common, "train.stop_at=4", name="mixed")
    run(tmp_path, *common, "train.compile=true", name="mixed")
    straight = load_file(str(tmp_path / "straight/backbone.safetensors"))
    resumed = load_file(str(tmp_path / "mixed/backbone.safetensors"))
    for key, value in straight.items():
        torch.testing.assert_close(resumed[key], value, atol=0, rtol=0, msg=key)
    changes = [r for r in read_metrics(tmp_path / "mixed") if r.get("event") == "resume_changes"]
    assert not changes  # compiling or not is no change of the trajectory


def build_trainer(tmp_path, *overrides, validation: bool = True, best_metric: str | None = "-"):
    """The Trainer `pretrain` would fit, before its first step (`validation=False`: a run without a
    validation set; `best_metric`: the task's, or the one given)."""
    from accelerate.utils import set_seed

    from classification.pretrain import RECIPE
    from engine.trainer import Trainer

    cfg = load_pretrain_config(SMOKE, [f"output_dir={tmp_path / 'run'}", *overrides])
    set_seed(cfg.train.seed)
    train_set, val_set = RECIPE.datasets(cfg)
    task = RECIPE.task(cfg, train_set, val_set)
    if best_metric != "-":
        task.best_metric = best_metric
    return Trainer(cfg, RECIPE.model(cfg, train_set), task, train_set, val_set if validation else None)


def spatial_conv_weights(model) -> list[torch.Tensor]:
    """The 3x3 convolutions' weights: channels-last and contiguous layouts differ for them."""
    return [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]


@pytest.mark.parametrize("channels_last", [False, True])
def test_train_channels_last_lays_out_the_models_weights(tmp_path, channels_last):
    weights = spatial_conv_weights(build_trainer(tmp_path, f"train.channels_last={channels_last}").model)
    assert len(weights) == 19  # cifar_resnet20's stem and 18 block convolutions
    assert all(w.is_contiguous(memory_format=torch.channels_last) is channels_last for w in weights)
    assert all(w.is_contiguous() is not channels_last for w in weights)


def test_train_seed_orders_the_training_epochs(tmp_path):
    """The sampler's permutation is that of `train.seed`, a new one each epoch."""
    from engine.data import EpochSampler

    trainer = build_trainer(tmp_path, "train.seed=5")
    orders = []
    for epoch in (0, 1):
        reference = EpochSampler(128, seed=5)
        reference.set_epoch(epoch)
        trainer._epoch_batches(epoch)
        orders.append(list(trainer.sampler))
        assert orders[-1] == list(reference)
    assert orders[0] != orders[1] and sorted(orders[0]) == list(range(128))


def test_a_one_batch_training_set_trains_and_a_smaller_one_is_refused(tmp_path):
    cfg, _ = run(tmp_path, "data.num_train=32", "schedule.total=2", "schedule.milestones=[]",
                 "train.log_every=1", "train.eval_every=1")
    assert [(r["iteration"], r["epoch"]) for r in read_metrics(cfg.output_dir) if "train_loss" in r] \
        == [(1, 1.0), (2, 2.0)]  # one step an epoch (`epoch`: epochs done)
    with pytest.raises(ValueError, match=r"^the training set \(31 samples\) is smaller than one batch$"):
        build_trainer(tmp_path, "data.num_train=31")


PLATEAU_REFUSAL = (r"^schedule.kind=plateau watches the validation error: this run has no validation set "
                   r"\(or its task no metric to watch\)$")


def test_a_plateau_schedule_needs_a_validation_error_to_watch(tmp_path):
    with pytest.raises(ValueError, match=PLATEAU_REFUSAL):
        build_trainer(tmp_path, "schedule.kind=plateau", validation=False)
    with pytest.raises(ValueError, match=PLATEAU_REFUSAL):
        build_trainer(tmp_path, "schedule.kind=plateau", best_metric=None)
    assert build_trainer(tmp_path, "schedule.kind=plateau").val_loader is not None
    assert build_trainer(tmp_path, validation=False).val_loader is None  # step decay needs none
