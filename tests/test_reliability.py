"""Training never lies: each fault or bad input of issue 14, what the user sees, what is kept
(docs/reliability.md tabulates them), and a kill -9 fault-injection run that must end bit-exact."""

import contextlib
import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import engine.checkpoint
from classification.pretrain import load_pretrain_config, pretrain
from classification.task import ClassificationTask
from detection import load_detection_config, train_detector
from detection.data import BadRecordError, read_coco
from engine.cli import run_tool
from engine.config import ConfigError
from engine.data import BadImageError
from engine.errors import CheckpointError, ResumeMismatch, RunLocked, TrainingDiverged
from engine.metrics import read_metrics
from experiments.synthetic import make_synthetic
from helpers import (
    REPO,
    SMOKE,
    Exploit,
    call_tool,
    free_port,
    model_after_each_step,
    write_coco_dataset,
    write_image_folder,
)

DETECTION_SMOKE = REPO / "configs/detection/smoke.yaml"


def run(tmp_path, *overrides, name="run"):
    cfg = load_pretrain_config(SMOKE, [f"output_dir={tmp_path / name}", *overrides])
    return pretrain(cfg)


def strict_records(run_dir) -> list[dict]:
    """metrics.jsonl parsed as strict JSON: NaN or Infinity tokens fail."""
    def refuse(token):
        raise ValueError(f"non-JSON token {token}")

    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line, parse_constant=refuse) for line in lines]


def all_finite(state: dict) -> bool:
    return all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


# 1. divergence ---------------------------------------------------------------------------------
def test_divergence_stops_naming_the_iteration_and_keeps_the_last_good_checkpoint(tmp_path):
    run(tmp_path, "train.stop_at=3", "train.ckpt_every=1")
    diverged = r"non-finite (loss|gradient|weights).* at iteration \d+"
    with pytest.raises(TrainingDiverged, match=diverged) as info:
        run(tmp_path, "optim.lr=1e6", "resume_changes=allow", "train.ckpt_every=1")
    out = tmp_path / "run"
    assert f"last good checkpoint is kept: {out / 'checkpoints/last.pth'}" in str(info.value)
    diverged_at = int(str(info.value).split("at iteration ")[1].split()[0].rstrip(";"))
    last = torch.load(out / "checkpoints/last.pth", weights_only=True)
    assert last["step"] == diverged_at - 1 and all_finite(last["model"])  # the last good step
    best = torch.load(out / "checkpoints/best.pth", weights_only=True)  # the epoch's end, iteration 4
    assert best["step"] == 4 < diverged_at and all_finite(best["model"])
    assert not {"final.safetensors", "backbone.safetensors", "done.json"} & {p.name for p in out.iterdir()}
    strict_records(out)  # no NaN tokens


def test_a_diverging_detector_stops_too(tmp_path):
    ann = write_coco_dataset(tmp_path, num_images=4, size=64)
    data = [f"data.{s}_{k}={p}" for s in ("train", "val")
            for k, p in (("annotations", ann), ("images", tmp_path / "images"))]
    cfg = load_detection_config(DETECTION_SMOKE, [
        f"output_dir={tmp_path / 'det'}", *data, "optim.lr=1e8", "schedule.warmup=0",
        "schedule.total=6", "schedule.milestones=[]", "train.eval_every=6", "train.log_every=1",
        "model.backbone=cifar_resnet20"])
    with pytest.raises(TrainingDiverged, match="non-finite"):
        train_detector(cfg)
    assert not (tmp_path / "det/done.json").exists()
    strict_records(tmp_path / "det")


def _nan_on_call(monkeypatch, *nan_calls: int):
    """ClassificationTask.train_step returns a NaN loss on its calls numbered `nan_calls` (from 1:
    bad batches)."""
    original, calls = ClassificationTask.train_step, []

    def train_step(self, model, batch):
        loss, stats = original(self, model, batch)
        calls.append(1)
        return (loss * float("nan"), stats) if len(calls) in nan_calls else (loss, stats)

    monkeypatch.setattr(ClassificationTask, "train_step", train_step)


