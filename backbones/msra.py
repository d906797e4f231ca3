"""The paper's own ImageNet models, as Detectron ships them converted from MSRA's Caffe files
(`R-50.pkl`, `R-101.pkl`, `R-152.pkl`).

Layout: a pickled dict (or `{"blobs": dict}`) of numpy arrays named by Caffe2 blobs: `conv1_w`,
`res_conv1_bn_{s,b}`, `res<S>_<b>_branch2{a,b,c}_w` and `_bn_{s,b}`, `res<S>_0_branch1_w` and
`_bn_{s,b}` (the projection shortcut), `fc1000_{w,b}`. BatchNorm is folded into a per-channel
scale `s` and bias `b` (no mean and variance); the stride sits in the first 1x1 of a bottleneck;
the input is BGR in 0-255 with the per-channel mean subtracted and std 1.

Read into `resnet50/101/152(stride_in_1x1=True)` names with BN as frozen statistics (mean 0,
variance 1 - eps, so `scale / sqrt(var + eps)` is the file's scale), and converted to RGB input:
conv1's input channels reversed, the convention `(rgb - mean / 255) / (1 / 255)`, which is the
file's `bgr255 - mean` exactly. The unpickler admits numpy arrays and plain data and nothing else.
"""

import pickle
import re
from pathlib import Path

import numpy as np
import torch

from .errors import UnsafeCheckpointError, WeightsMismatchError

BGR_MEAN = (102.9801, 115.9465, 122.7717)  # Detectron's PIXEL_MEANS
BN_EPS = 1e-5  # torch's BatchNorm2d / FrozenBatchNorm2d
DEPTH_OF_RES4 = {6: 50, 23: 101, 36: 152}  # blocks in conv4_x -> depth (Table 1)
BRANCHES = {"branch2a": "conv1", "branch2b": "conv2", "branch2c": "conv3", "branch1": "shortcut.conv"}
BN_OF = {"conv1": "bn1", "conv2": "bn2", "conv3": "bn3", "shortcut.conv": "shortcut.bn"}
_BLOCK_BLOB = re.compile(r"^res(\d)_(\d+)_(branch2a|branch2b|branch2c|branch1)_(w|bn_s|bn_b)$")
_ALLOWED = {  # what pickled numpy arrays reference (numpy 1 and 2 module names), nothing more
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise UnsafeCheckpointError(
                f"refused to unpickle {module}.{name}: a Detectron model holds numpy arrays only")
        if module.startswith("numpy.core"):
            module = module.replace("numpy.core", "numpy._core", 1)
        return super().find_class(module, name)


def load_blobs(path: str | Path) -> dict[str, np.ndarray]:
    """The blob dict of a Detectron .pkl (Python 2 pickles read as latin-1, as Detectron does)."""
    with open(path, "rb") as f:
        try:
            blobs = _ArraysOnly(f, encoding="latin1").load()
        except UnsafeCheckpointError as error:
            raise UnsafeCheckpointError(f"{path}: {error}") from None
    if isinstance(blobs, dict) and isinstance(blobs.get("blobs"), dict):
        blobs = blobs["blobs"]
    if not isinstance(blobs, dict):
        raise WeightsMismatchError(f"{path} is not a Detectron model: it holds a "
                                   f"{type(blobs).__name__}, not a dict of blobs")
    return {k: v for k, v in blobs.items() if isinstance(v, np.ndarray)}


def _our_key(blob: str) -> tuple[str, str] | None:
    """(module prefix, w | bn_s | bn_b) of a blob in our names; None if it is not MSRA's."""
    if blob == "conv1_w":
        return "stem.conv", "w"
    if blob in ("res_conv1_bn_s", "res_conv1_bn_b"):
        return "stem.bn", blob[-4:]
    if blob in ("fc1000_w", "fc1000_b"):
        return "fc", blob[-1]
    match = _BLOCK_BLOB.match(blob)
    if match is None:
        return None
    stage, block, branch, kind = match.groups()
    conv = BRANCHES[branch]
    prefix = f"stages.{int(stage) - 2}.{block}."
    return (prefix + conv, "w") if kind == "w" else (prefix + BN_OF[conv], kind)


def convert(blobs: dict[str, np.ndarray], source: str = "the file") -> dict[str, torch.Tensor]:
    """Our state dict (RGB input, frozen-BN statistics) from MSRA blobs; unknown blob names are
    an error listing them."""
    unmatched = sorted(b for b in blobs if _our_key(b) is None)
    if unmatched:
        raise WeightsMismatchError(f"{source}: blobs that are not an MSRA ResNet's: "
                                   + ", ".join(unmatched))
    state = {}
    for blob, array in blobs.items():
        prefix, kind = _our_key(blob)
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        if blob == "conv1_w":
            tensor = tensor.flip(1)  # BGR -> RGB input channels
        if kind in ("w", "bn_s"):
            state[f"{prefix}.weight"] = tensor
        else:  # fc1000_b, bn_b
            state[f"{prefix}.bias"] = tensor
        if kind == "bn_s":
            state[f"{prefix}.running_mean"] = torch.zeros_like(tensor)
            state[f"{prefix}.running_var"] = torch.full_like(tensor, 1 - BN_EPS)
    return state


def description(blobs: dict) -> dict:
    """What the file is: its depth from conv4_x's blocks; the paper's bottleneck; the input."""
    res4 = {int(m.group(2)) for b in blobs if (m := _BLOCK_BLOB.match(b)) and m.group(1) == "4"}
    depth = DEPTH_OF_RES4.get(len(res4))
    return {"layout": "Detectron MSRA (Caffe) ResNet", "task": "classification",
            "backbone": f"resnet{depth}" if depth else None,
            "options": {"stride_in_1x1": True, "shortcut": "B", "norm": "frozen_bn"},
            "input": {"mean": [m / 255 for m in reversed(BGR_MEAN)], "std": [1 / 255] * 3}}


def read_detectron_pkl(path: str | Path) -> dict:
    """A checkpoint dict as `read_state_file` returns: {"model": state, "meta": description}."""
    blobs = load_blobs(path)
    return {"model": convert(blobs, str(path)), "meta": description(blobs)}
