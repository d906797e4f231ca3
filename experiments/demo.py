"""The paper's two comparisons in miniature, on generated data, in minutes on a CPU:

1. generate the synthetic shapes (COCO detection splits + an ImageFolder classification set);
2. pretrain a plain and a residual net of the same depth;
3. train a C4 Faster R-CNN on each pretrained backbone;
4. evaluate both with pycocotools;
5. write <out>/report.md: tables beside the paper's, curves, detections drawn.

Each step calls the library function the matching tool calls (`pretrain`, `train_detector`,
`evaluate_checkpoint`, ...). Run it again after an interruption: finished steps are kept
(a run's done.json), training resumes from its last checkpoint.
"""

import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from omegaconf import OmegaConf

from backbones import backbone_family
from classification.pretrain import load_pretrain_config, pretrain
from detection import load_detection_config, train_detector
from detection.evaluate import evaluate_checkpoint
from detection.visualize import visualize_checkpoint
from engine.config import load_config
from engine.trainer import DONE_FILE

from .depth_study import results_table, summarize
from .detection_table import compare_table
from .machine import machine
from .paper import TABLE8
from .paths import CONFIGS
from .plots import save_curves
from .synthetic import make_synthetic

DEMO_CONFIG, SMOKE_CONFIG = CONFIGS / "demo" / "demo.yaml", CONFIGS / "demo" / "smoke.yaml"


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
class DemoRun:
    label: str = ""
    paper: str = ""  # the Table 8 row (paper.TABLE8 key) this detector stands in for
    pretrain: str = ""  # config files, relative to the demo config
    detect: str = ""


@dataclass
class DemoConfig:
    data: DemoData = field(default_factory=DemoData)
    runs: list[DemoRun] = field(default_factory=list)
    pretrain_overrides: list[str] = field(default_factory=list)
    detect_overrides: list[str] = field(default_factory=list)
    visualize: int = 8
    score: float = 0.05  # lowest score drawn
    top: int = 5  # most boxes drawn per image, best first


