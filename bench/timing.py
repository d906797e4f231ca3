"""Side-by-side timing of training steps, so speed claims are ratios measured in one process."""

import statistics
import time
from collections.abc import Callable

import torch
from torch import nn


def make_train_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, optimizer=None,
                    after: Callable | None = None) -> Callable:
    """One step (forward, cross-entropy, backward, update; SGD unless `optimizer` is given, then
    `after()`, e.g. an EMA update) of `model` on a fixed batch."""
    optimizer = optimizer or torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
        if after is not None:
            after()

    return step


def compare_steps(steps: dict[str, Callable], *, repeats: int = 5, warmup: int = 1,
                  sync: Callable = lambda: None) -> dict:
    """Median seconds per call of each step, interleaved in alternating order (A B, B A, ...) so
    drift and position effects fall on both alike. `sync` waits for queued work (on a GPU:
    torch.cuda.synchronize), before a timer starts and before it stops."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    sync()
    times = {name: [] for name in steps}
    for repeat in range(repeats):
        order = list(steps.items())
        for name, step in order if repeat % 2 == 0 else reversed(order):
            start = time.perf_counter()
            step()
            sync()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def loader_throughput(dataset, collate, *, batch_size: int, num_workers: int, batches: int) -> float:
    """Images per second a DataLoader delivers on its own (no model), after one warm-up batch."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True,
                                         num_workers=num_workers, collate_fn=collate)
    iterator = iter(loader)
    next(iterator)
    start, seen = time.perf_counter(), 0
    for _ in range(batches):
        seen += len(next(iterator)["label"])
    return seen / (time.perf_counter() - start)