def test_looking_every_4_steps_trains_the_same_and_still_stops_a_divergence(tmp_path, monkeypatch):
    """train.check_finite_every=4 (a GPU queues steps ahead): the same weights as looking every
    step; a NaN at iteration 1 stops training at the next look, before anything is saved."""
    common = ["train.log_every=4", "train.ckpt_every=100"]
    run(tmp_path, *common, name="every")
    run(tmp_path, *common, "train.check_finite_every=4", name="fourth")
    every, fourth = (load_file(str(tmp_path / n / "final.safetensors")) for n in ("every", "fourth"))
    assert all(torch.equal(every[k], fourth[k]) for k in every)
    _nan_on_call(monkeypatch, 1)
    diverged = r"in the 4 iterations before 4 \(train.check_finite_every=4\)"
    with pytest.raises(TrainingDiverged, match=diverged):
        run(tmp_path, *common, "train.check_finite_every=4", name="nan")
    assert not (tmp_path / "nan/checkpoints/last.pth").exists()
    with pytest.raises(ConfigError, match="train.check_finite_every"):
        run(tmp_path, "train.check_finite_every=4", "train.nonfinite_skips=1", name="both")


def test_a_bounded_number_of_nonfinite_steps_can_be_skipped(tmp_path, monkeypatch):
    _nan_on_call(monkeypatch, 3)
    final = run(tmp_path, "train.nonfinite_skips=1")
    out = tmp_path / "run"
    assert final and all_finite(load_file(str(out / "final.safetensors")))  # BN statistics restored
    events = [r for r in strict_records(out) if r.get("event") == "nonfinite_step_skipped"]
    assert [(e["iteration"], e["what"]) for e in events] == [(3, "loss")]


@pytest.mark.parametrize("accum", [1, 2])
def test_a_skipped_step_leaves_weights_and_bn_statistics_as_the_step_before(tmp_path, monkeypatch, accum):
    """NaN losses in steps 3 and 5 (5: the second epoch's first; with accumulation, in the step's
    first micro-batch): each skipped step ends with the state the step before ended with, BN
    running statistics included (kept before the step's first forward), and is named a loss
    problem; the steps around them train."""
    _nan_on_call(monkeypatch, 1 + 2 * accum, 1 + 4 * accum)
    states = model_after_each_step(monkeypatch)
    run(tmp_path, "train.nonfinite_skips=2", f"train.grad_accum={accum}")
    events = [r for r in strict_records(tmp_path / "run") if r.get("event") == "nonfinite_step_skipped"]
    assert [(e["iteration"], e["what"]) for e in events] == [(3, "loss"), (5, "loss")]
    for skipped in (3, 5):
        for key, value in states[skipped - 1].items():
            assert torch.equal(states[skipped][key], value), (skipped, key)
    assert not torch.equal(states[4]["stem.bn.running_mean"], states[3]["stem.bn.running_mean"])


# A process that skips a step one NaN of its own: every rank drops that step from the window alike
NAN_ON_ONE_RANK = """
import os, sys
from classification.task import ClassificationTask
from classification.pretrain import main
original, calls = ClassificationTask.train_step, []
def train_step(self, model, batch):
    loss, stats = original(self, model, batch)
    calls.append(1)
    bad = len(calls) == 3 and os.environ.get("RANK", "0") == "1"
    return (loss * float("nan"), stats) if bad else (loss, stats)
ClassificationTask.train_step = train_step
main(sys.argv[1:])
"""


def _logged_iterations(out) -> list[int]:
    return [r["iteration"] for r in strict_records(out) if "train_loss" in r]


def test_a_window_whose_every_step_was_skipped_logs_nothing_and_training_goes_on(tmp_path, monkeypatch):
    """train.log_every=1 and a skipped step: that window is empty (it used to stack nothing and
    crash); on 2 processes where only one saw the NaN, both drop the step's statistics alike (one
    empty window reduced against a full one used to hang until dist_timeout_s)."""
    _nan_on_call(monkeypatch, 3)
    common = ["train.nonfinite_skips=1", "train.log_every=1"]
    run(tmp_path, *common)
    assert _logged_iterations(tmp_path / "run") == [1, 2, 4, 5, 6, 7, 8]
    script = tmp_path / "nan_on_rank_1.py"
    script.write_text(NAN_ON_ONE_RANK)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                           f"--master_port={free_port()}", str(script), "--config", str(SMOKE),
                           f"output_dir={tmp_path / 'two'}", *common, "train.dist_timeout_s=60"],
                          env=env, cwd=REPO, timeout=240, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    events = [r for r in strict_records(tmp_path / "two") if r.get("event") == "nonfinite_step_skipped"]
    assert [e["iteration"] for e in events] == [3]  # process 0 sees the NaN in the reduced gradient
    assert _logged_iterations(tmp_path / "two") == [1, 2, 4, 5, 6, 7, 8]


