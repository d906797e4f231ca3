"""Run the paper's two comparisons in miniature on generated data (the `make demo` job).

    python tools/demo.py             # configs/demo/demo.yaml -> outputs/demo/report.md
    python tools/demo.py --seeds 3   # every figure over 3 training seeds: mean and spread
    python tools/demo.py --smoke     # the same path, tiny (under 20 s)

Steps: synthetic shapes; pretrain plain-20, plain-56 and ResNet-56 (degradation and its cure); the
same C4 Faster R-CNN on plain-56 and on ResNet-56; pycocotools evaluation; report.md with the
tables, the paper's results checked against the numbers, curves and detections.
Run it again after an interruption (Ctrl-C): finished steps are kept, training resumes.
"""

import argparse
import sys
from pathlib import Path

from engine.cli import run_tool
from experiments.demo import DEMO_CONFIG, SMOKE_CONFIG, run_demo


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--config", type=Path, help="default: configs/demo/demo.yaml (smoke.yaml)")
    parser.add_argument("--smoke", action="store_true", help="tiny data and schedules (tests)")
    parser.add_argument("--out", type=Path, help="default: outputs/demo (outputs/demo_smoke)")
    parser.add_argument("--seeds", type=int, default=1, help="training seeds 0..N-1 (each in <out>/seed<k>)")
    parser.add_argument("--jobs", type=int, default=2,
                        help="training runs at a time, the CPU cores shared out (default 2)")
    args = parser.parse_args(argv)
    config = args.config or (SMOKE_CONFIG if args.smoke else DEMO_CONFIG)
    out = args.out or Path("outputs") / ("demo_smoke" if args.smoke else "demo")
    command = " ".join(["python tools/demo.py", *(sys.argv[1:] if argv is None else argv)])
    try:
        summary, report, timings = run_demo(config, out, command, seeds=args.seeds, jobs=args.jobs)
    except KeyboardInterrupt:
        sys.exit(f"\ninterrupted: run the same command again to continue ({out})")
    print("\n" + "\n".join(summary) + f"\n\nreport: {report}  (this run: {timings.this_run / 60:.1f} min)")


if __name__ == "__main__":
    run_tool(main)
