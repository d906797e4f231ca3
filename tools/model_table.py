"""Count every ImageNet and CIFAR backbone's params and GMACs beside the paper's; write Markdown."""

import argparse
from pathlib import Path

from engine.cli import run_tool
from experiments.model_table import write_model_table


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/model_table.md"))
    args = parser.parse_args(argv)
    print(write_model_table(args.out), end="")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    run_tool(main)
