"""Train every shipped config 2 iterations and evaluate it, at its real size (make test-configs).

On data generated in each config's own format, in fp32 and (where the CPU has bf16 units) bf16;
prints each config's overrides and result, writes <out>/report.json and report.md; exit 1 if any
failed.

    python bench/test_configs.py                       # all of configs/ (make test-configs)
    python bench/test_configs.py --only paper/         # the configs whose path contains paper/
"""

import argparse
import sys
from pathlib import Path

from config_sweep import summary, sweep
from engine.cli import run_tool
from experiments.paths import CONFIGS


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", type=Path, default=CONFIGS)
    parser.add_argument("--out", type=Path, default=Path("outputs/test_configs"))
    parser.add_argument("--only", help="run only the configs whose path contains this")
    parser.add_argument("--precision", action="append", choices=["fp32", "bf16"],
                        help="instead of fp32 and, on a CPU with bf16 units, bf16")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (default 2)")
    args = parser.parse_args(argv)
    report = sweep(args.configs, args.out, args.only, args.precision, args.jobs)
    text = "\n".join(summary(report))
    (args.out / "report.md").write_text(text + "\n")
    print(text)
    failed = [r for r in report["results"] if not r["ok"]]
    print(f"\nwall time {report['wall_seconds'] / 60:.1f} min, {report['jobs']} runs at a time")
    print(f"{len(report['results']) - len(failed)} passed, {len(failed)} failed")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    run_tool(main)
