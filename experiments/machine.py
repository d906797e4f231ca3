"""What a figure was measured on: the device, and for CPUs the model and whether it has bf16
units (training speed differs tenfold between those that have them and those that do not)."""

import os
import platform
from pathlib import Path

import torch

BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_model_and_flags() -> tuple[str, set]:
    """The CPU's model name and its feature flags (empty where /proc/cpuinfo is absent)."""
    model, flags = "", set()
    cpuinfo = Path("/proc/cpuinfo")
    for line in cpuinfo.read_text().splitlines() if cpuinfo.exists() else []:
        key, _, value = line.partition(":")
        if key.strip() == "model name" and not model:
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return model or platform.processor() or "unknown CPU", flags


def machine() -> str:
    """One line: the device, torch and Python versions."""
    if torch.cuda.is_available():
        device = f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    else:
        model, flags = cpu_model_and_flags()
        bf16 = [f for f in BF16_FLAGS if f in flags]
        device = (f"CPU: {os.cpu_count()} cores of {model} ({', '.join(bf16) if bf16 else 'no bf16 units'}), "
                  f"{torch.get_num_threads()} torch threads")
    return f"{device}; torch {torch.__version__}, Python {platform.python_version()}"
