"""Prove the toolkit on a GPU node in one command (stages a-f, under 8 minutes), and measure it.

    make gpu-check                           # PYTHONPATH=. python3 bench/gpu_check.py: the node's own python
    python bench/gpu_check.py --only b,f     # some stages (a failed one reruns alone; training resumes)
    python bench/gpu_check.py --cpu          # every stage at toy size on the CPU (part of make test)

Stages: a environment, b the demo, c predict/export/segmentation, d throughput against
torchvision, e the ImageNet input path, f Table 6's ResNet-20 / plain-20 rows. Writes
outputs/gpu_check/report.md and report.json; exits 1 when a stage did not pass. Requirements the
node lacks are installed from wheelhouse/ (`make wheelhouse`) into a temporary folder.
"""

import argparse
import sys
from pathlib import Path

from gpu_report import bundle, gpu_check, select
from wheels import WheelhouseError, ensure, requirements

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "outputs/gpu_check")
    parser.add_argument("--only", help="comma-separated stages, e.g. a,f")
    parser.add_argument("--cpu", action="store_true", help="toy sizes on the CPU (a dry run)")
    parser.add_argument("--wheelhouse", type=Path, default=ROOT / "wheelhouse")
    parser.add_argument("--bundle", type=Path,
                        help="also copy the report and pictures here (a lent machine's $OUT)")
    args = parser.parse_args(argv)
    try:
        select(args.only)
    except ValueError as error:
        parser.error(str(error))
    try:  # standard library only until here: a node without our requirements is told which
        ensure(requirements(ROOT / "pyproject.toml"), args.wheelhouse)
    except WheelhouseError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    from engine.cli import run_tool  # after ensure: nothing of the toolkit is imported before

    run_tool(lambda: _check(args, argv))


def _check(args, argv) -> None:
    import torch

    if not args.cpu and not torch.cuda.is_available():
        print("error: no CUDA GPU here (torch.cuda.is_available() is False); "
              "`python bench/gpu_check.py --cpu` is the dry run on the CPU", file=sys.stderr)
        sys.exit(2)
    command = " ".join(["python bench/gpu_check.py", *(sys.argv[1:] if argv is None else argv)])
    report, failed = gpu_check(args.out, cpu=args.cpu, only=args.only, command=command)
    if args.bundle:
        bundle(args.out, args.bundle)
    print(f"report: {report}" + (f"; stages that did not pass: {', '.join(failed)}" if failed else ""))
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
