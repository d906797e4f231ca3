"""Table 8 style comparison of evaluated detectors against the paper's COCO figures.

    python tools/compare.py outputs/coco_vgg16/eval/metrics.json outputs/coco_r101_c4/eval/metrics.json
"""

import argparse
from pathlib import Path

from detection.compare import compare_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("metrics", nargs="+", type=Path, help="metrics.json files from evaluation")
    parser.add_argument("--out", type=Path, help="also write the table as Markdown here")
    args = parser.parse_args()
    table = compare_table(args.metrics)
    print(table, end="")
    if args.out:
        args.out.write_text(table)


if __name__ == "__main__":
    main()