# 2. resume with changed settings ---------------------------------------------------------------
def test_resume_with_changed_settings_is_refused_or_really_applied(tmp_path):
    common = ["schedule.total=8", "schedule.milestones=[6]", "train.log_every=1"]
    run(tmp_path, *common, "train.stop_at=4")
    with pytest.raises(ResumeMismatch, match=r"optim\.lr: 0\.1 -> 0\.01"):
        run(tmp_path, *common, "optim.lr=0.01")
    run(tmp_path, *common, "optim.lr=0.01", "train.log_every=2", "resume_changes=allow")
    run(tmp_path, *common, "optim.lr=0.01", name="reference")  # that lr from the start
    lrs = {r["iteration"]: r["lr"] for r in strict_records(tmp_path / "run") if "lr" in r}
    reference = {r["iteration"]: r["lr"] for r in strict_records(tmp_path / "reference") if "lr" in r}
    assert all(lrs[i] == pytest.approx(reference[i]) for i in lrs if i > 4) and max(lrs) == 8
    event = next(r for r in strict_records(tmp_path / "run") if r.get("event") == "resume_changes")
    assert event["changes"] == {"optim.lr": [0.1, 0.01]}  # log_every is free to change


# 3. validation before the first step, save before evaluation -----------------------------------
def _detection_config(tmp_path, ann, *overrides):
    data = [f"data.{s}_{k}={p}" for s in ("train", "val")
            for k, p in (("annotations", ann), ("images", tmp_path / "images"))]
    return load_detection_config(DETECTION_SMOKE, [
        f"output_dir={tmp_path / 'det'}", *data, "schedule.total=2", "schedule.milestones=[]",
        "schedule.warmup=0", "model.backbone=cifar_resnet20", "train.batch_size=2", *overrides])


def test_a_missing_image_is_found_before_the_first_step(tmp_path):
    ann = write_coco_dataset(tmp_path, num_images=6, size=64)
    (tmp_path / "images/0004.png").unlink()
    with pytest.raises(BadImageError, match="0004.png"):
        train_detector(_detection_config(tmp_path, ann))
    assert not (tmp_path / "det/checkpoints").exists()  # nothing trained, nothing to lose
    metrics = train_detector(_detection_config(tmp_path, ann, "data.on_bad_sample=skip"))
    assert metrics["val_images"] == 5  # its ground truth left with it
    events = [r for r in strict_records(tmp_path / "det") if r.get("event") == "skipped_before_training"]
    assert {e["split"] for e in events} == {"train", "val"}
    assert all(e["skipped_files"] == [str(tmp_path / "images/0004.png")] for e in events)


def test_an_odd_sized_image_under_the_cifar_recipe_is_named(tmp_path):
    write_image_folder(tmp_path / "train", per_class=6)
    odd = tmp_path / "train/dog/0002.png"
    Image.new("RGB", (40, 40)).save(odd)
    config = [f"data.root={tmp_path}", "data.kind=imagefolder", "data.val_split=train",
              "train.batch_size=4", "schedule.total=3", "schedule.milestones=[]"]
    with pytest.raises(BadImageError, match=r"0002.png is 40x40, the others 32x32"):
        run(tmp_path, *config, "data.on_bad_sample=error")
    assert run(tmp_path, *config, name="skip")["val_images"] == 11


def test_an_evaluation_failure_saves_the_training_first(tmp_path, monkeypatch):
    def broken(self, model, loader, accelerator):
        raise RuntimeError("evaluation broke")

    monkeypatch.setattr(ClassificationTask, "evaluate", broken)
    with pytest.raises(RuntimeError, match="evaluation broke"):
        run(tmp_path, "train.eval_every=3", "train.ckpt_every=100")
    assert torch.load(tmp_path / "run/checkpoints/last.pth", weights_only=True)["step"] == 3


