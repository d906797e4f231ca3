import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from helpers import REPO, call_tool, reset_accelerate_state, write_coco_dataset

sys.path.insert(0, str(REPO / "bench"))  # bench/ is a folder of scripts and their modules, not a package


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def pytest_configure(config):
    """Two threads (the tolerances' machine), unless OMP_NUM_THREADS says otherwise (`make mutants`
    runs one: its forked test processes deadlock in a started OpenMP pool)."""
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 2)))


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
