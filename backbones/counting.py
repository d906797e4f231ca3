"""Parameter and multiply-add counts, to check the nets against the paper's Table 1 and Table 6."""

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module, *, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def count_macs(model: nn.Module, input_size=(3, 224, 224)) -> int:
    """Multiply-adds of one forward pass on one image (convs and fc, as the paper counts).

    Runs in eval mode (so BN statistics are untouched) on the model's own device; a model built
    under `torch.device("meta")` is counted without computing anything.
    """
    param = next(model.parameters())
    x = torch.zeros(1, *input_size, device=param.device, dtype=param.dtype)
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2  # the counter counts a multiply-add as two FLOPs
