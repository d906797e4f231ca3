"""The model table: every ImageNet and CIFAR backbone's size and cost beside the paper's."""

import re

import torch

from .counting import count_macs, count_params
from .factory import create_backbone
from .paper import TABLE1_GMACS, TABLE6_PARAMS_M, V15_GMACS
from .registry import list_backbones

BOTTLENECK_NETS = ("resnet50", "resnet101", "resnet152", "plain50", "plain101", "plain152")


def table_variants() -> list[tuple[str, dict]]:
    """(name, options) for each row; bottleneck nets in both designs, ResNet-34 with A/B/C."""
    rows = []
    for name in list_backbones("resnet*") + list_backbones("plain*"):
        if name in BOTTLENECK_NETS:
            rows += [(name, {"stride_in_1x1": True}), (name, {"stride_in_1x1": False})]
        elif name == "resnet34":
            rows += [(name, {"shortcut": s}) for s in "ABC"]
        else:
            rows.append((name, {}))
    rows += [(name, {}) for name in list_backbones("vgg*")]
    rows += [(name, {}) for name in list_backbones("cifar_*")]
    return sorted(rows, key=lambda r: (_family(r[0]), _depth(r[0]), r[0].endswith("_bn"), r[0], str(r[1])))


def _family(name: str) -> int:
    return 2 if name.startswith("cifar") else 1 if name.startswith("vgg") else 0


def _depth(name: str) -> int:
    return int(re.search(r"\d+", name).group())


def _paper_gmacs(name: str, options: dict):
    if options.get("stride_in_1x1") is False:
        return V15_GMACS.get(name)
    return TABLE1_GMACS.get(name)


def model_table() -> list[dict]:
    """One dict per row: backbone, options, params, GMACs, and the paper's figures where given."""
    rows = []
    for name, options in table_variants():
        size = (3, 32, 32) if name.startswith("cifar") else (3, 224, 224)
        with torch.device("meta"):  # counts need shapes only: no memory, no compute
            model = create_backbone(name, **options)
        rows.append({
            "backbone": name,
            "options": ", ".join(f"{k}={v}" for k, v in options.items()),
            "input": f"{size[1]}x{size[2]}",
            "params_m": count_params(model) / 1e6,
            "gmacs": count_macs(model, size) / 1e9,
            "paper_params_m": TABLE6_PARAMS_M.get(name),
            "paper_gmacs": _paper_gmacs(name, options),
        })
    return rows


def to_markdown(rows: list[dict]) -> str:
    lines = [
        "| backbone | options | input | params (M) | GMACs | paper params (M) | paper GMACs |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        def fmt(value, digits):
            return "" if value is None else f"{value:.{digits}f}"

        lines.append(
            f"| {r['backbone']} | {r['options']} | {r['input']} | {fmt(r['params_m'], 3)} | "
            f"{fmt(r['gmacs'], 3)} | {fmt(r['paper_params_m'], 2)} | {fmt(r['paper_gmacs'], 1)} |"
        )
    return "\n".join(lines) + "\n"
