"""Print every ImageNet and CIFAR backbone's params and GMACs beside the paper's, and write Markdown."""

import argparse
from pathlib import Path

from backbones.table import model_table, to_markdown

HEADER = """# Model table

Parameters and multiply-adds (one image; convs and fc, as the paper counts them) of every
registered ImageNet and CIFAR backbone, counted by `backbones.count_params` / `count_macs`, beside
the paper's Table 1 (GFLOPs, 224x224) and Table 6 (CIFAR params). Bottleneck nets appear in both
designs: `stride_in_1x1=True` is the paper's original, `False` torchvision's v1.5.
Regenerate with `python tools/model_table.py`.

"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/model_table.md"))
    args = parser.parse_args()
    table = to_markdown(model_table())
    print(table, end="")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(HEADER + table)
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
