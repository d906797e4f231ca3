"""Probes of a net's inner signals, for the paper's analysis of why deep plain nets degrade.

- Fig. 7's *responses*: the output of each 3x3 layer after its BN and before ReLU or the
  addition, summarised by its standard deviation (`ResponseRecorder`);
- Sec. 4.1's *backward signals*: the norm of the loss gradient with respect to each block's output
  (`BlockGradients`) and each layer's weights (`weight_gradient_norms`).

The layers are found through the net's own structure (stem, stages of blocks), never by matching
module names of arbitrary models: a net without that structure is refused (`NotProbeableError`),
so a figure can never show the wrong layers. A response's std is taken over every element of the
layer's output (images, channels, positions), accumulated as float64 sums so that any split into
batches or processes gives the same number.
"""

import math
from dataclasses import dataclass

import torch
from torch import nn

from .errors import BackboneError
from .registry import backbone_family
from .resnet import ResNet


class NotProbeableError(BackboneError):
    """The net lacks the stem / stages / blocks structure the analysis is defined on."""


@dataclass(frozen=True)
class Layer:
    """One convolution and the normalisation whose output is its response."""

    name: str  # the conv's module name, e.g. "stages.0.1.conv2"
    stage: int  # 0: the stem; 1..: the stages (conv2_x.. on ImageNet, the 32/16/8 maps on CIFAR)
    conv: nn.Conv2d
    norm: nn.Module


PROBED_FAMILIES = ("resnet", "plain")


def check_probeable(model: nn.Module) -> ResNet:
    """The registry ResNet / plain net `model` is, or an error saying why it cannot be probed."""
    if isinstance(model, ResNet):
        return model
    raise NotProbeableError(_why_not(getattr(model, "registry_name", type(model).__name__)))


def check_probeable_name(name: str) -> None:
    """`check_probeable` before building: by the registry's family of `name`."""
    if backbone_family(name) not in PROBED_FAMILIES:
        raise NotProbeableError(_why_not(name))


def _why_not(name: str) -> str:
    if name.startswith("timm/"):
        why = ("a timm model is built from timm's own modules, whose layers and BN placement this "
               "analysis cannot identify without guessing")
    elif name.startswith("vgg"):
        why = ("a VGG net has no residual or plain blocks, and the paper's VGG has no BN after its "
               "convolutions: there is no 'response after BN' to measure")
    else:
        why = "it is not one of the registry's ResNet or plain nets (a stem and stages of blocks)"
    return (f"not supported: {name}: {why}. Fig. 7's responses and the gradient probes are defined "
            f"on the paper's plain and residual nets")


def response_layers(model: nn.Module, all_convs: bool = False) -> list[Layer]:
    """The net's 3x3 convolutions in forward order (Fig. 7's layers): the CIFAR stem's 3x3 and
    every 3x3 of every block (both of a basic block, the middle one of a bottleneck). With
    `all_convs`, every convolution: the ImageNet stem's 7x7, the bottlenecks' 1x1s and the
    projection shortcuts too."""
    net = check_probeable(model)
    layers = [Layer("stem.conv", 0, net.stem.conv, net.stem.bn)]
    for stage_index, stage in enumerate(net.stages, start=1):
        for block_index, block in enumerate(stage):
            prefix = f"stages.{stage_index - 1}.{block_index}."
            for name, conv in block.named_modules():
                if isinstance(conv, nn.Conv2d):
                    norm = block.get_submodule(name.replace("conv", "bn"))
                    layers.append(Layer(prefix + name, stage_index, conv, norm))
    return [layer for layer in layers if all_convs or layer.conv.kernel_size == (3, 3)]


def block_outputs(model: nn.Module) -> list[tuple[str, int, nn.Module]]:
    """(name, stage, module) of the stem and of every block, in forward order: the signals a
    backward pass carries from the loss to the first layer."""
    net = check_probeable(model)
    blocks = [("stem", 0, net.stem)]
    for stage_index, stage in enumerate(net.stages, start=1):
        blocks += [(f"stages.{stage_index - 1}.{i}", stage_index, block) for i, block in enumerate(stage)]
    return blocks


class ResponseRecorder:
    """Forward hooks summing each layer's response (count, sum, sum of squares, in float64) over
    every batch run while it is open:

        with ResponseRecorder(response_layers(model)) as recorder:
            for images in batches: model(images)
        recorder.std()   # {layer name: std}
    """

    def __init__(self, layers: list[Layer]):
        self.layers = layers
        self.sums = torch.zeros(len(layers), 3, dtype=torch.float64)
        self._handles = []

    def __enter__(self) -> "ResponseRecorder":
        for index, layer in enumerate(self.layers):
            self._handles.append(layer.norm.register_forward_hook(self._hook(index)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _hook(self, index: int):
        def record(module, inputs, output):
            # called as the norm returns, before the block's in-place ReLU or addition
            values = output.detach().double()
            if self.sums.device != values.device:
                self.sums = self.sums.to(values.device)
            self.sums[index] += torch.stack([values.new_tensor(values.numel()), values.sum(),
                                             values.square().sum()])
        return record

    def std(self, sums: torch.Tensor | None = None) -> dict[str, float]:
        """Each layer's response std (of the given sums: e.g. all processes' added up)."""
        sums = (self.sums if sums is None else sums).cpu()
        if not bool((sums[:, 0] > 0).all()):
            raise ValueError("no response recorded: run the model on at least one batch while the "
                             "recorder is open")
        count, total, squares = sums.unbind(1)
        mean = total / count
        variance = (squares / count - mean.square()).clamp(min=0)
        return {layer.name: math.sqrt(v) for layer, v in zip(self.layers, variance.tolist())}


class BlockGradients:
    """Tensor hooks recording, for each backward pass run while it is open, the norm of the loss
    gradient with respect to the output of the stem and of every block (`records`: one
    {name: (norm, elements)} per backward)."""

    def __init__(self, model: nn.Module):
        self.blocks = block_outputs(model)
        self.records: list[dict] = []
        self._handles, self._current = [], {}

    def __enter__(self) -> "BlockGradients":
        for name, _, module in self.blocks:
            self._handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _hook(self, name: str):
        def watch(module, inputs, output):
            if output.requires_grad:
                output.register_hook(lambda grad: self._record(name, grad))
        return watch

    def _record(self, name: str, grad: torch.Tensor) -> None:
        self._current[name] = (float(grad.detach().double().norm()), grad.numel())
        if len(self._current) == len(self.blocks):  # the stem's comes last: the pass is complete
            self.records.append(self._current)
            self._current = {}


def weight_gradient_norms(layers: list[Layer]) -> dict[str, float]:
    """The norm of each layer's weight gradient (after a backward pass)."""
    norms = {}
    for layer in layers:
        grad = layer.conv.weight.grad
        if grad is None:
            raise ValueError(f"{layer.name} has no gradient: run backward first (and keep its "
                             f"weights trainable)")
        norms[layer.name] = float(grad.detach().double().norm())
    return norms


def stage_gradient_norms(model: nn.Module) -> dict[int, float]:
    """The norm of the gradient of all parameters of the stem (0) and of each stage (1..)."""
    net = check_probeable(model)
    parts = [net.stem, *net.stages]
    norms = {}
    for index, part in enumerate(parts):
        grads = [p.grad.detach().double() for p in part.parameters() if p.grad is not None]
        norms[index] = math.sqrt(sum(float(g.square().sum()) for g in grads)) if grads else 0.0
    return norms
