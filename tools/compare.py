"""Compare evaluated runs: detectors in a Table 8 layout beside the paper's, other tasks' metrics.

    python tools/compare.py outputs/coco_vgg16/eval/metrics.json outputs/coco_r101_c4/eval/metrics.json
    python tools/compare.py outputs/*/eval/metrics.json                  # a table per task
    python tools/compare.py outputs/*/eval/metrics.json --class person   # one class across detectors
"""

import argparse
from pathlib import Path

from engine.cli import run_tool
from experiments.compare import compare
from experiments.detection_table import class_table
from experiments.paper import TABLE8


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("metrics", nargs="+", type=Path, help="metrics.json files from evaluation")
    parser.add_argument("--out", type=Path, help="also write the table as Markdown here")
    parser.add_argument("--paper", nargs="+", choices=sorted(TABLE8),
                        help="the Table 8 row to set beside each metrics file, in order "
                             "(default: its backbone's row, if any)")
    parser.add_argument("--class", dest="class_name", help="show this class's AP, AP50, AR100 per run")
    args = parser.parse_args(argv)
    if args.paper and len(args.paper) != len(args.metrics):
        parser.error(f"--paper names {len(args.paper)} rows for {len(args.metrics)} metrics files")
    table = (class_table(args.metrics, args.class_name) if args.class_name
             else compare(args.metrics, args.paper))
    print(table, end="")
    if args.out:
        args.out.write_text(table)


if __name__ == "__main__":
    run_tool(main)
