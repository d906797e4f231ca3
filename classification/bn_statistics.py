"""BatchNorm statistics as the paper computed them for detection (Appendix A): after pretraining,
each BN layer's mean and variance over the ImageNet training set, then fixed.

Not `torch.optim.swa_utils.update_bn`: that sets each layer's running variance to the *mean of
the per-batch variances*, which misses the variance of the batch means (the population variance
is the mean of the batch variances plus the variance of the batch means), so it is low whenever
batches differ. Here each layer's input is accumulated exactly over every image (Chan et al.'s
pairwise merge of per-batch means and sums of squared deviations, in float64), and the layer is
given the population mean and the unbiased population variance, as torch's BN estimates them.
As in update_bn, the network runs in training mode during the pass (each layer normalises with
its batch's statistics), so a layer's population is that of its input in that pass.
"""

from collections.abc import Iterable

import torch
from torch import nn

from engine.logs import ProgressBar


class _Moments:
    """Per-channel count, mean and sum of squared deviations, merged batch by batch."""

    def __init__(self):
        self.count, self.mean, self.m2 = 0, None, None

    def add(self, x: torch.Tensor) -> None:
        x = x.detach().double().transpose(0, 1).reshape(x.shape[1], -1)  # channels x values
        n = x.shape[1]
        mean = x.mean(1)
        m2 = ((x - mean[:, None]) ** 2).sum(1)
        if self.count == 0:
            self.count, self.mean, self.m2 = n, mean, m2
            return
        total = self.count + n
        delta = mean - self.mean
        self.m2 = self.m2 + m2 + delta**2 * self.count * n / total
        self.mean = self.mean + delta * n / total
        self.count = total

    def variance(self) -> torch.Tensor:
        return self.m2 / max(self.count - 1, 1)


def population_statistics(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Set every BatchNorm layer's running mean and variance to the population values of its
    input over all `batches` (model inputs); returns the number of images seen."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not layers:
        raise ValueError("the model has no BatchNorm layers whose statistics could be computed")
    moments = {layer: _Moments() for layer in layers}
    hooks = [layer.register_forward_pre_hook(lambda m, args: moments[m].add(args[0])) for layer in layers]
    was_training, images = model.training, 0
    model.train()
    try:
        with torch.no_grad():
            for x in ProgressBar(batches, desc="BN statistics", dynamic_ncols=True):
                model(x)
                images += len(x)
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    if images == 0:
        raise ValueError("no images to compute BN statistics on")
    for layer, m in moments.items():
        layer.running_mean.copy_(m.mean.to(layer.running_mean))
        layer.running_var.copy_(m.variance().to(layer.running_var))
    return images
