"""The paper's CIFAR-10 depth study (Sec. 4.2): plain and residual nets of several depths trained
with one shared schedule, then Figure 6 (plain left, residual right) and Table 6 beside the paper.

Each net is an ordinary pretraining run (`python -m classification.pretrain`) in its own folder
(resumable with `resume=auto`); this module only plans the runs, launches them (several at once
if asked) and reads their metrics.jsonl afterwards, so the figure and table can be rebuilt from
copied metrics.
"""

import json
import shlex
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from omegaconf import OmegaConf

from backbones import count_params, create_backbone
from classification.analysis import from_run, process_state
from classification.pretrain import load_pretrain_config, pretrain
from engine.checkpointer import DONE_FILE
from engine.config import check_choice
from engine.metrics import read_metrics
from engine.schedule import to_iterations

from .analysis import analyze, compare_depths, compare_responses, gradient_sentence
from .jobs import Job, run_jobs
from .machine import machine
from .markdown import markdown_table
from .paper import TABLE6_TEST_ERROR
from .paths import CONFIGS, REPO
from .plots import save_curves

FAMILIES = ("plain", "resnet")  # Figure 6: plain on the left, residual on the right
SCHEDULES = ("short", "paper")


@dataclass
class StudyRun:
    family: str
    depth: int
    config: Path
    run_dir: Path
    overrides: list

    @property
    def name(self) -> str:
        return f"{self.family}{self.depth}"

    def done(self) -> bool:
        return (self.run_dir / DONE_FILE).is_file()

    def command(self) -> list[str]:
        """The library's own entry point, run from the repository (configs name paths in it)."""
        return [sys.executable, "-m", "classification.pretrain", "--config", str(self.config),
                f"output_dir={self.run_dir}", "resume=auto", *self.overrides]


def plan(depths, schedule: str, runs_dir: Path, epochs: float | None = None,
         overrides=()) -> list[StudyRun]:
    """One run per (family, depth); `epochs` compresses the short schedule further (milestones
    at the same fractions of training)."""
    check_choice("--schedule", schedule, SCHEDULES)
    runs = []
    for family in FAMILIES:
        for depth in depths:
            suffix = "_short" if schedule == "short" else ""
            config = CONFIGS / "classification" / f"cifar10_{family}{depth}{suffix}.yaml"
            if not config.is_file():
                raise FileNotFoundError(f"no config for {family}-{depth} ({schedule}): {config}")
            extra = list(overrides)
            if epochs:
                extra = _epoch_overrides(config, epochs) + extra
            runs.append(StudyRun(family, depth, config, Path(runs_dir) / f"{family}{depth}", extra))
    return runs


def _epoch_overrides(config: Path, epochs: float) -> list[str]:
    schedule = load_pretrain_config(config).schedule  # resolved through its _base_ chain
    if schedule.unit != "epoch":
        raise ValueError(f"--epochs needs a schedule in epochs; {config} counts {schedule.unit}")
    scale = epochs / schedule.total
    milestones = ",".join(f"{m * scale:g}" for m in schedule.milestones)
    return ["schedule.unit=epoch", f"schedule.total={epochs:g}", f"schedule.milestones=[{milestones}]"]


def launch(runs: list[StudyRun], jobs: int = 1) -> list[StudyRun]:
    """Train the unfinished runs, `jobs` at a time (longest first), each logging to
    <run_dir>/train.log, through the demo's launcher (`experiments.jobs`); a run that fails is
    reported and the others go on. Returns the runs that failed.

    Ctrl-C or SIGTERM reaches the running runs: each saves its checkpoint, and this raises
    KeyboardInterrupt once they have (the same command continues them)."""
    pending = sorted((r for r in runs if not r.done()), key=lambda r: -r.depth)
    by_title = {r.name: r for r in pending}
    study = [Job(r.name, partial(train_run, str(r.config), str(r.run_dir), tuple(r.overrides)),
                 r.run_dir / "train.log", progress=partial(progress, r.run_dir)) for r in pending]
    failed = run_jobs(study, jobs, on_done=lambda job, seconds: None, keep_going=True)
    return [by_title[job.title] for job in failed]


