"""The GPU check (`make gpu-check`): stages a-f, in order, each in its own interpreter under its own
time budget. Every stage runs even when one before it failed; a stage over its budget is stopped
(SIGTERM: a training stage saves, and `--only` that stage continues it) and reported as such.
Writes <out>/report.json and <out>/report.md (tables, figures, the stages' pictures).

Standard library only here: the stages import the toolkit, after `wheelhouse.ensure` has made
its requirements importable.
"""

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from experiments.markdown import markdown_table

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent


@dataclass(frozen=True)
class Stage:
    title: str
    budget_s: float  # on the GPU: the whole check fits 8 minutes
    cpu_budget_s: float  # --cpu, toy sizes


STAGES = {
    "a": Stage("environment", 20, 20),
    "b": Stage("the demo pipeline (tools/demo.py)", 120, 60),
    "c": Stage("predict, export (onnxruntime), segmentation train + evaluate", 45, 60),
    "d": Stage("throughput: ResNet-50 and R50-FPN against torchvision", 60, 40),
    "e": Stage("ImageNet input: CPU workers, JPEG decoding on the device", 35, 40),
    "f": Stage("Table 6: CIFAR ResNet-20 and plain-20, the paper's schedule", 200, 60),
}


def select(only: str | None) -> list[str]:
    """`--only a,f` -> ["a", "f"] (in the stages' order); None -> all."""
    if not only:
        return list(STAGES)
    keys = [k.strip() for k in only.split(",") if k.strip()]
    unknown = [k for k in keys if k not in STAGES]
    if unknown or not keys:
        raise ValueError(f"--only {only!r}: unknown stage {', '.join(unknown) or '(none given)'}; "
                         f"stages are {', '.join(STAGES)}")
    return [k for k in STAGES if k in keys]


def run_stage(key: str, out: Path, cpu: bool, budget: float) -> dict:
    """Run one stage in an interpreter of its own (`experiments.jobs.run_command`: the launcher of
    every job of the project); its <key>.json plus status, seconds and, if it failed, the error."""
    from experiments.jobs import run_command  # after the wheelhouse: it imports the toolkit's needs

    (out / f"{key}.json").unlink(missing_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    if cpu:
        env["CUDA_VISIBLE_DEVICES"] = ""
    command = [sys.executable, str(BENCH / "gpu_stages.py"), key, "--out", str(out), *(["--cpu"] * cpu)]
    start = time.perf_counter()
    status = run_command(command, out / f"{key}.log", budget_s=budget, env=env, cwd=REPO)
    found = out / f"{key}.json"
    result = json.loads(found.read_text()) if found.is_file() else {}
    result.update(status=status, seconds=round(time.perf_counter() - start, 1), budget_s=budget)
    if status == "failed":
        result["error"] = last_error(out / f"{key}.log")
    return result


def last_error(log: Path, lines: int = 8) -> str:
    """The `error:` line a tool prints, or the end of the traceback."""
    text = log.read_text(errors="replace").splitlines()
    errors = [line for line in text if line.startswith("error:")]
    return errors[-1] if errors else "\n".join(text[-lines:])


def gpu_check(out: Path, *, cpu: bool, only: str | None = None, command: str = "") -> tuple[Path, list[str]]:
    """Run the selected stages; returns the report and the stages that did not pass."""
    keys = select(only)
    out.mkdir(parents=True, exist_ok=True)
    previous = out / "report.json"
    report = json.loads(previous.read_text()) if previous.is_file() and only else {"stages": {}}
    report.update(command=command, mode="cpu (toy sizes)" if cpu else "gpu",
                  date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    for key in keys:
        stage = STAGES[key]
        budget = stage.cpu_budget_s if cpu else stage.budget_s
        print(f"=== stage {key}: {stage.title} (budget {budget:.0f} s)", flush=True)
        result = run_stage(key, out, cpu, budget)
        report["stages"][key] = {"title": stage.title, **result}
        print(f"    {result['status']} in {result['seconds']:.0f} s"
              + (f": {result['error']}" if "error" in result else ""), flush=True)
        previous.write_text(json.dumps(report, indent=2))  # after each stage: nothing lost
    (out / "report.md").write_text(markdown(report))
    failed = [k for k in keys if report["stages"][k]["status"] != "passed"]
    return out / "report.md", failed


def bundle(out: Path, dest: Path, limit: int = 8) -> list[Path]:
    """Copy the report, its JSON, the node's package list and the stages' pictures (their
    relative paths kept) to `dest`: what a lent machine's $OUT brings back (8 files there)."""
    report = json.loads((out / "report.json").read_text())
    names = ["report.md", "report.json", "pip-freeze.txt"]
    names += [f for s in report["stages"].values() for f in s.get("files", []) if f.endswith((".png", ".md"))]
    copied = []
    for name in dict.fromkeys(names):
        if (out / name).is_file() and len(copied) < limit:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(out / name, dest / name)
            copied.append(dest / name)
    return copied


def markdown(report: dict) -> str:
    """report.md: the stages' summary table, then each stage's tables, figures, notes, pictures."""
    stages = report["stages"]
    rows = [[f"{k}. {s['title']}", s["status"], s.get("device", "-"), f"{s['seconds']:.0f}",
             f"{s['budget_s']:.0f}"] for k, s in sorted(stages.items())]
    total = sum(s["seconds"] for s in stages.values())
    lines = [f"# GPU check ({report['mode']})", "", f"`{report['command']}`, {report['date']}; "
             f"{total:.0f} s for the stages below.", "",
             markdown_table(["stage", "status", "device", "seconds", "budget s"], rows), ""]
    for key, stage in sorted(stages.items()):
        lines += [f"## {key}. {stage['title']}: {stage['status']}", ""]
        if "error" in stage:
            lines += ["```", stage["error"], "```", ""]
        for table in stage.get("tables", []):
            lines += [f"**{table['title']}**", "", markdown_table(table["header"], table["rows"]), ""]
        lines += [block + "\n" for block in stage.get("markdown", [])]
        lines += [f"- {k}: {_figure(v)}" for k, v in stage.get("figures", {}).items()]
        lines += [f"- {note}" for note in stage.get("notes", [])]
        for path in stage.get("files", []):
            lines.append(f"![{path}]({path})" if path.endswith(".png") else f"- [{path}]({path})")
        lines.append("")
    return "\n".join(lines)


def _figure(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
