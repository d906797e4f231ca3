"""Plot training (dashed) and test (bold) error against iterations for one or more runs (PNG).

    python tools/plot_curves.py outputs/cifar10_plain20 outputs/cifar10_plain56 --out fig6.png
"""

import argparse
from pathlib import Path

from engine.cli import run_tool
from experiments.plots import save_curves


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("run_dirs", nargs="+", type=Path, help="folders holding metrics.jsonl")
    parser.add_argument("--out", type=Path, default=Path("curves.png"))
    args = parser.parse_args(argv)
    missing = [str(d) for d in args.run_dirs if not (d / "metrics.jsonl").is_file()]
    if missing:
        parser.error(f"no metrics.jsonl in: {', '.join(missing)}")
    print(f"written {save_curves(args.run_dirs, args.out)}")


if __name__ == "__main__":
    run_tool(main)
