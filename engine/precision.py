"""`train.precision: auto`: bf16 autocast where the hardware computes bf16 natively, fp32 elsewhere.

On a CPU without bf16 units (no AVX512-BF16, no AMX), bf16 autocast is emulated and about ten
times slower than fp32, so "auto" must read the CPU's own flags, not ask whether oneDNN *can* run
bf16 (`torch.ops.mkldnn._is_mkldnn_bf16_supported()` is True on any AVX-512 CPU)."""

from pathlib import Path

import torch

from .autocast_ops import register_fp32_fallbacks

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
PRECISIONS = ("fp32", "bf16", "fp16", "auto")

register_fp32_fallbacks()  # before any autocast region this toolkit opens: ops with no bf16 kernel


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere, which means fp32)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return set()
    for line in cpuinfo.read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def cpu_has_bf16(flags: set[str] | None = None) -> bool:
    return bool(set(BF16_CPU_FLAGS) & (cpu_flags() if flags is None else flags))


def resolve_precision(precision: str, device: str, *, cpu_bf16: bool | None = None,
                      cuda_bf16: bool | None = None) -> str:
    """The precision a run uses: `precision` itself, or for "auto" bf16 on a CPU with bf16 units
    or a GPU that supports it (Ampere and later), fp32 otherwise."""
    if precision != "auto":
        return precision
    if device == "cuda":
        supported = torch.cuda.is_bf16_supported() if cuda_bf16 is None else cuda_bf16
    else:
        supported = cpu_has_bf16() if cpu_bf16 is None else cpu_bf16
    return "bf16" if supported else "fp32"