# 4. one run per folder -------------------------------------------------------------------------
def test_a_second_writer_is_refused_and_a_dead_writers_lock_taken_over(tmp_path, caplog):
    out = tmp_path / "run"
    out.mkdir()
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / ".lock").write_text(json.dumps({"pid": owner.pid, "host": socket.gethostname()}))
        with pytest.raises(RunLocked, match=f"in use by pid {owner.pid}"):
            run(tmp_path)
        assert not (out / "metrics.jsonl").exists()
    finally:
        owner.kill()
        owner.wait()
    run(tmp_path)
    assert f"took over the lock of pid {owner.pid}" in caplog.text
    assert not (out / ".lock").exists()


# 5. zero-length schedule, 7. unchecked values --------------------------------------------------
@pytest.mark.parametrize("override, named", [
    ("schedule.total=0", "schedule.total=0"),
    ("train.batch_size=-4", "train.batch_size=-4"),
    ("train.batch_size=0", "train.batch_size=0"),
    ("train.log_every=0", "train.log_every=0"),
    ("train.ckpt_every=0", "train.ckpt_every=0"),
    ("train.grad_accum=0", "train.grad_accum=0"),
    ("schedule.milestones=[4,60]", "schedule.milestones=[4, 60]"),
    ("schedule.gamma=-0.1", "schedule.gamma=-0.1"),
    ("optim.lr=-0.1", "optim.lr=-0.1"),
])
def test_out_of_range_values_are_refused_at_load_naming_key_and_range(override, named):
    with pytest.raises(ConfigError, match="must be") as info:
        load_pretrain_config(SMOKE, [override])
    assert named in str(info.value)


def test_the_data_generator_refuses_impossible_counts(tmp_path):
    with pytest.raises(ValueError, match="num_train=-3: must be an integer >= 1"):
        make_synthetic(tmp_path, num_train=-3)


# 6. exact resume after signals and kill -9 -----------------------------------------------------
DRIVER = r"""
import json, os, sys, time
import engine.checkpoint as checkpoint
save = checkpoint.torch.save

def slow_save(obj, f, *args, **kwargs):  # widen the window a kill -9 can land in mid-write
    import io
    buffer = io.BytesIO()
    save(obj, buffer, *args, **kwargs)
    data = buffer.getvalue()
    f.write(data[: len(data) // 2])
    f.flush()
    time.sleep(0.05)
    f.write(data[len(data) // 2:])

checkpoint.torch.save = slow_save
from classification.pretrain import main

for line in sys.stdin:  # one training process per line, forked from this imported one
    argv, cwd = json.loads(line)
    pid = os.fork()
    if pid == 0:
        os.chdir(cwd)
        quiet = os.open(os.devnull, os.O_WRONLY)
        os.dup2(quiet, 1), os.dup2(quiet, 2)
        code = 1
        try:
            main(argv)
            code = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        finally:
            sys.stdout.flush()
            os._exit(code)
    print(pid, flush=True)
    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
"""
SIGNAL_RUN = ["schedule.total=90", "schedule.milestones=[60,75]", "train.log_every=1",
              "train.ckpt_every=3", "train.eval_every=15", "data.num_val=32", "train.ema.decay=0.9"]


