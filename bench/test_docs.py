"""Run every command README.md and docs/*.md show (make test-docs), on generated data.

Shell lines of fenced bash blocks, python snippets and inline `python ...` / `make ...` spans,
found without a list; those the docs mark (`<!-- test-docs: skip REASON -->` before a block,
`<!-- test-docs: skip "PREFIX" REASON -->` in a file) are listed as skipped with the reason.
Writes <out>/report.json and report.md, one log per command under <out>/logs; exit 1 if any failed.

    python bench/test_docs.py                     # all of them (make test-docs)
    python bench/test_docs.py --only README.md:4   # the commands whose file:line contains this
"""

import argparse
import shutil
import sys
import time
from pathlib import Path

from doc_run import run_docs, summary
from engine.cli import run_tool

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("outputs/test_docs"),
                        help="the work folder: the commands' outputs, data and logs (emptied first)")
    parser.add_argument("--only", help="run only the commands whose file:line contains this")
    parser.add_argument("--keep", action="store_true", help="keep the work folder's earlier outputs")
    args = parser.parse_args(argv)
    if args.out.exists() and not args.keep:
        shutil.rmtree(args.out)
    start = time.perf_counter()
    outcomes = run_docs(REPO, args.out.resolve(), args.only)
    text = "\n".join(summary(outcomes, time.perf_counter() - start))
    (args.out / "report.md").write_text(text + "\n")
    print("\n" + text)
    if any(o.status == "failed" for o in outcomes):
        sys.exit(1)


if __name__ == "__main__":
    run_tool(main)
