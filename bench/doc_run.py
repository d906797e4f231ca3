"""`make test-docs`: every command the docs show, run as written in a work folder of its own.

The work folder links the checkout's tools/, bench/, configs/, tests/, Makefile and .venv, so a
command runs from where the docs say (the repository root) while its outputs/, data/ and files
land in the work folder. Each command gets, in this order: the substitutions below (paths that
only exist on a user's machine), the schedule caps (a training command trains two iterations to a
finished run: final files, evaluation), and the inputs it reads, generated where missing
(`doc_fixtures`). It fails on a non-zero exit or a traceback in its output. Commands run in the
docs' order, so a later command reads an earlier one's run, as a user's would.
"""

import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from doc_commands import Command, discover_all, not_literal
from doc_fixtures import ensure_config_inputs, ensure_named

LINKED = ("tools", "bench", "configs", "tests", "experiments", "Makefile", "pyproject.toml")
# a user's absolute data paths, read in the work folder; values the generated data cannot hold
SUBSTITUTIONS = ((re.compile(r"(?<=[=\s])/data(?:sets)?/"), "data/"),
                 (re.compile(r"\bdata\.holdout=5000\b"), "data.holdout=10"))
TRAINING = re.compile(r"tools/(?:pretrain|train_detector|train_segmentation|train|reproduce)\.py"
                      r"|-m (?:classification\.pretrain|detection\.train|segmentation\.train)\b")
# two iterations to a finished run; the lr low, as a warm-up keeps a user's first steps (two full-lr
# steps of a detector on a random backbone push its background logit past exp's range: no boxes)
CAPS = ("schedule.unit=iter", "schedule.total=2", "schedule.milestones=[]", "schedule.warmup=0",
        "optim.lr=0.0001", "train.batch_size=2", "train.grad_accum=1", "train.precision=fp32",
        "train.num_workers=0", "train.log_every=1")
# names a python snippet uses as given (its prose says what they are)
SNIPPET_NAMES = {
    "images": "images = torch.randn(2, 3, 224, 224)",
    "torchvision_deeplabv3_state_dict": "torchvision_deeplabv3_state_dict = torchvision.models.segmentation."
                                        "deeplabv3_resnet101(weights=None, weights_backbone=None, "
                                        "aux_loss=True).state_dict()",
}
DETECTION_CAP = "train.batch_size=1"  # a detector's step at its real size: one image (the paper's)
MAKE_KEEPS = "-o .venv/.installed -o .venv/.installed-dev"  # make's "old file": not remade
TIMEOUT_S = 600
SAFE = re.compile(r"[^\w]+")


@dataclass
class Outcome:
    where: str
    command: str
    status: str  # ok | failed | skipped | same
    reason: str = ""  # skipped: the docs' reason; failed: the exit or traceback; same: the first's place
    seconds: float = 0.0
    ran: str = ""  # the command as run (substituted, capped)
    log: str = ""


def make_work(repo: Path, work: Path) -> None:
    """The work folder: the checkout's folders linked; a .venv of links to this interpreter's venv
    with its install stamps (which `make` commands are told not to remake: MAKE_KEEPS)."""
    work.mkdir(parents=True, exist_ok=True)
    for name in LINKED:
        link = work / name
        if not link.exists() and (repo / name).exists():
            link.symlink_to((repo / name).resolve())
    venv, source = work / ".venv", Path(sys.prefix)
    venv.mkdir(exist_ok=True)
    for entry in source.iterdir():
        if not entry.name.startswith(".installed") and not (venv / entry.name).exists():
            (venv / entry.name).symlink_to(entry)
    for stamp in (".installed", ".installed-dev"):
        (venv / stamp).touch()


