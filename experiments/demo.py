"""The paper's two results in miniature, on generated data, in minutes on a CPU:

1. generate the synthetic shapes (COCO detection splits + an ImageFolder classification set);
2. pretrain a shallow and a deep plain net and the deep net's residual twin, one recipe
   (degradation and its cure, Fig. 6);
3. train the same C4 Faster R-CNN on the deep plain net and on the residual net (Table 8), and a
   C4 Mask R-CNN on the residual net;
4. evaluate them with pycocotools (box AP; mask AP too for Mask R-CNN);
5. write report.md: tables, the paper's results checked in sentences computed from the numbers,
   curves, detections and masks drawn.

Each step calls the library function the matching tool calls (`pretrain`, `train_detector`,
`evaluate_checkpoint`, ...); the training runs go two at a time (`experiments.jobs`: a third
more work per second on 2 cores), each logging to its folder's train.log. With several seeds each
seed's run goes to <out>/seed<k>, all seeds' runs share the workers, and the report gives mean and
spread. Run it again after an interruption: finished steps are kept (a run's done.json),
training resumes from its last checkpoint.
"""

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

from omegaconf import OmegaConf

from backbones import count_params, create_backbone
from classification.analysis import from_run, process_state
from classification.pretrain import load_pretrain_config, pretrain
from detection import load_detection_config, train_detector
from detection.evaluate import evaluate_checkpoint
from detection.evaluation import recall_at_score
from detection.visualize import visualize_checkpoint
from engine.checkpointer import DONE_FILE
from engine.config import load_config
from engine.metrics import read_metrics

from . import demo_report
from .analysis import analyze
from .depth_study import progress
from .jobs import Job, run_jobs
from .machine import machine
from .paths import CONFIGS
from .plots import save_curves, side_by_side
from .synthetic import make_synthetic

DEMO_CONFIG, SMOKE_CONFIG = CONFIGS / "demo" / "demo.yaml", CONFIGS / "demo" / "smoke.yaml"
ROLES = ("shallow plain", "deep plain", "deep residual")
ANALYSIS_IMAGES, ANALYSIS_BATCHES = 500, 2  # Fig. 7 on every validation image; Sec. 4.1 on 256


@dataclass
class DemoData:
    seed: int = 0
    num_train: int = 200
    num_val: int = 50
    size: int = 128
    num_cls_train: int = 2000
    num_cls_val: int = 500
    cls_size: int = 32


@dataclass
class DemoNet:
    label: str = ""
    net: str = ""  # a registry name
    role: str = ""  # shallow plain | deep plain | deep residual


@dataclass
class DemoDetector:
    label: str = ""
    net: str = ""  # the label of the DemoNet whose pretraining it starts from
    paper: str = ""  # the Table 8 row (paper.TABLE8 key) it stands for
    kind: str = "faster_rcnn"  # or mask_rcnn


@dataclass
class DemoConfig:
    data: DemoData = field(default_factory=DemoData)
    pretrain: str = "pretrain.yaml"  # relative to the demo config
    nets: list[DemoNet] = field(default_factory=list)
    detect: str = "detect.yaml"
    detectors: list[DemoDetector] = field(default_factory=list)
    mask_rcnn: bool = True  # also a C4 Mask R-CNN on the deep residual net
    pretrain_overrides: list[str] = field(default_factory=list)
    detect_overrides: list[str] = field(default_factory=list)
    visualize: int = 8
    score: float = 0.5  # lowest score drawn
    top: int = 5  # most boxes drawn per image, best first


def load_demo_config(path: Path):
    cfg = load_config(DemoConfig, path)
    roles = sorted(n.role for n in cfg.nets)
    labels = {n.label for n in cfg.nets}
    if roles != sorted(ROLES) or len(cfg.detectors) != 2 or any(d.net not in labels for d in cfg.detectors):
        raise ValueError(f"{path}: the demo needs one net per role {ROLES} and two detectors, each "
                         f"naming one of the nets {sorted(labels)}")
    return cfg


