"""Multi-node on this machine: two `accelerate launch --num_machines 2` commands, one gloo process
each, for the three tasks; a lost node; resuming on another number of processes; bad launches.

Tolerances: a 2-process step all-reduces gradients summed in another order than one process's, a
float32 round-off per layer of about sqrt(576) * 2**-24 = 1.4e-6 relative (cifar_resnet20's 3x3x64
sums), ~3e-5 over a net, which every lr-0.1 step amplifies: measured on cifar_resnet20 after 6
steps 1.5e-4, after 8 steps 5.4e-4, after 24 steps 7e-3 (the trajectories part, as any two float
orders do). So the runs compared across process counts are 6 steps long: weights agree to 5e-4,
logged losses to 1e-4 of their size. The same number of processes sums in the same order:
bit-identical.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from classification.pretrain import load_pretrain_config, pretrain
from detection import load_detection_config, train_detector
from engine.metrics import read_metrics
from helpers import REPO, SMOKE, call_tool, coco_overrides, free_port, stop_before_done, write_coco_dataset
from segmentation import load_segmentation_config, train_segmenter
from test_segmentation import write_shapes

WEIGHTS_ATOL, LOSS_RTOL = 5e-4, 1e-4
# A detector also makes discrete choices (the top-k of near-tied objectness scores at
# initialisation, IoU matches) that round-off can flip: measured 3e-4 after 6 steps, against
# 1.6e-2 when the anchor and RoI samples still came from each process's own generator.
DETECTION_ATOL = 2e-3
DETECTION_SMOKE = REPO / "configs/detection/smoke.yaml"
SEGMENTATION_SMOKE = REPO / "configs/segmentation/smoke.yaml"
# GroupNorm (no batch statistics per process), no random augmentation: one process and two agree.
CLASSIFICATION = ["model.options={norm: gn}", "data.preset=none", "schedule.total=6",
                  "schedule.milestones=[4]", "train.eval_every=6", "train.log_every=1", "train.ckpt_every=2",
                  "data.num_val=31", "train.probe_every=3"]


def node_command(tool: str, rank: int, nodes: int, port: int, args: list[str]) -> list[str]:
    """The `accelerate launch` a user runs on node `rank` (`--multi_gpu`: torchrun underneath;
    gloo where there is no GPU)."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--mixed_precision", "no",
            "--dynamo_backend", "no", "--num_machines", str(nodes), "--machine_rank", str(rank),
            "--num_processes", str(nodes), "--main_process_ip", "127.0.0.1",
            "--main_process_port", str(port), str(REPO / tool), *args]