class Demo:
    def __init__(self, config: Path, out: Path, command: str):
        self.cfg = load_config(DemoConfig, config)
        self.command, self.summary = command, []
        self.config_dir, self.out = config.parent, out
        self.data = out / "data"
        # seconds of work per step, kept across invocations (a resumed step adds up)
        self.timings_file = out / "timings.json"
        self.timings = json.loads(self.timings_file.read_text()) if self.timings_file.is_file() else {}
        self.this_run = 0.0
        self.runs = [self._paths(run) for run in self.cfg.runs]

    def _paths(self, run: DemoRun) -> dict:
        pretrain_cfg = self.config_dir / run.pretrain
        detect_cfg = self.config_dir / run.detect
        pretrain_dir = self.out / "pretrain" / load_pretrain_config(pretrain_cfg).name
        detect_dir = self.out / "detect" / load_detection_config(detect_cfg).name
        return {"run": run, "pretrain_cfg": pretrain_cfg, "detect_cfg": detect_cfg,
                "pretrain_dir": pretrain_dir, "detect_dir": detect_dir,
                "eval_dir": detect_dir / "eval_pycocotools"}

    def step(self, title: str, action) -> None:
        """Run one step; `action` returns False when it found its work already done."""
        print(f"\n=== {title}", flush=True)
        start = time.perf_counter()
        worked = action() is not False
        seconds = time.perf_counter() - start
        self.this_run += seconds
        if worked or title not in self.timings:
            self.timings[title] = self.timings.get(title, 0.0) + seconds
            self.out.mkdir(parents=True, exist_ok=True)
            self.timings_file.write_text(json.dumps(self.timings, indent=1))

    # ---- the steps -----------------------------------------------------------------------------
    def make_data(self) -> None:
        marker = self.data / "generated.json"
        wanted = OmegaConf.to_container(self.cfg.data)
        if marker.is_file() and json.loads(marker.read_text()) == wanted:
            print(f"data present: {self.data}")
            return False
        paths = make_synthetic(self.data, **wanted)
        for name, path in paths.items():
            print(f"{name}: {path}")
        marker.write_text(json.dumps(wanted))  # written last: a half-made set is remade

    def pretrain(self, paths: dict) -> None:
        if (paths["pretrain_dir"] / DONE_FILE).is_file():
            print(f"pretrained: {paths['pretrain_dir']}")
            return False
        pretrain(load_pretrain_config(paths["pretrain_cfg"], [
            f"output_dir={paths['pretrain_dir']}", f"data.root={self.data / 'classification'}",
            "resume=auto", *self.cfg.pretrain_overrides]))

    def detection_config(self, paths: dict, *extra: str):
        detection = self.data / "detection"
        return load_detection_config(paths["detect_cfg"], [
            f"data.train_annotations={detection / 'instances_train.json'}",
            f"data.train_images={detection / 'train'}",
            f"data.val_annotations={detection / 'instances_val.json'}",
            f"data.val_images={detection / 'val'}",
            f"model.backbone_weights={paths['pretrain_dir'] / 'backbone.safetensors'}",
            f"output_dir={paths['detect_dir']}", *self.cfg.detect_overrides, *extra])

    def train_detector(self, paths: dict) -> None:
        if (paths["detect_dir"] / DONE_FILE).is_file():
            print(f"trained: {paths['detect_dir']}")
            return False
        train_detector(self.detection_config(paths, "resume=auto"))

    def evaluate(self, paths: dict) -> None:
        checkpoint = paths["detect_dir"] / "checkpoints" / "last.pth"
        metrics = paths["eval_dir"] / "metrics.json"
        if metrics.is_file() and metrics.stat().st_mtime > checkpoint.stat().st_mtime:
            print(f"evaluated: {metrics}")
            return False
        evaluate_checkpoint(self.detection_config(paths, "eval.backend=pycocotools"), checkpoint,
                            paths["eval_dir"])

    def pictures(self) -> None:
        curves = save_curves([p["pretrain_dir"] for p in self.runs], self.out / "pretrain_curves.png")
        print(f"written {curves}")
        for paths in self.runs:
            out = self.out / "visualize" / paths["detect_dir"].name
            written = visualize_checkpoint(
                self.detection_config(paths), paths["detect_dir"] / "checkpoints" / "last.pth", out,
                num=self.cfg.visualize, score_threshold=self.cfg.score, top=self.cfg.top, scale=2)
            print(f"written {len(written)} images to {out}")

    def run(self) -> Path:
        self.step("1/5 data", self.make_data)
        for paths in self.runs:
            self.step(f"2/5 pretrain {paths['pretrain_dir'].name}", lambda p=paths: self.pretrain(p))
        for paths in self.runs:
            self.step(f"3/5 detector {paths['detect_dir'].name}", lambda p=paths: self.train_detector(p))
        for paths in self.runs:
            self.step(f"4/5 evaluate {paths['detect_dir'].name}", lambda p=paths: self.evaluate(p))
        self.step("5/5 report", self.pictures)
        return self.write_report()

    # ---- the report ------------------------------------------------------------------------------
    def pretrain_results(self) -> list:
        results = []
        for paths in self.runs:
            model = load_pretrain_config(paths["pretrain_cfg"]).model.name
            depth = int(re.search(r"\d+$", model).group())
            result = summarize(paths["pretrain_dir"], backbone_family(model), depth)
            result.name = paths["run"].label
            results.append(result)
        return results

    def detection_table(self) -> str:
        table = compare_table([p["eval_dir"] / "metrics.json" for p in self.runs],
                              [p["run"].paper for p in self.runs])
        (self.out / "detection_table.md").write_text(table)
        print(table, end="")
        return table.strip()

    def write_report(self) -> Path:
        pretrain = self.pretrain_results()
        detection = [json.loads((p["eval_dir"] / "metrics.json").read_text()) for p in self.runs]
        total = sum(self.timings.values())
        pretrain_table = results_table(pretrain, paper=False).replace("test error", "val error")
        self.summary = [pretrain_table, "", *self._degradation(pretrain), "", self.detection_table(),
                        "", *self._detection_gain(detection)]
        lines = [
            "# Demo report: plain vs residual, VGG-style vs ResNet, on synthetic shapes", "",
            f"`{self.command}` on {machine()}, "
            f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. The steps took {total / 60:.1f} min "
            f"of wall time in all; this invocation {self.this_run / 60:.1f} min (finished steps "
            "are reused).", "",
            "## Pretraining: plain vs residual of the same depth", "",
            f"Classification of {self.cfg.data.cls_size} px single-shape images "
            f"({self.cfg.data.num_cls_train} train / {self.cfg.data.num_cls_val} val, 5 classes), "
            "the paper's CIFAR recipe compressed (configs/demo/pretrain_*.yaml).", "",
            pretrain_table, "", *self._degradation(pretrain), "",
            "![pretraining curves](pretrain_curves.png)", "",
            "Training error dashed, validation error bold.", "",
            "## Detection: Faster R-CNN (C4) on each pretrained backbone", "",
            f"{self.cfg.data.size} px images with 2-5 overlapping shapes ({self.cfg.data.num_train} "
            f"train / {self.cfg.data.num_val} val), evaluated by pycocotools. The paper's columns "
            "are its COCO figures (Table 8: VGG-16 vs ResNet-101), for the shape of the "
            "comparison: the data and the nets here are miniatures.", "",
            *self.summary[-3:], "",
            *[f"![{p['detect_dir'].name}](visualize/{p['detect_dir'].name}/grid.png)" for p in self.runs],
            "",
            f"The {self.cfg.top} best detections per image (score >= {self.cfg.score}) coloured by "
            "class, with their scores; ground truth in white.", "",
            "## Step times (s)", "",
            *[f"- {name}: {seconds:.1f}" for name, seconds in self.timings.items()],
        ]
        path = self.out / "report.md"
        path.write_text("\n".join(lines) + "\n")
        return path

    @staticmethod
    def _degradation(results) -> list[str]:
        plain = next(r for r in results if r.family == "plain")
        resnet = next(r for r in results if r.family == "resnet")
        worse = plain.train_error > resnet.train_error
        return [f"Training error {plain.train_error:.2f}% ({plain.name}) vs {resnet.train_error:.2f}% "
                f"({resnet.name}): the plain net {'optimises worse' if worse else 'does NOT optimise worse'}"
                f" than its residual twin{' as in the paper (Fig. 4, 6)' if worse else ''}."]

    def _detection_gain(self, detection: list) -> list[str]:
        (a, b), (pa, pb) = detection, (TABLE8[p["run"].paper] for p in self.runs)
        gain = {k: 100 * (b["metrics"][f"val_{k}"] - a["metrics"][f"val_{k}"]) for k in ("AP50", "AP")}
        return [f"{self.runs[1]['run'].label} over {self.runs[0]['run'].label}: "
                f"{gain['AP50']:+.1f} mAP@.5, {gain['AP']:+.1f} mAP@[.5,.95] "
                f"(paper, {pb[0]} over {pa[0]} on COCO: {pb[1] - pa[1]:+.1f} and {pb[2] - pa[2]:+.1f})."]


def run_demo(config: Path, out: Path, command: str) -> tuple[Demo, Path]:
    """The demo of `config` into `out`; returns the demo and its report."""
    demo = Demo(config, out, command)
    return demo, demo.run()
