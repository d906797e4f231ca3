"""The model table: every ImageNet and CIFAR backbone's size and cost beside the paper's."""

import re

import torch

from backbones import backbone_family, count_macs, count_params, create_backbone, list_backbones

from .markdown import markdown_table
from .paper import TABLE1_GMACS, TABLE2_TOP1, TABLE3_TOP1_TOP5, TABLE4_TOP1_TOP5, TABLE6_PARAMS_M, V15_GMACS

BOTTLENECK_NETS = ("resnet50", "resnet101", "resnet152", "plain50", "plain101", "plain152")
CIFAR_PATTERN = "cifar_*"


def table_variants() -> list[tuple[str, dict]]:
    """(name, options) for each row; bottleneck nets in both designs, ResNet-34 with A/B/C and
    ResNet-18 with A (Table 2's) and B (the registry's default)."""
    rows = []
    for name in list_backbones("resnet*") + list_backbones("plain*"):
        if name in BOTTLENECK_NETS:
            rows += [(name, {"stride_in_1x1": True}), (name, {"stride_in_1x1": False})]
        elif name in ("resnet18", "resnet34"):
            rows += [(name, {"shortcut": s}) for s in ("ABC" if name == "resnet34" else "AB")]
        else:
            rows.append((name, {}))
    rows += [(name, {}) for name in list_backbones("vgg*")]
    rows += [(name, {}) for name in list_backbones(CIFAR_PATTERN)]
    return sorted(rows, key=lambda r: (_section(r[0]), _depth(r[0]), r[0].endswith("_bn"), r[0], str(r[1])))


def _section(name: str) -> int:
    """ImageNet ResNets and plain nets, then VGG, then the CIFAR nets."""
    return 2 if name.startswith(CIFAR_PATTERN[:-1]) else 1 if backbone_family(name) == "vgg" else 0


def _depth(name: str) -> int:
    return int(re.search(r"\d+", name).group())


def _paper_gmacs(name: str, options: dict):
    if options.get("stride_in_1x1") is False:
        return V15_GMACS.get(name)
    return TABLE1_GMACS.get(name)


def _paper_key(name: str, options: dict) -> str | None:
    """The row name Tables 2-4 give this net ("resnet34 B"); None for torchvision's v1.5 design,
    which the paper did not train."""
    if options.get("stride_in_1x1") is False:
        return None
    return f"{name} {options['shortcut']}" if "shortcut" in options else name


def _paper_errors(name: str, options: dict) -> dict:
    """The paper's ImageNet val errors of this net: 10-crop top-1/top-5 (Tables 2-3) and
    multi-scale top-1/top-5 (Table 4), where it reports them."""
    key = _paper_key(name, options)
    # Table 2's ResNets have option A shortcuts; the registry's default is B
    table2 = name if name.startswith("plain") or options.get("shortcut") == "A" else None
    top1, top5 = TABLE3_TOP1_TOP5.get(key, (TABLE2_TOP1.get(table2), None))
    multi_scale = TABLE4_TOP1_TOP5.get(key)
    return {"paper_top1": top1, "paper_top5": top5,
            "paper_multiscale": f"{multi_scale[0]:.2f} / {multi_scale[1]:.2f}" if multi_scale else None}


def model_table() -> list[dict]:
    """One dict per row: backbone, options, params, GMACs, and the paper's figures where given."""
    rows = []
    for name, options in table_variants():
        size = (3, 32, 32) if _section(name) == 2 else (3, 224, 224)
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
            **_paper_errors(name, options),
        })
    return rows


def _fmt(value, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def to_markdown(rows: list[dict]) -> str:
    header = ["backbone", "options", "input", "params (M)", "GMACs", "paper params (M)", "paper GMACs",
              "paper top-1 / top-5 err. (%, 10-crop)", "paper top-1 / top-5 err. (%, multi-scale)"]
    return markdown_table(header, [
        [r["backbone"], r["options"], r["input"], _fmt(r["params_m"], 3), _fmt(r["gmacs"], 3),
         _fmt(r["paper_params_m"], 2), _fmt(r["paper_gmacs"], 1),
         " / ".join(_fmt(v, 2) for v in (r["paper_top1"], r["paper_top5"]) if v is not None),
         r["paper_multiscale"] or ""] for r in rows], numeric_from=3) + "\n"


HEADER = """# Model table

Parameters and multiply-adds (one image; convs and fc, as the paper counts them) of every
registered ImageNet and CIFAR backbone, counted by `backbones.count_params` / `count_macs`, beside
the paper's Table 1 (GFLOPs, 224x224) and Table 6 (CIFAR params), with the ImageNet val errors it
reports for each net (Tables 2-3: 10-crop; Table 4: multi-scale). Bottleneck nets appear in both
designs: `stride_in_1x1=True` is the paper's original, `False` torchvision's v1.5.
Regenerate with `python tools/model_table.py`.

"""


def write_model_table(out) -> str:
    """Count every net, write the Markdown page to `out`; returns the table."""
    table = to_markdown(model_table())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(HEADER + table)
    return table
