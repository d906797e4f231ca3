import pytest
import torch
from helpers import reset_accelerate_state, write_coco_dataset


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def pytest_configure(config):
    torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    """Accelerate keeps process-wide singletons; each in-process training run starts clean."""
    yield
    reset_accelerate_state()


@pytest.fixture
def coco(tmp_path):
    """(annotations file, image folder) of 4 generated 64 px images with squares."""
    return write_coco_dataset(tmp_path, num_images=4, size=64), tmp_path / "images"