class Launcher:
    """Training processes forked from one process that has imported the toolkit: each is a whole
    process (signals and kill -9 hit it alone) without the seconds of imports per start."""

    def __init__(self):
        env = {**os.environ, "OMP_NUM_THREADS": "2", "PYTHONPATH": str(REPO)}
        self.zygote = subprocess.Popen([sys.executable, "-c", DRIVER], cwd=REPO, env=env, text=True,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def start(self, tmp_path, name) -> "Forked":
        argv = ["--config", str(SMOKE), f"output_dir={tmp_path / name}", *SIGNAL_RUN]
        self.zygote.stdin.write(json.dumps([argv, str(tmp_path)]) + "\n")
        self.zygote.stdin.flush()
        return Forked(self.zygote, int(self.zygote.stdout.readline()))


class Forked:
    """A forked training process, as much of `subprocess.Popen` as the tests use."""

    def __init__(self, zygote, pid: int):
        self.zygote, self.pid, self.returncode = zygote, pid, None

    def poll(self):
        if self.returncode is None and select.select([self.zygote.stdout], [], [], 0)[0]:
            self.returncode = int(self.zygote.stdout.readline())
        return self.returncode

    def send_signal(self, signum) -> None:
        os.kill(self.pid, signum)

    def wait(self, timeout: float) -> int:
        if self.returncode is None:
            if not select.select([self.zygote.stdout], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(f"training process {self.pid}", timeout)
            self.returncode = int(self.zygote.stdout.readline())
        return self.returncode


@pytest.fixture(scope="module")
def launcher():
    launcher = Launcher()
    yield launcher
    launcher.zygote.stdin.close()
    launcher.zygote.wait(timeout=60)


def _logged(out) -> int:
    metrics = out / "metrics.jsonl"
    return metrics.stat().st_size if metrics.exists() else 0


def _interrupt_until_done(launcher, tmp_path, name, signals: list, seed: int) -> int:
    """Start the run; once this process has trained (logged a new record), deliver the signal at
    a random moment of its training and saving; finish the run."""
    rng, out, delivered = random.Random(seed), tmp_path / name, 0
    for signum in signals:
        if (out / "done.json").exists():
            break
        before = _logged(out)
        process = launcher.start(tmp_path, name)
        deadline = time.time() + 60
        while process.poll() is None and _logged(out) <= before and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.6))
        if process.poll() is None:
            process.send_signal(signum)
            delivered += 1
        process.wait(timeout=60)
    assert launcher.start(tmp_path, name).wait(timeout=120) == 0
    return delivered


@pytest.fixture(scope="module")
def straight(tmp_path_factory, launcher):
    root = tmp_path_factory.mktemp("straight")
    assert launcher.start(root, "run").wait(timeout=120) == 0
    return _final_and_ema(root / "run")


def _final_and_ema(out) -> dict:
    """The final weights (the model's or the EMA's, whichever scored better) and the EMA itself."""
    ema = torch.load(out / "checkpoints/last.pth", weights_only=True)["ema"]
    return {**load_file(str(out / "final.safetensors")), **{f"ema.{k}": v for k, v in ema.items()}}


def _assert_same(out, straight):
    weights = _final_and_ema(out)
    assert weights.keys() == straight.keys()
    for key, value in straight.items():
        assert torch.equal(weights[key], value), key


def test_ctrl_c_and_sigterm_at_random_moments_resume_bit_exactly(tmp_path, straight, launcher):
    """BN and random augmentation included: the handler only asks; the loop saves at a step
    boundary."""
    signals = [signal.SIGINT, signal.SIGTERM] * 2
    assert _interrupt_until_done(launcher, tmp_path, "run", signals, seed=1) >= 2
    _assert_same(tmp_path / "run", straight)


def test_kill_9_eight_times_then_resume_equals_an_uninterrupted_run(tmp_path, straight, launcher):
    """Killed at random points (saves slowed to land some kills mid-write); each restart takes
    over the dead process's lock and resumes from the last whole checkpoint."""
    assert _interrupt_until_done(launcher, tmp_path, "run", [signal.SIGKILL] * 8, seed=2) >= 4
    _assert_same(tmp_path / "run", straight)
    iterations = [r["iteration"] for r in read_metrics(tmp_path / "run") if "train_loss" in r]
    assert iterations == sorted(set(iterations))  # each logged once


# 8. the smaller ones ---------------------------------------------------------------------------
def test_a_partial_last_metrics_line_is_dropped_with_a_warning(tmp_path):
    run(tmp_path, "train.stop_at=4")
    with open(tmp_path / "run/metrics.jsonl", "a") as f:
        f.write('{"iteration": 5, "train_lo')  # the power went out mid-write
    with pytest.warns(UserWarning, match="partial last line"):
        run(tmp_path)
    assert max(r["iteration"] for r in strict_records(tmp_path / "run")) == 8


