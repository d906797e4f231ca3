import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from helpers import REPO, call_tool, reset_accelerate_state, write_coco_dataset


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def pytest_configure(config):
    """Two threads in one process (the machine's 2 cores); under pytest-xdist (`make test`) each
    worker a share of the cores, and so do the tools the tests start (OMP_NUM_THREADS): 1-thread
    processes side by side do more work than one 2-thread process (docs/benchmarks.md)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", 1))
    threads = max(1, 2 // workers)  # the suite's two threads, shared out
    if workers > 1:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


# Modules whose tests share a module- or session-scoped fixture: one xdist worker each (`--dist
# loadgroup`), so that the fixture is built once; the gpu-check dry run reuses the smoke demo.
SHARED_FIXTURE_GROUPS = {"test_demo": "demo", "test_gpu_check": "demo", "test_detection_train": "",
                         "test_distributed": "", "test_layers": "", "test_mask_rcnn": "",
                         "test_reliability": "", "test_weights_metadata": ""}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__
        if module in SHARED_FIXTURE_GROUPS:
            item.add_marker(pytest.mark.xdist_group(SHARED_FIXTURE_GROUPS[module] or module))


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    """Accelerate keeps process-wide singletons; each in-process training run starts clean."""
    yield
    reset_accelerate_state()


@pytest.fixture
def coco(tmp_path):
    """(annotations file, image folder) of 4 generated 64 px images with squares."""
    return write_coco_dataset(tmp_path, num_images=4, size=64), tmp_path / "images"


def _default_sigint():
    """Ctrl-C must reach the demo even where the tests run with SIGINT ignored (a background job)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """`tools/demo.py --smoke`, interrupted (Ctrl-C) once a detector has saved, then the same
    command again: (out, first log, second log)."""
    out = tmp_path_factory.mktemp("demo")
    command = [sys.executable, str(REPO / "tools" / "demo.py"), "--smoke", "--out", str(out)]
    first = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, preexec_fn=_default_sigint)
    checkpoint = out / "detect" / "cifar_plain56_c4" / "checkpoints" / "last.pth"
    deadline = time.time() + 300
    while not checkpoint.exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    first.send_signal(signal.SIGINT)  # Ctrl-C
    first_log = first.communicate(timeout=120)[0]
    second = call_tool("demo", *command[2:])  # the same command, in this process
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    return out, first_log, second.stdout + second.stderr