def start(cwd, command: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def launch_nodes(cwd, tool: str, *per_node: list[str]) -> list[subprocess.Popen]:
    """One launch per node, all on localhost, node k with the arguments `per_node[k]`."""
    port = free_port()
    return [start(cwd, node_command(tool, rank, len(per_node), port, args))
            for rank, args in enumerate(per_node)]


def finish(nodes: list[subprocess.Popen], timeout: float = 240) -> list[tuple[int, str]]:
    """Each node's exit code and output, in order. A node still running after `timeout` s fails
    the test with every node's output, all of them killed (launcher and workers: their session)."""
    deadline, outputs = time.monotonic() + timeout, []
    try:
        for node in nodes:
            outputs.append(node.communicate(timeout=max(deadline - time.monotonic(), 0.1))[0])
    except subprocess.TimeoutExpired:
        for node in nodes[len(outputs):]:
            try:
                os.killpg(node.pid, signal.SIGKILL)
            except ProcessLookupError:  # it and its workers have ended since
                pass
        outputs += [node.communicate()[0] for node in nodes[len(outputs):]]
        pytest.fail(f"a node still ran after {timeout} s; killed. Each node's output:\n" + "\n".join(
            f"node {rank} (exit {node.returncode}):\n{output[-3000:]}"
            for rank, (node, output) in enumerate(zip(nodes, outputs))))
    return [(node.returncode, output) for node, output in zip(nodes, outputs)]


def train_on_two_nodes(cwd, tool: str, *args: str) -> list[str]:
    results = finish(launch_nodes(cwd, tool, list(args), list(args)))
    for code, output in results:
        assert code == 0, output[-3000:]
    return [output for _, output in results]


def assert_close_weights(a, b, atol: float, file: str = "final.safetensors") -> None:
    first, second = load_file(str(a / file)), load_file(str(b / file))
    assert first.keys() == second.keys()
    for key, value in first.items():
        torch.testing.assert_close(second[key], value, atol=atol, rtol=0, msg=key)


def train_records(run) -> list[dict]:
    return [r for r in read_metrics(run) if "train_loss" in r]


def assert_written_once(run, processes: int) -> None:
    """One record per logged iteration, every one from a run of `processes`; no stray files."""
    iterations = [r["iteration"] for r in train_records(run)]
    assert iterations == sorted(set(iterations))
    assert {r["processes"] for r in train_records(run)} == {processes}
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.pth", "last.pth"]


def classification(tmp_path, name, *overrides):
    return pretrain(load_pretrain_config(SMOKE, [f"output_dir={tmp_path / name}", *CLASSIFICATION,
                                                 *overrides]))


@pytest.fixture(scope="module")
def classification_runs(tmp_path_factory):
    """The same classification run on 1 process and on 2 nodes."""
    root = tmp_path_factory.mktemp("classification")
    single = classification(root, "one")
    outputs = train_on_two_nodes(root, "tools/pretrain.py", "--config", str(SMOKE),
                                 f"output_dir={root / 'two'}", *CLASSIFICATION)
    return root, single, outputs


def test_two_nodes_train_as_one_process_and_write_everything_once(classification_runs):
    root, single, outputs = classification_runs
    assert_close_weights(root / "one", root / "two", WEIGHTS_ATOL)
    losses = [[r["train_loss"] for r in train_records(root / run)] for run in ("one", "two")]
    assert losses[1] == pytest.approx(losses[0], rel=LOSS_RTOL)
    assert_written_once(root / "two", processes=2)
    last_eval = [r for r in read_metrics(root / "two") if "val_top1_error" in r][-1]
    assert last_eval["val_images"] == 31  # odd: every image once, the padding duplicate dropped
    assert last_eval["val_top1_error"] == pytest.approx(single["val_top1_error"])
    printed = [output.count("val_top1_error=") for output in outputs]
    assert printed == [1, 0]  # the metrics line: once per job, by the main process
    # train.probe_every: responses summed over both processes' halves of each batch, as one's
    probes = [[r for r in read_metrics(root / run) if "response_std_stage1" in r] for run in ("one", "two")]
    assert [r["iteration"] for r in probes[1]] == [3, 6]
    for one, two in zip(*probes):  # gradients: the trajectories' round-off (above), x10 for a norm's
        assert two == pytest.approx(one, rel=10 * LOSS_RTOL)


def test_responses_on_two_nodes_count_every_image_once(classification_runs):
    """tools/analyze.py under `accelerate launch`: each process takes every other image of the
    31 (odd: no padding duplicate), the float64 sums added; equal to one process's up to the
    float32 round-off of convolutions run on batches of other sizes (~1e-7 relative)."""
    root, _, _ = classification_runs
    run = ["--config", str(root / "one" / "config.yaml"),
           "--checkpoint", str(root / "one" / "final.safetensors")]
    call_tool("analyze", "responses", *run, "--out", str(root / "fig_one"), check=True)
    train_on_two_nodes(root, "tools/analyze.py", "responses", *run, "--out", str(root / "fig_two"))
    one, two = (json.loads((root / d / "responses.json").read_text())[0] for d in ("fig_one", "fig_two"))
    assert one["images"] == two["images"] == 31
    assert [x["std"] for x in two["layers"]] == pytest.approx([x["std"] for x in one["layers"]], rel=1e-5)


def test_two_nodes_stopped_before_done_json_evaluate_the_last_step_again(classification_runs, tmp_path):
    """The finished 2-node run as a stop after its last checkpoint leaves it (no done.json, no
    final weights): the same two commands agree to evaluate again, and write its outputs with the
    metrics logged once."""
    root, _, _ = classification_runs
    run = tmp_path / "two"
    shutil.copytree(root / "two", run)
    expected = json.loads((run / "done.json").read_text())["metrics"]
    stop_before_done(run)
    train_on_two_nodes(tmp_path, "tools/pretrain.py", "--config", str(SMOKE), f"output_dir={run}",
                       *CLASSIFICATION)
    assert json.loads((run / "done.json").read_text())["metrics"] == pytest.approx(expected)
    assert (run / "final.safetensors").is_file()
    assert [r["iteration"] for r in read_metrics(run) if "val_top1_error" in r].count(6) == 1


def test_a_killed_node_stops_the_job_and_the_same_command_resumes_exactly(classification_runs, tmp_path):
    """kill -9 of node 1's training process mid-run (frozen first, so that the kill lands before
    the short run ends): node 0 exits non-zero within 60 s naming what was lost, the last whole
    checkpoint kept; the same two commands finish the run with the uninterrupted 2-node run's
    weights bit for bit, and the kept checkpoint resumed on 1 process gives the 1-process run's
    weights (float round-off)."""
    root, _, _ = classification_runs
    args = ["--config", str(SMOKE), f"output_dir={tmp_path / 'run'}", *CLASSIFICATION]
    nodes = launch_nodes(tmp_path, "tools/pretrain.py", args, args)
    deadline = time.time() + 120
    worker = None
    while time.time() < deadline and not any(r["iteration"] >= 3 for r in _records(tmp_path / "run")):
        worker = worker or subprocess.run(["pgrep", "-P", str(nodes[1].pid)], capture_output=True,
                                          text=True).stdout.split()[:1]
        time.sleep(0.02)
    os.kill(int(worker[0]), signal.SIGSTOP)
    os.kill(int(worker[0]), signal.SIGKILL)
    killed = time.time()
    (code, output), _ = finish(nodes, timeout=60)
    assert code != 0 and time.time() - killed < 60
    assert "error: process 1 of 2 stopped answering at iteration " in output, output[-3000:]
    kept = torch.load(tmp_path / "run/checkpoints/last.pth", weights_only=True)
    assert 2 <= kept["step"] < 6 and not (tmp_path / "run/done.json").exists()
    shutil.copytree(tmp_path / "run", tmp_path / "on_one")
    train_on_two_nodes(tmp_path, "tools/pretrain.py", *args)
    assert_close_weights(root / "two", tmp_path / "run", atol=0)
    assert_written_once(tmp_path / "run", processes=2)
    classification(tmp_path, "on_one")  # resumes the 2-process checkpoint on 1 process
    assert_close_weights(root / "one", tmp_path / "on_one", WEIGHTS_ATOL)


def _records(run) -> list[dict]:
    try:
        return read_metrics(run) if (run / "metrics.jsonl").exists() else []
    except (ValueError, UserWarning):  # a line mid-write
        return []


def test_detection_resumes_from_one_process_on_two(tmp_path):
    """Faster R-CNN (GroupNorm, no flips; anchors and RoIs sampled from each image's seed): 6
    iterations on 1 process, and 3 on one then 3 on 2 nodes, end with the same weights (float
    round-off). (Two processes resumed on one: the killed-node test above, for classification.)
    The final evaluation has test-time views (eval.tta.flip), which reach into the detector that
    the 2-process run wraps in DistributedDataParallel: its detections equal a 1-process
    evaluation of the same final weights."""
    from detection.evaluate import evaluate_checkpoint

    ann = write_coco_dataset(tmp_path, num_images=8)
    common = [*coco_overrides(ann, tmp_path / "images"), "data.flip=false", "schedule.total=6",
              "schedule.milestones=[5]", "schedule.warmup=2", "train.eval_every=6", "train.log_every=1",
              "eval.tta.flip=true", "model.options.box_score_thresh=0.0"]  # 6 iterations score ~1e-8

    def single(name, *extra):
        return train_detector(load_detection_config(DETECTION_SMOKE, [f"output_dir={tmp_path / name}",
                                                                      *common, *extra]))

    def two_nodes(name, *extra):
        train_on_two_nodes(tmp_path, "tools/train_detector.py", "--config", str(DETECTION_SMOKE),
                           f"output_dir={tmp_path / name}", *common, *extra)

    single("one")
    single("one_then_two", "train.stop_at=3")
    two_nodes("one_then_two")
    assert_close_weights(tmp_path / "one", tmp_path / "one_then_two", DETECTION_ATOL)
    assert [r["processes"] for r in train_records(tmp_path / "one_then_two")] == [1] * 3 + [2] * 3
    run = tmp_path / "one_then_two"
    evaluate_checkpoint(load_detection_config(DETECTION_SMOKE, common), run / "final.safetensors",
                        tmp_path / "one_process")
    assert_same_detections(tmp_path / "one_process/detections.json", run / "eval/detections.json")


def assert_same_detections(first, second) -> None:
    """Each detection of `first` has its twin in `second` (order aside: near-tied scores)."""
    found = [json.loads(p.read_text()) for p in (first, second)]
    assert len(found[0]) == len(found[1]) > 0
    for a in found[0]:
        where = (a["image_id"], a["category_id"])
        twins = [b for b in found[1] if (b["image_id"], b["category_id"]) == where]
        b = min(twins, key=lambda b: max(abs(x - y) for x, y in zip(a["bbox"], b["bbox"])))
        assert b["bbox"] == pytest.approx(a["bbox"], abs=1e-2)
        assert b["score"] == pytest.approx(a["score"], rel=1e-3)


def test_segmentation_on_two_nodes_trains_as_one_process_and_counts_every_pixel_once(tmp_path):
    """5 images (odd: one process pads its evaluation share with a duplicate); GroupNorm in the
    backbone and the heads, no dropout, no rescaling (each crop has as many labelled pixels, so
    per-process mean losses average to the batch's)."""
    write_shapes(tmp_path / "data" / "train", count=5)
    common = [f"data.root={tmp_path / 'data'}", "data.val_split=train", "model.norm=gn",
              "model.dropout=0", "data.scale_range=[1,1]", "schedule.total=4", "train.batch_size=2",
              "train.log_every=1"]
    single = train_segmenter(load_segmentation_config(SEGMENTATION_SMOKE, [f"output_dir={tmp_path / 'one'}",
                                                                            *common]))
    train_on_two_nodes(tmp_path, "tools/train_segmentation.py", "--config", str(SEGMENTATION_SMOKE),
                       f"output_dir={tmp_path / 'two'}", *common)
    assert_close_weights(tmp_path / "one", tmp_path / "two", WEIGHTS_ATOL)
    metrics = json.loads((tmp_path / "two/eval/metrics.json").read_text())["metrics"]
    assert metrics["val_pixels"] == single["val_pixels"] == 5 * 63 * 64
    assert metrics["val_mIoU"] == pytest.approx(single["val_mIoU"], abs=1e-3)


def test_nodes_started_with_different_configs_stop_before_the_first_step(tmp_path):
    args = ["--config", str(SMOKE), f"output_dir={tmp_path / 'run'}", "schedule.total=4",
            "schedule.milestones=[2]"]
    results = finish(launch_nodes(tmp_path, "tools/pretrain.py", args, [*args, "train.batch_size=16"]))
    for code, output in results:
        assert code != 0
        assert ("error: the processes of this job were started with different configs: "
                "train.batch_size: 32 on process 0, 16 on process 1") in output, output[-3000:]
    assert not (tmp_path / "run/metrics.jsonl").exists()


def test_a_port_in_use_is_an_error_naming_it(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = ["--config", str(SMOKE), f"output_dir={tmp_path / 'run'}"]
        (code, output), = finish([start(tmp_path, node_command("tools/pretrain.py", 0, 2, port, args))])
    assert code != 0 and f"port `{port}`" in output, output[-2000:]


@pytest.mark.parametrize("message, lost", [
    ("[gloo/transport/tcp/pair.cc:545] Read error [127.0.0.1]:1454: Connection reset by peer.", True),
    ("[gloo/transport/tcp/unbound_buffer.cc:78] Timed out waiting 2000ms for recv operation", True),
    ("DataLoader worker (pid 42) timed out after 5 seconds", False),
    ("mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)", False),
])
def test_collective_failures_are_told_from_other_errors(message, lost):
    """The messages torch 2.14's gloo gave for a killed and a stopped peer (measured), and two
    errors that are not about another process."""
    from engine.distributed import is_collective_failure, lost_process

    assert is_collective_failure(RuntimeError(message)) is lost
    if lost:
        line = str(lost_process(RuntimeError(message), 0, 2, 7, 10, "kept."))
        assert line.startswith("process 1 of 2 stopped answering at iteration 7")
        assert ("no answer within train.dist_timeout_s=10 s" in line) is ("Timed out" in message)

