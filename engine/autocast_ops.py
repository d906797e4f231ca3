"""Operators without a kernel for the autocast dtype run in fp32 inside the autocast region.

torchvision registers its autocast wrappers (cast to fp32, run, cast back) for every device only
for `nms` and `roi_align`; `roi_pool` (Fast R-CNN's RoI max pooling, both paper detection configs),
`ps_roi_*` and `deform_conv2d` have them on CUDA alone, and their CPU kernels have no bf16 path:
under CPU bf16 autocast they fail ("not implemented for 'BFloat16'", "input should have the same
type as rois"). `register_fp32_fallbacks` adds the same wrapper for each (op, device) that lacks
one, and leaves any a newer torchvision registers itself untouched.
"""

import operator
from functools import reduce

import torch

# op -> the positions of its floating-point tensor arguments; the first is the dtype cast back to
FP32_OPS = {
    "roi_pool": (0, 1),
    "ps_roi_align": (0, 1),
    "ps_roi_pool": (0, 1),
    "deform_conv2d": (0, 1, 2, 3, 4),
    "roi_align": (0, 1),
    "nms": (0, 1),
}
AUTOCAST_KEYS = tuple(k for k in ("AutocastCPU", "AutocastCUDA", "AutocastXPU")
                      if hasattr(torch._C.DispatchKey, k))  # those this torch has
_ALL_AUTOCAST = reduce(operator.or_, (torch._C.DispatchKeySet(getattr(torch._C.DispatchKey, k))
                                      for k in AUTOCAST_KEYS))

_library = None  # torch.library.Library holding our registrations (alive as long as the process)
REGISTERED: list[str] = []  # "op@key" added here, for tests and the sweep's report


def _to_fp32(value):
    """Autocast's own rule: floating tensors other than fp64 become fp32, the rest as they are."""
    if torch.is_tensor(value) and value.is_floating_point() and value.dtype is not torch.float64:
        return value.float()
    return value


def _fp32_wrapper(op_name: str, tensor_args: tuple[int, ...]):
    op = getattr(torch.ops.torchvision, op_name)

    def run_in_fp32(*args):
        dtype = args[tensor_args[0]].dtype
        args = [_to_fp32(a) if i in tensor_args else a for i, a in enumerate(args)]
        with torch._C._ExcludeDispatchKeyGuard(_ALL_AUTOCAST):
            out = op(*args)
        if op_name == "nms":  # indices
            return out
        if isinstance(out, tuple):  # (output, argmax / channel mapping): indices stay as they are
            return (out[0].to(dtype), *out[1:])
        return out.to(dtype)

    return run_in_fp32


def register_fp32_fallbacks() -> list[str]:
    """Register the fp32 wrapper for every torchvision op in FP32_OPS on every autocast key that has
    no kernel for it; idempotent. Returns what this process added ("roi_pool@AutocastCPU", ...)."""
    global _library
    if not _torchvision_ops_loaded():
        return REGISTERED
    for op_name, tensor_args in FP32_OPS.items():
        qualified = f"torchvision::{op_name}"
        for key in AUTOCAST_KEYS:
            if torch._C._dispatch_has_kernel_for_dispatch_key(qualified, key):
                continue
            if _library is None:
                _library = torch.library.Library("torchvision", "IMPL")
            _library.impl(op_name, _fp32_wrapper(op_name, tensor_args), key)
            REGISTERED.append(f"{op_name}@{key}")
    return REGISTERED


def _torchvision_ops_loaded() -> bool:
    """torchvision imported first (its C++ ops and its own autocast registrations), with its ops."""
    import torchvision

    return torchvision.extension._has_ops()
