"""The backbone files a user brings, written with random values in each real format: ours
(`.safetensors`, via `save_weights`), torchvision's or timm's state dict (`.pth`), and Detectron's
MSRA `.pkl` (BN folded into scale and bias, blob names). The config sweep and `make test-docs`
give them to configs and documented commands that name a weights file; tests read the MSRA layout.
"""

import io
import pickle
import struct
from pathlib import Path

MSRA_PIXEL_STD = 58.0  # ImageNet's pixel spread in 0-255 units: what MSRA nets see (no division)


def with_bn_statistics(net, batches: int = 2, input_std: float = 1.0):
    """BN statistics of the net's own activations (a few forward passes on noise of the input
    convention's spread: 1 for normalised RGB, ~58 for MSRA's BGR 0-255 less the mean), as
    pretraining leaves them: with init statistics (mean 0, variance 1) frozen BN does not
    normalise, and a random ResNet-101's activations grow until a detector's first losses are not
    finite."""
    import torch

    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the passes
    size = 32 if "cifar" in getattr(net, "registry_name", "") else 224
    net.train()
    with torch.no_grad():
        for _ in range(batches if norms else 0):
            net(torch.randn(4, 3, size, size) * input_std)
    for m in norms:
        m.momentum = 0.1
    return net.eval()


def msra_blobs(model) -> dict:
    """`model` (our names, BN with statistics, BGR 0-255 input) in Detectron's blob layout: BN
    folded into scale and bias."""
    import torch

    from backbones.msra import BN_EPS

    state = model.state_dict()
    blobs = {"conv1_w": state["stem.conv.weight"].numpy()}

    def fold(prefix, blob):
        scale = state[f"{prefix}.weight"] / torch.sqrt(state[f"{prefix}.running_var"] + BN_EPS)
        blobs[f"{blob}_s"] = scale.numpy()
        blobs[f"{blob}_b"] = (state[f"{prefix}.bias"] - state[f"{prefix}.running_mean"] * scale).numpy()

    fold("stem.bn", "res_conv1_bn")
    for s, stage in enumerate(model.stages):
        for b, _ in enumerate(stage):
            ours, theirs = f"stages.{s}.{b}", f"res{s + 2}_{b}"
            for conv, bn, branch in (("conv1", "bn1", "branch2a"), ("conv2", "bn2", "branch2b"),
                                     ("conv3", "bn3", "branch2c"),
                                     ("shortcut.conv", "shortcut.bn", "branch1")):
                if f"{ours}.{conv}.weight" in state:
                    blobs[f"{theirs}_{branch}_w"] = state[f"{ours}.{conv}.weight"].numpy()
                    fold(f"{ours}.{bn}", f"{theirs}_{branch}_bn")
    blobs["fc1000_w"], blobs["fc1000_b"] = state["fc.weight"].numpy(), state["fc.bias"].numpy()
    return blobs


class _Python2Pickler(pickle._Pickler):
    """Bytes written as Python 2's `str` (BINSTRING), as Detectron's files hold array data; Python
    3 reads it back only through `encoding="latin1"`."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_str2(self, data: bytes) -> None:
        short = len(data) < 256
        self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) if short
                   else pickle.BINSTRING + struct.pack("<i", len(data)))
        self.write(data)
        self.memoize(data)

    dispatch[bytes] = save_str2


def python2_pickle(blobs: dict) -> bytes:
    """`blobs` pickled as Python 2 with numpy 1 wrote Detectron's files: protocol 2, names and
    array data as `str`, numpy's module `numpy.core`."""
    buffer = io.BytesIO()
    as_str = {name.encode(): array for name, array in blobs.items()}
    _Python2Pickler(buffer, protocol=2).dump({"blobs": as_str})
    return buffer.getvalue().replace(b"cnumpy._core.", b"cnumpy.core.")


def write_backbone(name: str, path: Path) -> Path:
    """Registry net `name` with random weights (BN statistics set) at `path`, in the format its
    suffix says: `.pkl` Detectron's MSRA layout (the paper's stride-in-1x1 bottleneck), `.pth`
    torchvision's or timm's own state dict where they have the net (else ours in a .pth), anything
    else ours via `save_weights`."""
    import torch
    import torchvision

    from backbones import create_backbone, save_weights

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".pkl":
        net = with_bn_statistics(create_backbone(name, stride_in_1x1=True), input_std=MSRA_PIXEL_STD)
        path.write_bytes(python2_pickle(msra_blobs(net)))
    elif path.suffix == ".pth" and name.startswith("timm/"):
        import timm

        torch.save(with_bn_statistics(timm.create_model(name[5:])).state_dict(), path)
    elif path.suffix == ".pth" and hasattr(torchvision.models, name):
        torch.save(with_bn_statistics(getattr(torchvision.models, name)()).state_dict(), path)
    elif path.suffix == ".pth":
        torch.save(with_bn_statistics(create_backbone(name)).state_dict(), path)
    else:
        save_weights(with_bn_statistics(create_backbone(name)), path)
    return path