def train_run(config: str, run_dir: str, overrides: tuple) -> dict:
    """One run of the study: `StudyRun.command()`'s training, in a launcher's worker."""
    cfg = load_pretrain_config(config, [f"output_dir={run_dir}", "resume=auto", *overrides])
    return pretrain(cfg)


def progress(run_dir: Path) -> float:
    """Fraction of its schedule a run has trained, from its saved config and metrics."""
    if (run_dir / DONE_FILE).is_file():
        return 1.0
    if not (run_dir / "metrics.jsonl").is_file() or not (run_dir / "config.yaml").is_file():
        return 0.0
    record = next((r for r in reversed(read_metrics(run_dir)) if r.get("epoch")), None)
    if record is None:
        return 0.0
    schedule = OmegaConf.load(run_dir / "config.yaml").schedule
    total = to_iterations(schedule.total, schedule.unit, round(record["iteration"] / record["epoch"]))
    return min(record["iteration"] / total, 1.0)


@dataclass
class RunResult:
    name: str
    family: str
    depth: int
    params_m: float
    train_error: float  # %, mean over the last epoch's logged windows
    test_error: float  # %, the final evaluation
    epochs: float
    minutes: float
    images_per_s: float


def summarize(run_dir: Path, family: str, depth: int) -> RunResult:
    """A finished (or partial) run's figures from its metrics.jsonl and config.yaml."""
    records = read_metrics(run_dir)
    train = [r for r in records if "train_error" in r]
    tests = [r for r in records if "val_top1_error" in r]
    if not train or not tests:
        raise ValueError(f"{run_dir / 'metrics.jsonl'} has no training or test error records yet")
    last_epoch = train[-1]["epoch"]
    window = [r["train_error"] for r in train if r["epoch"] > last_epoch - 1]
    speeds = [r["images_per_s"] for r in train]
    model = OmegaConf.load(run_dir / "config.yaml").model.name
    return RunResult(
        name=f"{family}-{depth}", family=family, depth=depth,
        params_m=count_params(create_backbone(model)) / 1e6,
        train_error=100 * sum(window) / len(window), test_error=100 * tests[-1]["val_top1_error"],
        epochs=tests[-1]["epoch"], minutes=records[-1]["elapsed_s"] / 60,
        images_per_s=sorted(speeds)[len(speeds) // 2],
    )


def iterations_to(run_dir: Path, error: float) -> int | None:
    """The first logged iteration whose training error (a window's mean, %) is at most `error`;
    None if the run never got there (the paper's "convergence rate", Sec. 4.1 and Fig. 4)."""
    return next((r["iteration"] for r in read_metrics(run_dir)
                 if "train_error" in r and 100 * r["train_error"] <= error), None)


def results_table(results: list[RunResult], paper: bool = True, reach: dict | None = None) -> str:
    """Markdown: measured train and test error, beside Table 6 unless `paper` is False (the paper
    tabulates ResNets only; its plain nets appear in Figure 6); with `reach` ({"error": %,
    "iterations": {net: iterations or None}}), the iterations each net took to reach that error."""
    head = ["net", "params (M)", "epochs", "train error %", "test error %"]
    head += ["paper test error % (Table 6)"] * paper + ["training time (min)", "images/s"]
    if reach:
        head.append(f"iterations to {reach['error']:.1f}% train error")
    rows = []
    for r in results:
        cells = [r.name, f"{r.params_m:.2f}", f"{r.epochs:g}", f"{r.train_error:.2f}",
                 f"{r.test_error:.2f}"]
        if paper:
            table6 = TABLE6_TEST_ERROR.get(r.depth) if r.family == "resnet" else None
            cells.append(str(table6) if table6 else "- (Figure 6 only)")
        cells += [f"{r.minutes:.1f}", f"{r.images_per_s:.0f}"]
        if reach:
            iterations = reach["iterations"].get(r.name)
            cells.append("not reached" if iterations is None else str(iterations))
        rows.append(cells)
    return markdown_table(head, rows)


def degradation_checks(results: list[RunResult]) -> list[str]:
    """The paper's two claims, checked on the measured figures (shallowest vs deepest)."""
    lines = []
    for family, claim in (("plain", "higher"), ("resnet", "no higher")):
        runs = sorted((r for r in results if r.family == family), key=lambda r: r.depth)
        if len(runs) < 2:
            continue
        shallow, deep = runs[0], runs[-1]
        for kind in ("train", "test"):
            a, b = getattr(shallow, f"{kind}_error"), getattr(deep, f"{kind}_error")
            holds = b > a if claim == "higher" else b <= a
            lines.append(f"- {deep.name} {kind} error {b:.2f}% vs {shallow.name} {a:.2f}%: "
                         f"paper expects {claim} -> {'as expected' if holds else 'NOT as expected'}")
    return lines


def figure6(runs: list[StudyRun], out: Path) -> Path:
    """Plain nets left, residual nets right; training error dashed, test error bold."""
    panels = [(f"{'plain' if f == 'plain' else 'ResNet'} (CIFAR-10)",
               [r.run_dir for r in runs if r.family == f and (r.run_dir / "metrics.jsonl").is_file()])
              for f in FAMILIES]
    return save_curves([], out, panels=panels)


def convergence(copies: list[StudyRun], results: list[RunResult], error: float | None) -> dict | None:
    """Iterations to `error` % training error per net; by default the worst net's final training
    error, which every net reaches, so the column compares how fast they got there."""
    if not results:
        return None
    error = error if error is not None else max(r.train_error for r in results)
    return {"error": error,
            "iterations": {f"{c.family}-{c.depth}": iterations_to(c.run_dir, error) for c in copies}}


def figure7(runs: list[StudyRun], results: list[RunResult], out: Path, images: int | None) -> list[str]:
    """Fig. 7 and the gradient figure of the finished runs (their final weights; nets measured
    before keep their entries in <out>/responses.json), and what they say."""
    finished = [r for r in runs if r.done() and (r.run_dir / "final.safetensors").is_file()]
    if finished:
        subjects = [from_run(r.run_dir / "config.yaml", r.run_dir / "final.safetensors",
                             f"{r.family}-{r.depth}") for r in finished]
        state = process_state()
        analyze("responses", subjects, out, state=state, images=images)
        analyze("gradients", subjects, out, state=state)
    if not (out / "responses.json").is_file():
        return []
    responses = {e["net"]: e for e in json.loads((out / "responses.json").read_text())}
    gradients = {e["net"]: e for e in json.loads((out / "gradients.json").read_text())}
    depths = sorted({r.depth for r in runs})  # the study's own nets (the folder may hold others)
    lines = [compare_responses(responses[f"resnet-{d}"], responses[f"plain-{d}"])
             for d in depths if {f"resnet-{d}", f"plain-{d}"} <= set(responses)]
    resnets = [f"resnet-{d}" for d in depths if f"resnet-{d}" in responses]
    lines += [compare_depths(responses[a], responses[b]) for a, b in zip(resnets, resnets[1:])]
    plains = [f"plain-{d}" for d in depths if f"plain-{d}" in gradients]
    if plains:  # the deepest plain net: the one that degrades
        errors = {r.name: r.train_error for r in results}
        lines.append(gradient_sentence(gradients[plains[-1]], errors.get(plains[-1])))
    return [f"- {line}" for line in lines]


def write_report(runs: list[StudyRun], out: Path, command: str, note: str = "", reach: float | None = None,
                 images: int | None = None) -> Path:
    """Copy each run's metrics and config under `out`, draw Figure 6 from the copies and Figure 7
    from the finished runs' weights, and write README.md: the table beside Table 6 with the
    iterations to a training error, the paper's claims checked, the commands and machine."""
    out = Path(out)
    copies, results, missing = [], [], []
    for run in runs:
        if not (run.run_dir / "metrics.jsonl").is_file():
            missing.append(run.name)
            continue
        copy = out / run.name
        copy.mkdir(parents=True, exist_ok=True)
        for name in ("metrics.jsonl", "config.yaml"):
            (copy / name).write_bytes((run.run_dir / name).read_bytes())
        copies.append(StudyRun(run.family, run.depth, run.config, copy, run.overrides))
        try:
            results.append(summarize(copy, run.family, run.depth))
        except ValueError:  # started, not yet evaluated: drawn, not tabulated
            missing.append(f"{run.name} (not evaluated yet)")
            continue
        if not run.done():
            missing.append(f"{run.name} (unfinished: {100 * progress(run.run_dir):.0f}%)")
    figure6(copies, out / "figure6.png")
    analysis = figure7(runs, results, out, images)
    reached = convergence(copies, results, reach)
    text = [
        "# CIFAR-10 depth study: plain vs residual (the paper's Figure 6 and Table 6)", "",
        "Reproduce (resumes whatever exists):", "", f"    {command}", "",
        f"Machine: {machine()}.", "",
        "![Figure 6](figure6.png)", "",
        "Training error dashed, test error bold; plain nets left, ResNets right.", "",
        results_table(results, reach=reached), "",
        "Train error: mean over the last epoch's logged windows (augmented training batches, as "
        "the paper's curves); test error: all test images after the last iteration. Training "
        "time and images/s: each run's own clock, while it shared the machine with the other "
        "runs of `--jobs`. Iterations to a training error: the first logged window at or under it "
        "(the paper's \"convergence rate\", Sec. 4.1).", "", *([note, ""] if note else []),
        "The paper's claims, checked on these numbers:", "", *degradation_checks(results), "",
        *(["## Why: layer responses (Figure 7) and gradients (Sec. 4.1)", "",
           "![Figure 7](responses.png)", "",
           "The std of each 3x3 layer's output after BN, before ReLU or the addition, on the test "
           "images, at each net's final weights (top: in the network's order; bottom: sorted); "
           "plain nets dashed.", "",
           "![gradients](gradients.png)", "",
           "The loss gradient on 4 training batches of 128 at the final weights, with respect to each "
           "layer's weights (left) and each block's output, per element (right).", "",
           *analysis, ""] if analysis else []),
        "Configs (each run's full config is saved beside its metrics):", "",
        *[f"- {r.name}: `{r.config.relative_to(REPO)}` {' '.join(r.overrides)}" for r in runs],
    ]
    if missing:
        text += ["", f"Missing or unfinished: {', '.join(missing)}."]
    path = out / "README.md"
    path.write_text("\n".join(text) + "\n")
    return path


def reproduce_cifar10(depths: list[int], schedule: str, runs_dir: Path, out: Path, *,
                      epochs: float | None = None, jobs: int = 1, overrides=(), report_only=False,
                      note: str = "", reach: float | None = None,
                      images: int | None = None) -> tuple[Path, list[StudyRun]]:
    """Train every run of the study (resumably; none with `report_only`), then write the report.
    Returns the report and the runs that failed. A KeyboardInterrupt means every run saved."""
    runs = plan(depths, schedule, runs_dir, epochs, overrides)
    failed = [] if report_only else launch(runs, jobs=jobs)
    command = "python tools/reproduce.py cifar10 " + shlex.join(
        [f"--depths={','.join(map(str, depths))}", f"--schedule={schedule}", f"--jobs={jobs}"]
        + ([f"--epochs={epochs:g}"] if epochs else []) + list(overrides))
    return write_report(runs, out, command, note, reach, images), failed
