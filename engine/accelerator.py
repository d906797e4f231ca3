"""The Accelerator of a run: its devices and processes, precision and gradient accumulation,
with the global batch the same on any number of processes."""

import os

import torch
from accelerate import Accelerator, DataLoaderConfiguration

from .config import check_choice
from .distributed import process_group_timeout
from .precision import PRECISIONS, resolve_precision

ACCELERATE_PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}


def run_precision(t) -> str:
    """fp32, bf16 or fp16: `train.precision`, with "auto" resolved for the device the run uses."""
    check_choice("train.precision", t.precision, PRECISIONS)
    device = "cpu" if t.cpu or not torch.cuda.is_available() else "cuda"
    return resolve_precision(t.precision, device)


def _cpu_processes() -> bool:
    """Several processes and no GPU: Accelerate runs them on gloo only when told `cpu=True`."""
    return not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1


def make_accelerator(t) -> Accelerator:
    """The Accelerator of a run (`t`: its `train` section); batches split so the global batch is
    the same on any number of processes."""
    return Accelerator(
        cpu=t.cpu or _cpu_processes(),
        mixed_precision=ACCELERATE_PRECISION[run_precision(t)],
        gradient_accumulation_steps=t.grad_accum,
        dataloader_config=DataLoaderConfiguration(split_batches=True),
        kwargs_handlers=[process_group_timeout(t.dist_timeout_s)],
    )


def split_batch(batch_size: int, grad_accum: int, processes: int) -> int:
    """The micro-batch of all processes together; a global batch that does not split evenly
    (say, a job resumed on another number of GPUs) is an error listing the counts that would."""
    micro_batch = batch_size // grad_accum
    if micro_batch * grad_accum != batch_size or micro_batch % processes:
        fitting = [n for n in range(1, micro_batch + 1) if micro_batch % n == 0]
        raise ValueError(
            f"train.batch_size={batch_size} must split evenly into train.grad_accum={grad_accum} "
            f"steps and {processes} processes; process counts that split it (the global batch stays "
            f"the config's): {', '.join(map(str, fitting[:12]))}{', ...' if len(fitting) > 12 else ''}")
    return micro_batch
