"""Download into wheelhouse/ the wheels an offline GPU node needs to run the toolkit, and check them.

    make wheelhouse        # for the lent H200 node (configs/gpu_nodes/nvidia-h200.txt), CPython 3.12
    python bench/wheelhouse.py --installed node-freeze.txt [--python-version 3.12] [--glibc 2.28]
    python bench/wheelhouse.py --check-only ...   # resolve with no index: is wheelhouse/ complete?

--installed is the node's `pip list --format=freeze`: what it has is not downloaded, and what it
has pins the versions of everything downloaded beside it. Wheels only, one version each, their
own requirements included. Then carry wheelhouse/ with the checkout: `make gpu-check` installs
from it into a temporary folder when imports fail.
"""

import argparse
import sys
from pathlib import Path

from engine.cli import run_tool
from wheels import GLIBC, build, check, platform_tags, read_freeze, requirements

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--installed", type=Path, default=ROOT / "configs/gpu_nodes/nvidia-h200.txt",
                        help="the node's pip list --format=freeze")
    parser.add_argument("--out", type=Path, default=ROOT / "wheelhouse")
    parser.add_argument("--python-version", default="3.12")
    parser.add_argument("--glibc", default=GLIBC, help="manylinux wheels up to this glibc")
    parser.add_argument("--pyproject", type=Path, default=ROOT / "pyproject.toml")
    parser.add_argument("--check-only", action="store_true", help="download nothing; check --out")
    parser.add_argument("--pip-option", action="append", default=[],
                        help="passed to pip download (e.g. --pip-option=--no-index)")
    args = parser.parse_args(argv)
    reqs, installed = requirements(args.pyproject), read_freeze(args.installed)
    platforms = platform_tags(args.glibc)
    if not args.check_only:
        wheels = build(args.out, reqs, installed, python_version=args.python_version,
                       platforms=platforms, index_options=tuple(args.pip_option))
        size = sum(w.stat().st_size for w in wheels) / 2**20
        print(f"{len(wheels)} wheels, {size:.1f} MiB in {args.out}:")
        print("\n".join(f"  {w.name}" for w in wheels))
    problem = check(args.out, reqs, installed, python_version=args.python_version, platforms=platforms)
    if problem:
        sys.exit(f"error: {problem}")
    print(f"complete: the node's packages and {args.out} meet every requirement (checked with no index)")


if __name__ == "__main__":
    run_tool(main)
