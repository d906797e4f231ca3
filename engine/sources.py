"""The two kinds of training data the trainer takes, declared instead of guessed: a map-style
dataset it batches through a DataLoader (every task), or a set that makes its batches on the
training device itself (`DeviceResidentSet`: classification's `data.resident`). Either may seed
its random augmentation by epoch (`EpochSeeded`)."""

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from torch.utils.data import DataLoader

from .data import EpochSampler, GroupedBatchSampler
from .signals import ignore_sigterm


@runtime_checkable
class EpochSeeded(Protocol):
    def set_epoch(self, epoch: int) -> None:
        """Seed this epoch's augmentation (so a resumed epoch draws what the first run drew)."""


@runtime_checkable
class DeviceBatches(Protocol):
    """One process's batches of a device-resident set, epoch by epoch."""

    def __len__(self) -> int: ...

    def set_epoch(self, epoch: int) -> None: ...

    def batches(self, skip: int = 0) -> Iterator[dict]:
        """This epoch's batches from the `skip`-th on (a run resumed mid-epoch)."""


@runtime_checkable
class DeviceResidentSet(Protocol):
    """A training set held on the device: Accelerate prepares no loader for it."""

    def __len__(self) -> int: ...

    def device_batches(self, sampler: EpochSampler, batch_size: int, device, process_index: int,
                       num_processes: int) -> DeviceBatches: ...


def make_loader(dataset, task, batch_size: int, sampler: EpochSampler, num_workers: int,
                pin_memory: bool, train: bool = False) -> DataLoader:
    """Training batches are full (drop_last) and, where the task groups samples (detection's
    aspect ratios), drawn one group at a time; loader workers leave SIGTERM to the trainer."""
    groups = task.batch_groups(dataset) if train else None
    batching = (dict(batch_sampler=GroupedBatchSampler(sampler, groups, batch_size)) if groups
                else dict(batch_size=batch_size, sampler=sampler, drop_last=train))
    return DataLoader(dataset, num_workers=num_workers, collate_fn=task.collate, pin_memory=pin_memory,
                      worker_init_fn=ignore_sigterm if num_workers else None, **batching)
