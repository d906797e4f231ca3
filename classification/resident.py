"""`data.resident`: the whole uint8 training set held on the training device (CIFAR-10: 150 MB),
its batches gathered there by index, without a DataLoader.

A CIFAR step on a GPU takes about a millisecond; a loader that builds each batch on the CPU
sample by sample (a seeded generator per sample, then stacking and a copy to the device) costs
more than that. Here an epoch is one permutation (the trainer's `EpochSampler`, the same order
as the loader path) and one draw of every sample's crop and flip from a generator seeded by
(seed, epoch), indexed by sample: reproducible whatever the batch split or process count, and
resumable mid-epoch. The draws differ from the loader path's per-sample ones (same distribution).
"""

import torch

from .batch_augment import PAD


class ResidentBatches:
    """Training batches for one process: rows [rank * b / p, (rank + 1) * b / p) of each global
    micro-batch of `batch_size` samples, as Accelerate's `split_batches` deals them."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, sampler, batch_size: int, seed: int,
                 process_index: int = 0, num_processes: int = 1):
        self.images, self.labels, self.sampler = images, labels, sampler
        self.batch_size, self.seed, self.epoch = batch_size, seed, 0
        share = batch_size // num_processes
        self.rows = slice(process_index * share, (process_index + 1) * share)

    def __len__(self) -> int:
        return len(self.sampler) // self.batch_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.sampler.set_epoch(epoch)

    def crop_flip(self) -> torch.Tensor:
        """(N, 3) (top, left, flip) of every sample this epoch, by sample index."""
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch * 7_919 + 1)
        offsets = torch.randint(0, 2 * PAD + 1, (len(self.labels), 2), generator=generator)
        flips = torch.randint(0, 2, (len(self.labels), 1), generator=generator)
        return torch.cat([offsets, flips], 1).to(self.images.device)

    def batches(self, skip: int = 0):
        """This epoch's batches from the `skip`-th on (a run resumed mid-epoch)."""
        order = torch.tensor(list(iter(self.sampler)), device=self.images.device)
        params = self.crop_flip()
        for start in range(skip * self.batch_size, len(self) * self.batch_size, self.batch_size):
            index = order[start:start + self.batch_size][self.rows]
            yield {"image": self.images[index], "label": self.labels[index], "crop_flip": params[index]}

    def __iter__(self):
        return self.batches()


class ResidentSet:
    """A decoded, same-size uint8 training set that makes its batches on the device."""

    def __init__(self, dataset):
        """`dataset`: a checked ClassificationDataset (its unreadable files already dropped),
        decoded here once."""
        images = [torch.as_tensor(dataset.load(i)) for i in range(len(dataset))]
        sizes = {tuple(image.shape) for image in images}
        if len(sizes) != 1:
            raise ValueError(f"data.resident stacks the training images unresized: they come in "
                             f"{len(sizes)} sizes ({', '.join(map(str, sorted(sizes)[:3]))}, ...)")
        self.images = torch.stack(images)
        self.labels = torch.tensor(dataset.labels, dtype=torch.long)
        self.classes, self.seed = dataset.classes, dataset.seed
        self.skipped_files = getattr(dataset, "skipped_files", [])

    def __len__(self) -> int:
        return len(self.labels)

    def device_batches(self, sampler, batch_size: int, device, process_index: int, num_processes: int):
        return ResidentBatches(self.images.to(device), self.labels.to(device), sampler, batch_size,
                               self.seed, process_index, num_processes)
