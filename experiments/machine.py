"""What a figure was measured on: the device, and for CPUs the model and whether it has bf16
units (training speed differs tenfold between those that have them and those that do not)."""

import os
import platform
from pathlib import Path

import torch

from engine.precision import BF16_CPU_FLAGS, cpu_flags


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    for line in cpuinfo.read_text().splitlines() if cpuinfo.exists() else []:
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    return platform.processor() or "unknown CPU"


def machine() -> str:
    """One line: the device, torch and Python versions."""
    if torch.cuda.is_available():
        device = f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    else:
        bf16 = ", ".join(f for f in BF16_CPU_FLAGS if f in cpu_flags()) or "no bf16 units"
        device = (f"CPU: {os.cpu_count()} cores of {cpu_model()} ({bf16}), "
                  f"{torch.get_num_threads()} torch threads")
    return f"{device}; torch {torch.__version__}, Python {platform.python_version()}"