def test_a_corrupt_checkpoint_is_named_without_unpickling_advice(tmp_path):
    run(tmp_path, "train.stop_at=2")
    (tmp_path / "run/checkpoints/last.pth").write_bytes(b"PK\x03\x04 half a zip")
    with pytest.raises(CheckpointError, match="not a checkpoint this toolkit can read") as info:
        run(tmp_path)
    assert str(tmp_path / "run/checkpoints/last.pth") in str(info.value)
    assert "weights_only" not in str(info.value)


def test_load_checkpoint_names_what_is_wrong_with_a_file(tmp_path, monkeypatch, capsys):
    """Objects that would run code (never unpickled), a truncated file (the loader's own first
    line, or its error's name when it says nothing), a file holding something else than a dict."""
    from engine.checkpoint import load_checkpoint

    def read(name: str) -> str:
        with pytest.raises(CheckpointError) as error:
            load_checkpoint(tmp_path / name)
        return str(error.value)

    torch.save({"step": 1, "x": Exploit()}, tmp_path / "code.pth")
    assert read("code.pth") == (f"not a checkpoint this toolkit can read: {tmp_path / 'code.pth'} (it "
                                "holds objects other than tensors and plain data)")
    assert "must never run" not in capsys.readouterr().out
    torch.save({"step": 1, "weights": torch.zeros(1000)}, tmp_path / "whole.pth")
    (tmp_path / "half.pth").write_bytes((tmp_path / "whole.pth").read_bytes()[:2000])
    with pytest.raises(Exception) as own:
        torch.load(tmp_path / "half.pth", weights_only=True)
    assert read("half.pth").endswith(f"(truncated or corrupt: {str(own.value).splitlines()[0]})")
    torch.save([1, 2], tmp_path / "list.pth")
    assert read("list.pth").endswith("list.pth (holds a list, not a dict)")

    def silent(*args, **kwargs):
        raise EOFError()

    monkeypatch.setattr(engine.checkpoint.torch, "load", silent)
    assert read("whole.pth").endswith("(truncated or corrupt: EOFError)")


def test_disk_full_during_a_save_says_so_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    run(tmp_path, "train.stop_at=2")
    last = tmp_path / "run/checkpoints/last.pth"
    before = last.read_bytes()

    def full(obj, f, *args, **kwargs):
        f.write(b"some bytes")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(engine.checkpoint.torch, "save", full)
    with pytest.raises(CheckpointError, match=f"disk full while writing {last}; the previous "
                                              "checkpoint is intact"):
        run(tmp_path)
    assert last.read_bytes() == before


def test_the_cuda_generators_travel_with_a_checkpoint_where_there_are_some(monkeypatch):
    """Saved and restored on a GPU machine; a checkpoint from a CPU machine resumed on a GPU one,
    and one from a GPU machine on a CPU one, leave the CUDA generators alone (stand-ins here)."""
    cuda, restored = engine.checkpoint.torch.cuda, []
    monkeypatch.setattr(cuda, "is_available", lambda: True)
    monkeypatch.setattr(cuda, "get_rng_state_all", lambda: [torch.tensor([1, 2], dtype=torch.uint8)])
    monkeypatch.setattr(cuda, "set_rng_state_all", restored.append)
    state = engine.checkpoint.rng_state()
    assert torch.equal(state["cuda"][0], torch.tensor([1, 2], dtype=torch.uint8))
    engine.checkpoint.set_rng_state(state)
    assert restored == [state["cuda"]]
    engine.checkpoint.set_rng_state({k: v for k, v in state.items() if k != "cuda"})  # from a CPU machine
    monkeypatch.setattr(cuda, "is_available", lambda: False)
    engine.checkpoint.set_rng_state(state)  # from a GPU machine
    assert len(restored) == 1


def test_atomic_save_makes_the_folders_it_needs(tmp_path):
    path = tmp_path / "run/checkpoints/last.pth"  # neither folder exists yet
    engine.checkpoint.atomic_save({"step": 3}, path)
    assert engine.checkpoint.load_checkpoint(path) == {"step": 3} and os.listdir(path.parent) == ["last.pth"]


def _raised_while_handling(error: OSError) -> RuntimeError:
    """How torch's file writer reports an OSError: a RuntimeError raised while handling it."""
    try:
        raise error
    except OSError:
        try:
            raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")
        except RuntimeError as wrapped:
            return wrapped


