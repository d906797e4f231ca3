"""Reproduce one of the paper's studies: train every run (resumably), then write figure and table.

    python tools/reproduce.py cifar10 --depths 20,56 --schedule short     # CPU-sized
    python tools/reproduce.py cifar10 --depths 20,32,44,56,110 --schedule paper --jobs 4   # GPU

Interrupt at any time and run the same command again: finished runs are kept, unfinished ones
resume from their last checkpoint. Extra key=value arguments go to every run's config.
"""

import argparse
import sys
from pathlib import Path

from engine.cli import run_tool
from experiments.depth_study import SCHEDULES, reproduce_cifar10


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("study", choices=["cifar10"], help="cifar10: Figure 6 and Table 6")
    parser.add_argument("--depths", default="20,56", help="comma-separated 6n+2 depths")
    parser.add_argument("--schedule", choices=SCHEDULES, default="short",
                        help="short: the configs' *_short CPU schedule; paper: 64k iterations")
    parser.add_argument("--epochs", type=float, help="compress the short schedule to this many epochs")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at once")
    parser.add_argument("--runs-dir", type=Path, help="checkpoints and logs "
                        "(default outputs/reproduce/cifar10_<schedule>)")
    parser.add_argument("--out", type=Path, default=Path("docs/results/cifar10"),
                        help="report, figure and copied metrics")
    parser.add_argument("--report-only", action="store_true", help="train nothing; report what exists")
    parser.add_argument("--note", default="", help="a paragraph for the report (circumstances)")
    parser.add_argument("--reach", type=float, help="the training error (%%) whose iterations the "
                        "table gives (default: the worst net's final one)")
    parser.add_argument("--images", type=int, help="Figure 7 on this many test images (default all)")
    parser.add_argument("overrides", nargs="*", help="key=value for every run, e.g. data.root=/data/cifar")
    args = parser.parse_intermixed_args(argv)
    runs_dir = args.runs_dir or Path(f"outputs/reproduce/cifar10_{args.schedule}")
    try:
        report, failed = reproduce_cifar10(
            [int(d) for d in args.depths.split(",")], args.schedule, runs_dir, args.out,
            epochs=args.epochs, jobs=args.jobs, overrides=args.overrides,
            report_only=args.report_only, note=args.note, reach=args.reach, images=args.images)
    except KeyboardInterrupt:
        sys.exit("\ninterrupted: every run saved its checkpoint; run the same command to continue")
    print(f"report: {report}")
    if failed:
        sys.exit(f"failed runs: {', '.join(r.name for r in failed)}")


if __name__ == "__main__":
    run_tool(main)