class Timings:
    """Seconds per step (a resumed step adds up; training runs overlap, two at a time) and the
    invocations' wall time, kept across invocations in timings.json."""

    def __init__(self, path: Path):
        self.path, self.started = path, time.perf_counter()
        saved = json.loads(path.read_text()) if path.is_file() else {}
        self.steps, self.wall_before = saved.get("steps", {}), saved.get("wall_s", 0.0)

    @property
    def this_run(self) -> float:
        return time.perf_counter() - self.started

    @property
    def wall(self) -> float:
        """Wall seconds of every invocation so far (up to its last save)."""
        return self.wall_before + self.this_run

    def add(self, title: str, seconds: float) -> None:
        self.steps[title] = self.steps.get(title, 0.0) + seconds
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({"wall_s": self.wall, "steps": self.steps}, indent=1))

    def step(self, title: str, action) -> None:
        """Run one step here; `action` returns False when it found its work already done."""
        print(f"\n=== {title}", flush=True)
        start = time.perf_counter()
        if action() is not False or title not in self.steps:
            self.add(title, time.perf_counter() - start)


def _pretrain_job(config: Path, overrides: list[str]) -> None:
    """One net's pretraining, in a worker of `run_jobs`."""
    pretrain(load_pretrain_config(config, overrides))


def _detector_job(config: Path, overrides: list[str]) -> None:
    train_detector(load_detection_config(config, overrides))