def environment(work: Path) -> dict:
    """The venv first on PATH (the docs' `python` is the venv's), caches in the work folder with
    no network (published weights come from the generated cache), a non-interactive matplotlib."""
    venv = Path(sys.executable).parent
    return {**os.environ, "PATH": f"{venv}{os.pathsep}{os.environ['PATH']}",
            "TORCH_HOME": str(work / ".cache" / "torch"), "HF_HOME": str(work / ".cache" / "hf"),
            "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}


def as_run(command: Command, earlier_imports: list[str]) -> str:
    """The shell line to run: substituted and capped; a snippet: written to a file with the imports
    of the same file's earlier snippets and the names it uses as given."""
    if command.kind == "python":
        names = [line for name, line in SNIPPET_NAMES.items() if re.search(rf"\b{name}\b", command.text)]
        return "\n".join(["import torch, torchvision", *earlier_imports, *names, command.text])
    text = command.text
    for pattern, replacement in SUBSTITUTIONS:
        text = pattern.sub(replacement, text)
    if text.startswith("make "):  # the work folder's venv is this one: never reinstalled from there
        text = f"make {MAKE_KEEPS} {text[5:]}"
    return f"{text} {' '.join(shlex.quote(c) for c in CAPS)}" if TRAINING.search(text) else text


def prepare_inputs(text: str, work: Path) -> tuple[list[str], str | None]:
    """The files `text` names and, for `--config <file>`, the data and weights of that config with
    the command's overrides, written where missing (a config that does not load is the command's
    own error to report). Returns what was written and the config's task."""
    written = ensure_named(text, work)
    tokens = shlex.split(text) if "\n" not in text else []
    if "--config" in tokens and tokens.index("--config") + 1 < len(tokens):
        config = work / tokens[tokens.index("--config") + 1]
        overrides = [t for t in tokens if "=" in t and not t.startswith("-")]
        if config.is_file():
            from engine.tasks import load_task_config

            try:
                task, cfg = load_task_config(config, overrides=overrides, training=True)
            except Exception:  # noqa: BLE001  (the command says what is wrong with it)
                return written, None
            return written + ensure_config_inputs(cfg, work), task
    return written, None


def run_one(command: Command, ran: str, work: Path, logs: Path, index: int) -> Outcome:
    log = logs / f"{index:03d}_{SAFE.sub('_', command.where)}.log"
    if command.kind == "python":
        script = logs / f"{index:03d}_snippet.py"
        script.write_text(ran)
        argv = [sys.executable, str(script)]
    else:
        argv = ["bash", "-o", "pipefail", "-c", ran]
    start = time.perf_counter()
    try:
        done = subprocess.run(argv, cwd=work, env=environment(work), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT_S)
        output, code = done.stdout, done.returncode
    except subprocess.TimeoutExpired as expired:
        output, code = (expired.stdout or b"").decode() if isinstance(expired.stdout, bytes) else \
            (expired.stdout or ""), f"timeout after {TIMEOUT_S} s"
    seconds = round(time.perf_counter() - start, 1)
    log.write_text(f"$ {ran}\n{output}")
    reason = f"exit {code}" if code != 0 else ""
    if "Traceback (most recent call last)" in output:
        reason = (reason + "; " if reason else "") + "a traceback in its output"
    if reason:
        last = [line for line in output.strip().splitlines() if line.strip()][-1:] or [""]
        reason += f": {last[0][:300]}"
    return Outcome(command.where, command.text, "failed" if reason else "ok", reason, seconds, ran, str(log))


def run_docs(repo: Path, work: Path, only: str | None = None, log=print) -> list[Outcome]:
    """Every command of the docs in order: skipped with the docs' reason, a repeat noted once,
    the rest run; out/report.json holds the outcomes."""
    make_work(repo, work)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    os.environ.update({k: environment(work)[k] for k in ("TORCH_HOME", "HF_HOME", "HF_HUB_OFFLINE")})
    outcomes, first, imports = [], {}, {}
    for index, command in enumerate(discover_all(repo)):
        key = (command.kind, command.text)
        earlier = imports.setdefault(command.file, [])
        if command.kind == "python":
            earlier_now = list(earlier)
            earlier += [ln for ln in command.text.splitlines() if ln.startswith(("from ", "import "))]
        if command.skip:
            outcome = Outcome(command.where, command.text, "skipped", command.skip)
        elif key in first:
            outcome = Outcome(command.where, command.text, "same", f"as {first[key]}")
        elif only and only not in command.where:
            continue
        elif not_literal(command):
            outcome = Outcome(command.where, command.text, "failed", not_literal(command))
        else:
            first[key] = command.where
            ran = as_run(command, earlier_now if command.kind == "python" else [])
            written, task = prepare_inputs(ran, work)
            if task == "detection" and TRAINING.search(ran):
                ran += f" {DETECTION_CAP}"
            if written:
                log(f"  generated: {', '.join(written)}")
            outcome = run_one(command, ran, work, logs, index)
        log(f"{outcome.where} {outcome.status} {outcome.seconds:.1f}s: {outcome.command.splitlines()[0][:90]}"
            + (f"  ({outcome.reason})" if outcome.reason else ""))
        outcomes.append(outcome)
    (work / "report.json").write_text(json.dumps([asdict(o) for o in outcomes], indent=2))
    return outcomes


def summary(outcomes: list[Outcome], seconds: float) -> list[str]:
    """The report as markdown: counts, the failures, the skips with their reasons, per command time."""
    counts = {s: sum(o.status == s for o in outcomes) for s in ("ok", "failed", "skipped", "same")}
    lines = [f"{counts['ok']} commands ran, {counts['failed']} failed, {counts['skipped']} skipped "
             f"(the docs' reasons), {counts['same']} repeats of an earlier one; {seconds / 60:.1f} min.", "",
             "| where | command | result | s |", "|---|---|---|---:|"]
    for o in outcomes:
        if o.status != "same":
            cell = o.command.splitlines()[0].replace("|", "\\|")[:100]
            result = o.status + (f": {o.reason}" if o.reason else "")
            lines.append(f"| {o.where} | `{cell}` | {result.replace('|', '/')} | {o.seconds:.1f} |")
    return lines
