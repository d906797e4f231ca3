"""Check CUDA, channels-last and bf16 training on a GPU and record their throughput.

    make gpu-check                  # PYTHONPATH=. python3 tools/gpu_check.py --out outputs/gpu_check.json
    python tools/gpu_check.py --cpu # the same code path on the CPU, tiny, to check the script
"""

import argparse
import sys
from pathlib import Path

from engine.cli import run_tool
from experiments.gpu_check import gpu_check


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("outputs/gpu_check.json"))
    parser.add_argument("--cpu", action="store_true", help="dry run on the CPU")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    failure = gpu_check(args.out, cpu=args.cpu, repeats=args.repeats)
    if failure:
        sys.exit(failure)


if __name__ == "__main__":
    run_tool(main)