def _caused_by(error: OSError) -> RuntimeError:
    wrapped = RuntimeError("file write failed")
    wrapped.__cause__ = error
    return wrapped


@pytest.mark.parametrize("failure, full", [
    (lambda: RuntimeError("[enforce fail at inline_container.cc:778] . No space left on device"), True),
    (lambda: _raised_while_handling(OSError(28, "device")), True),  # ENOSPC as the context
    (lambda: _caused_by(OSError(28, "device")), True),  # as the cause
    (lambda: RuntimeError("file write failed"), False),
    (lambda: OSError(5, "Input/output error"), False),
], ids=["text", "context", "cause", "another-runtime-error", "another-os-error"])
def test_a_disk_full_is_recognised_however_torch_reports_it(tmp_path, monkeypatch, failure, full):
    """ENOSPC's errno anywhere in the error's chain, or its text; other failures stay as they are."""
    def save(obj, f, *args, **kwargs):
        raise failure()

    monkeypatch.setattr(engine.checkpoint.torch, "save", save)
    path = tmp_path / "last.pth"
    with pytest.raises((RuntimeError, OSError, CheckpointError)) as error:
        engine.checkpoint.atomic_save({"step": 1}, path)
    if full:
        assert isinstance(error.value, CheckpointError)
        assert str(error.value) == f"disk full while writing {path}; no earlier checkpoint"
    else:
        assert not isinstance(error.value, CheckpointError)
    assert list(tmp_path.iterdir()) == []  # the temporary file removed


@pytest.mark.parametrize("change, message", [
    (lambda d: d["annotations"][0].pop("bbox"), "annotation 1 .*no bbox"),
    (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), r"annotation 1 .*\[1, 2, 3\] is not"),
    (lambda d: d["annotations"][0].update(bbox=[1, float("nan"), 3, 4]), "annotation 1 .*not a finite"),
    (lambda d: d["images"][0].pop("width"), "image 1: width is None"),
])
def test_malformed_coco_records_are_named_or_skipped(tmp_path, change, message):
    ann = write_coco_dataset(tmp_path, num_images=3)
    data = json.loads(ann.read_text())
    change(data)
    ann.write_text(json.dumps(data))
    with pytest.raises(BadRecordError, match=f"{ann.name}: {message}"):
        read_coco(ann, tmp_path / "images")
    source = read_coco(ann, tmp_path / "images", on_bad_record="skip")
    assert sum(source.problems.counts.values()) == 1


def test_an_empty_validation_set_is_an_error(tmp_path):
    ann = write_coco_dataset(tmp_path, num_images=3)
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({**json.loads(ann.read_text()), "images": [], "annotations": []}))
    cfg = _detection_config(tmp_path, ann, f"data.val_annotations={empty}")
    with pytest.raises(ValueError, match=f"validation set \\({empty}\\) has no usable images"):
        train_detector(cfg)


@pytest.mark.parametrize("fails", [False, True])
def test_a_tool_destroys_its_process_group_before_it_exits(tmp_path, fails):
    """`run_tool` ends the group a launched tool made, after success and after a user's error:
    left to the interpreter's exit, gloo's threads aborted 2 of 14 two-node `analyze.py responses`
    (SIGABRT), the other node waiting 300 s in torchrun's exit barrier."""
    import torch.distributed as dist

    def main():
        if fails:
            raise ConfigError("a bad value")

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        with pytest.raises(SystemExit) if fails else contextlib.nullcontext():
            run_tool(main)
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_tools_report_errors_in_one_line_and_tracebacks_on_debug(tmp_path):
    command = [sys.executable, str(REPO / "tools/pretrain.py"), "--config", str(SMOKE),
               f"output_dir={tmp_path}", "schedule.total=0"]
    plain = call_tool("pretrain", *command[2:])  # run_tool's handling, in this process
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert plain.stderr.startswith("error: invalid config values") and "schedule.total=0" in plain.stderr
    debug = subprocess.run(command + ["--debug"], capture_output=True, text=True, timeout=120)
    assert debug.returncode == 1 and "Traceback" in debug.stderr