class Demo:
    """One seed of the demo: its runs under `out`, the data (shared by seeds) under `data`."""

    def __init__(self, cfg, config_dir: Path, out: Path, data: Path, seed: int, timings: Timings):
        self.cfg, self.config_dir, self.out, self.data = cfg, config_dir, out, data
        self.seed, self.timings = seed, timings
        self.nets = {n.label: n for n in cfg.nets}

    def pretrain_dir(self, label: str) -> Path:
        return self.out / "pretrain" / self.nets[label].net

    def detect_dir(self, detector) -> Path:
        suffix = "_mask" if detector.kind == "mask_rcnn" else ""
        return self.out / "detect" / f"{self.nets[detector.net].net}_c4{suffix}"

    def mask_detector(self) -> DemoDetector:
        """Mask R-CNN on the deep residual net: the backbone the demo argues for, the same on
        every seed (the best-pretrained net, the earlier choice, was plain-20 on some seeds and
        ResNet-56 on others: 16-24 against 40 mask mAP@.5, docs/benchmarks.md)."""
        residual = next(n for n in self.cfg.nets if n.role == "deep residual")
        return DemoDetector(label=f"{residual.label} Mask R-CNN", net=residual.label, kind="mask_rcnn")

    # ---- the steps -----------------------------------------------------------------------------
    def training_jobs(self) -> list[Job]:
        """This seed's unfinished training runs: the nets' pretraining, each detector after its
        net's (finished runs are kept: a rerun continues)."""
        tag, jobs = f"seed {self.seed}: ", []
        for net in self.cfg.nets:
            out = self.pretrain_dir(net.label)
            if (out / DONE_FILE).is_file():
                print(f"pretrained: {out}")
                continue
            overrides = [f"output_dir={out}", f"name={net.net}", f"model.name={net.net}",
                         f"data.root={self.data / 'classification'}", f"train.seed={self.seed}",
                         "resume=auto", *self.cfg.pretrain_overrides]
            jobs.append(Job(f"{tag}pretrain {net.label}",
                            partial(_pretrain_job, self.config_dir / self.cfg.pretrain, overrides),
                            out / "train.log", progress=partial(progress, out)))
        for detector in self.detectors():
            out = self.detect_dir(detector)
            if (out / DONE_FILE).is_file():
                print(f"trained: {out}")
                continue
            action = partial(_detector_job, self.config_dir / self.cfg.detect,
                             self.detection_overrides(detector, "resume=auto"))
            jobs.append(Job(f"{tag}detector {detector.label}", action, out / "train.log",
                            after=(f"{tag}pretrain {detector.net}",), progress=partial(progress, out)))
        return jobs

    def detection_overrides(self, detector, *extra: str) -> list[str]:
        detection = self.data / "detection"
        net = self.nets[detector.net]
        return [f"data.train_annotations={detection / 'instances_train.json'}",
                f"data.train_images={detection / 'train'}",
                f"data.val_annotations={detection / 'instances_val.json'}",
                f"data.val_images={detection / 'val'}", f"model.backbone={net.net}",
                f"model.backbone_weights={self.pretrain_dir(net.label) / 'backbone.safetensors'}",
                f"name={self.detect_dir(detector).name}", f"output_dir={self.detect_dir(detector)}",
                f"model.kind={detector.kind}", f"train.seed={self.seed}", *self.cfg.detect_overrides,
                *extra]

    def detection_config(self, detector, *extra: str):
        return load_detection_config(self.config_dir / self.cfg.detect,
                                     self.detection_overrides(detector, *extra))

    def evaluate(self, detector) -> None:
        checkpoint = self.detect_dir(detector) / "checkpoints" / "last.pth"
        metrics = self.detect_dir(detector) / "eval_pycocotools" / "metrics.json"
        if metrics.is_file() and metrics.stat().st_mtime > checkpoint.stat().st_mtime:
            print(f"evaluated: {metrics}")
            return False
        evaluate_checkpoint(self.detection_config(detector, "eval.backend=pycocotools"), checkpoint,
                            metrics.parent)

    def pictures(self) -> None:
        """Fig. 6 style curves (plain nets left, the deep pair right) and detections drawn."""
        run_dir = {n.role: self.pretrain_dir(n.label) for n in self.cfg.nets}
        panels = [("plain nets", [run_dir["shallow plain"], run_dir["deep plain"]]),
                  ("deep plain vs residual", [run_dir["deep plain"], run_dir["deep residual"]])]
        colours = {run_dir[role]: f"C{index}" for index, role in enumerate(ROLES)}  # one per net
        print(f"written {save_curves([], self.out / 'pretrain_curves.png', panels, colours)}")
        drawn = {}
        for detector in self.detectors():
            out = self.out / "visualize" / self.detect_dir(detector).name
            written = visualize_checkpoint(
                self.detection_config(detector), self.detect_dir(detector) / "checkpoints" / "last.pth",
                out, num=self.cfg.visualize, score_threshold=self.cfg.score, top=self.cfg.top, scale=2)
            drawn[detector.label] = [p for p in written if p.name != "grid.png"]
            print(f"written {len(written)} images to {out}")
        pair = {d.label: drawn[d.label] for d in self.cfg.detectors}  # the Table 8 comparison
        print(f"written {side_by_side(pair, self.out / 'visualize' / 'side_by_side.png')}")

    def detectors(self) -> list[DemoDetector]:
        """The two Faster R-CNNs and, once the nets are pretrained, the Mask R-CNN."""
        return [*self.cfg.detectors, *([self.mask_detector()] if self.cfg.mask_rcnn else [])]

    def finish(self, pictures: bool) -> dict:
        """Once its runs are trained: evaluate them (here, one at a time) and draw."""
        tag = f"seed {self.seed}: "
        for detector in self.detectors():
            self.timings.step(f"{tag}evaluate {detector.label}", lambda d=detector: self.evaluate(d))
        self.timings.step(f"{tag}analysis (Fig. 7, Sec. 4.1)", self.analysis)
        if pictures:
            self.timings.step(f"{tag}pictures", self.pictures)
        return self.results()

    def analysis(self) -> None:
        """Fig. 7's responses (on validation images) and the gradient norms (on training batches)
        of the pretrained nets, at their final weights: <out>/analysis/{responses,gradients}.*"""
        subjects = [from_run(self.pretrain_dir(n.label) / "config.yaml",
                             self.pretrain_dir(n.label) / "final.safetensors", n.label)
                    for n in self.cfg.nets]
        state = process_state()
        analyze("responses", subjects, self.out / "analysis", state=state,
                images=ANALYSIS_IMAGES)
        analyze("gradients", subjects, self.out / "analysis", state=state,
                batches=ANALYSIS_BATCHES)

    def results(self) -> dict:
        """This seed's figures, as the report reads them (also written to results.json)."""
        pretrained = {}
        for net in self.cfg.nets:
            run_dir = self.pretrain_dir(net.label)
            records = [r for r in read_metrics(run_dir) if "train_error" in r]
            window = records[-max(1, len(records) // 5):]  # the last fifth of training
            evaluation = json.loads((run_dir / DONE_FILE).read_text())["metrics"]
            if "val_top1_error" not in evaluation:
                raise ValueError(f"{run_dir / DONE_FILE}: finished without its final evaluation "
                                 "(an older toolkit's interrupted run); delete the folder to retrain")
            pretrained[net.label] = {
                "net": net.net, "role": net.role,
                "params_m": count_params(create_backbone(net.net)) / 1e6,
                "train_error": 100 * sum(r["train_error"] for r in window) / len(window),
                "val_error": 100 * evaluation["val_top1_error"],
                "minutes": records[-1]["elapsed_s"] / 60,
                "images_per_s": sorted(r["images_per_s"] for r in records)[len(records) // 2],
                "precision": records[-1].get("precision", "fp32")}
        detected = {d.label: self.detection_figures(d, ("AP50", "AP")) for d in self.cfg.detectors}
        analysis = {kind: {e["net"]: e for e in json.loads((self.out / "analysis" / f"{kind}.json")
                                                              .read_text())}
                    for kind in ("responses", "gradients")}
        results = {"seed": self.seed, "pretrain": pretrained, "detect": detected, "analysis": analysis}
        if self.cfg.mask_rcnn:
            detector = self.mask_detector()
            results["masks"] = {"net": detector.net, **self.detection_figures(
                detector, ("AP50", "AP", "segm_AP50", "segm_AP"))}
        (self.out / "results.json").write_text(json.dumps(results, indent=1))
        return results

    def detection_figures(self, detector, keys: tuple) -> dict:
        """Its pycocotools figures (%) and the validation shapes its pictures show found."""
        evaluation = self.detect_dir(detector) / "eval_pycocotools"
        metrics = json.loads((evaluation / "metrics.json").read_text())["metrics"]
        ground_truth = json.loads((self.data / "detection" / "instances_val.json").read_text())
        detections = json.loads((evaluation / "detections.json").read_text())
        return {**{k: 100 * metrics[f"val_{k}"] for k in keys},
                "found": 100 * recall_at_score(ground_truth, detections, self.cfg.score)}


def residual_detector_dir(config: Path, out: Path) -> Path:
    """The run folder of a finished demo's Faster R-CNN on the deep residual net."""
    cfg = load_demo_config(config)
    demo = Demo(cfg, config.parent, out, out / "data", 0, Timings(out / "timings.json"))
    residual = next(n.label for n in cfg.nets if n.role == "deep residual")
    return demo.detect_dir(next(d for d in cfg.detectors if d.net == residual))


def make_data(cfg, data: Path) -> None:
    marker = data / "generated.json"
    wanted = OmegaConf.to_container(cfg.data)
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        print(f"data present: {data}")
        return False
    paths = make_synthetic(data, **wanted)
    for name, path in paths.items():
        print(f"{name}: {path}")
    marker.write_text(json.dumps(wanted))  # written last: a half-made set is remade


def run_demo(config: Path, out: Path, command: str, seeds: int = 1,
             jobs: int = 2) -> tuple[list[str], Path, Timings]:
    """The demo of `config` into `out` for training seeds 0..seeds-1 (each under <out>/seed<k>
    when there are several), `jobs` training runs at a time; returns the summary lines, the
    report and the timings."""
    cfg = load_demo_config(config)
    timings = Timings(out / "timings.json")
    data = out / "data"
    try:
        timings.step("data", lambda: make_data(cfg, data))
        demos = [Demo(cfg, config.parent, out / f"seed{seed}" if seeds > 1 else out, data, seed, timings)
                 for seed in range(seeds)]
        print("\n=== training runs", flush=True)
        run_jobs([job for demo in demos for job in demo.training_jobs()], jobs,
                 on_done=lambda job, seconds: timings.add(job.title, seconds))
        results = [demo.finish(pictures=demo.seed == 0) for demo in demos]
    finally:
        timings.save()
    first = out / "seed0" if seeds > 1 else out
    report = write_report(cfg, config.parent, results, out, first.relative_to(out), command, timings, jobs)
    return summary(cfg, results), report, timings


def summary(cfg, results: list[dict]) -> list[str]:
    roles = {n.role: n.label for n in cfg.nets}
    masks = ["", demo_report.mask_table(results, cfg.score)] if cfg.mask_rcnn else []
    return [demo_report.pretrain_table(results), "",
            demo_report.detection_table(results, cfg.detectors, cfg.score), *masks, "",
            *demo_report.claims(results, roles, cfg.detectors, cfg.score),
            *demo_report.analysis_claims(results[0], roles)]


def write_report(cfg, config_dir: Path, results: list[dict], out: Path, pictures: Path, command: str,
                 timings: Timings, jobs: int) -> Path:
    roles = {n.role: n.label for n in cfg.nets}
    nets = {n.label: n.net for n in cfg.nets}
    claims = [*demo_report.claims(results, roles, cfg.detectors, cfg.score),
              *demo_report.analysis_claims(results[0], roles)]
    precision = sorted({r["precision"] for seed in results for r in seed["pretrain"].values()})
    seeds = f"{len(results)} seeds (mean ± half the spread)" if len(results) > 1 else "one seed"
    lines = [
        "# Demo report: the paper's two results in miniature, on synthetic shapes", "",
        f"`{command}` on {machine()}, precision {', '.join(precision)}, {seeds}, "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. It took {timings.wall / 60:.1f} min of "
        f"wall time in all; this invocation {timings.this_run / 60:.1f} min (finished steps are "
        "reused).", "",
        "## What the numbers say", "", *[f"- {line}" for line in claims], "",
        "## 1. Degradation and its cure (Fig. 6, Table 6)", "",
        f"A shallow and a deep plain net and the deep net's residual twin, each trained once with "
        f"the paper's CIFAR recipe (configs/demo/{cfg.pretrain}) on {cfg.data.cls_size} px "
        f"single-shape images ({cfg.data.num_cls_train} train / {cfg.data.num_cls_val} val, 5 "
        "classes). Training error: the last fifth of training's logged windows (augmented batches, "
        "as the paper's curves); val error: after the last iteration.", "",
        demo_report.pretrain_table(results), "",
        f"![pretraining curves]({pictures / 'pretrain_curves.png'})", "",
        "Training error dashed, validation error bold.", "",
        *analysis_section(results, pictures),
        "## 2. Better features, better detector (Tables 7 and 8)", "",
        f"The same Faster R-CNN (the paper's C4 design, configs/demo/{cfg.detect}) on the deep plain "
        f"net and on its residual twin, each from its pretraining above; {cfg.data.size} px images "
        f"with 2-5 overlapping shapes ({cfg.data.num_train} train / {cfg.data.num_val} val), "
        "evaluated by pycocotools. The paper's columns are its COCO figures, for the shape of the "
        f"comparison. Shapes found: the validation shapes a box of the right class covers at IoU >= "
        f"0.5 with score >= {cfg.score}, each box taking one shape (what the pictures show).", "",
        demo_report.detection_table(results, cfg.detectors, cfg.score), "",
        f"![plain vs residual, same images]({pictures / 'visualize' / 'side_by_side.png'})", "",
        f"The same validation images, one row each, as each detector sees them: left "
        f"{cfg.detectors[0].label}, right {cfg.detectors[1].label}. Drawn: the detector's boxes "
        f"with score >= {cfg.score} (at most {cfg.top} per image, best first), coloured by class "
        "and labelled with class and score; the ground-truth boxes in white. A shape with no "
        f"coloured box was missed (or scored under {cfg.score}).", "",
        *[f"![{d.label}]({pictures / 'visualize' / f'{nets[d.net]}_c4' / 'grid.png'})"
          for d in cfg.detectors], "",
        f"Each detector on {cfg.visualize} validation images, drawn as above.", "",
        *(mask_section(cfg, results, pictures, nets) if cfg.mask_rcnn else []),
        "## What is scaled down, and why", "",
        "Everything the demo shows is bounded by images per second on a 2-core CPU, so: 32 px "
        "images of 5 shapes instead of ImageNet (every shape contrasts with its background and no "
        "two classes share a silhouette, so the task is learnable in minutes); the CIFAR nets "
        "(16/32/64 filters) at depths 20 and 56 instead of 18-152; "
        f"{scaled_pretraining(cfg, config_dir)}; 128 px "
        "scenes seen by the detector at 64 px (its pretraining's object scale), 16 sampled RoIs "
        "pooled to 8x8 instead of 600 px, 128 RoIs and 14x14, 8 epochs of 200 images. "
        "The nets and the "
        "recipe are the paper's, the same for plain and residual: nothing is tuned per "
        "architecture.", "",
        "## Step times (s)", "",
        f"Each step's own time; the training runs went {jobs} at a time, so theirs overlap.", "",
        *[f"- {name}: {seconds:.1f}" for name, seconds in timings.steps.items()],
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path



def scaled_pretraining(cfg, config_dir: Path) -> str:
    """The demo's pretraining schedule against the paper's, in words."""
    pretraining = load_pretrain_config(config_dir / cfg.pretrain, cfg.pretrain_overrides)
    total, steps = pretraining.schedule.total, pretraining.schedule.milestones
    return (f"{total:g} iterations at batch {pretraining.train.batch_size} instead of 64k at batch 128 "
            f"(the paper's lr for {steps[0]:g}, a tenth of it after)")


def analysis_section(results: list[dict], pictures: Path) -> list[str]:
    """Why the deep plain net degrades (the first seed's nets): Fig. 7 and the gradient norms."""
    return [
        "### Why: layer responses (Fig. 7) and gradients (Sec. 4.1)", "",
        f"What they say is in the first section{' (the first seed)' if len(results) > 1 else ''}.", "",
        f"![layer responses]({pictures / 'analysis' / 'responses.png'})", "",
        "The std of each 3x3 layer's output after BN, before ReLU or the addition, on the "
        "validation images (top: in the network's order; bottom: sorted), at the end of training.", "",
        f"![gradient norms]({pictures / 'analysis' / 'gradients.png'})", "",
        f"The loss gradient on {ANALYSIS_BATCHES} training batches at the final weights: with respect "
        "to each layer's weights (left) and each block's output, per element (right).", ""]


def mask_section(cfg, results: list[dict], pictures: Path, nets: dict) -> list[str]:
    """The report's Mask R-CNN part: its table and its masks drawn (first seed)."""
    net = nets[results[0]["masks"]["net"]]
    return [
        "## 3. Instance masks (Mask R-CNN)", "",
        "A C4 Mask R-CNN (detectron2's Res5ROIHeads: conv5_x per region feeds boxes and masks) on "
        "the deep residual net, same data and schedule as "
        "above; masks from the generator's visible-region RLEs, scored by pycocotools `segm`.", "",
        demo_report.mask_table(results, cfg.score), "",
        f"![Mask R-CNN]({pictures / 'visualize' / f'{net}_c4_mask' / 'grid.png'})", "",
        f"Drawn: the boxes with score >= {cfg.score} (at most {cfg.top} per image, best first) "
        "with their masks filled in the class colour, labelled with class and score; "
        "ground-truth boxes in white.", ""]
