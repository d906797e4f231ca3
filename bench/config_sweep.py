"""`make test-configs`: every shipped config trained and evaluated as shipped, at its real size.

The suite tests each config through a small substitute; this runs the configs themselves: the
model at the config's size (backbone, input size, RoI and proposal counts, heads), two training
iterations with the schedule as shipped (`train.stop_at=2`: checkpoint and evaluation at the
stop), evaluation on two validation images, on data written in the config's own format at real
image sizes (`experiments.config_data`), in fp32 and in bf16 autocast where the CPU has bf16
units. Only the batch size, data paths, backbone weights file, precision and the stop are
overridden, and each config's overrides are printed as a command line, so a user sees what
changed. Every YAML file under configs/ is in the sweep without being listed: a run config (it
names `task` and `name`) is run; a base (no `name`) is run through the configs built on it; the
demo's settings (no `task`) are loaded and their run configs run.
"""

import json
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

from omegaconf import OmegaConf

from config_data import (
    IMAGENET_SIZE,
    write_coco,
    write_coco_voc_segmentation,
    write_image_folder,
    write_mask_folder,
    write_voc_detection,
    write_voc_segmentation,
)
from engine.config import declared_task
from engine.precision import cpu_has_bf16
from experiments.jobs import Job, run_jobs
from weights_files import write_backbone

STOP_AT = 2  # training iterations per run
RESULT_FILE = "sweep_result.json"
TASK_ORDER = ("detection", "segmentation", "classification")  # the longest runs first
VAL_IMAGES = 2
TRAIN_IMAGES = 4  # two batches of two
ALLOWED_KEYS = ("train.batch_size", "train.stop_at", "train.precision", "output_dir", "data.",
                "model.backbone_weights")  # what the sweep may override: size of batch, data, stop


@dataclass
class Entry:
    """One YAML file under configs/ and what the sweep does with it."""
    path: str
    role: str  # run | base | demo settings
    task: str | None = None
    note: str = ""  # a base: the run configs built on it; demo settings: the configs they name


@dataclass
class Result:
    config: str
    task: str
    precision: str
    overrides: list[str]
    seconds: float
    ok: bool
    metrics: dict = field(default_factory=dict)
    error: str = ""


# ---- which files are what ----------------------------------------------------------------------
def _chain_names(path: Path) -> list[Path]:
    """The files `path`'s `_base_` chain reads, itself first."""
    raw = OmegaConf.load(path)
    bases = raw.get("_base_") or []
    bases = [bases] if isinstance(bases, str) else list(bases)
    found = [path.resolve()]
    for base in bases:
        found += _chain_names(path.parent / base)
    return found


def discover(configs: Path) -> list[Entry]:
    """Every YAML file under `configs` with its role; a file of no role is an error."""
    files = sorted(configs.rglob("*.yaml"))
    runs, entries = {}, []
    for path in files:
        raw = OmegaConf.merge(*[OmegaConf.load(p) for p in reversed(_chain_names(path))])
        if raw.get("task") and raw.get("name"):
            runs[path.resolve()] = _chain_names(path)[1:]
            entries.append(Entry(str(path.relative_to(configs)), "run", raw.get("task")))
    for path in files:
        rel = str(path.relative_to(configs))
        if path.resolve() in runs:
            continue
        users = [str(p.relative_to(configs.resolve())) for p, bases in runs.items()
                 if path.resolve() in bases]
        raw = OmegaConf.load(path)
        if users:
            entries.append(Entry(rel, "base", declared_task(path), "run through " + ", ".join(sorted(users))))
        elif "demo" in path.parts and ("pretrain" in raw or "_base_" in raw):
            entries.append(Entry(rel, "demo settings", None, _demo_note(path)))
        else:
            raise ValueError(f"{path}: neither a run config (task and name), a base of one, nor the "
                             f"demo's settings: the sweep does not know what to do with it")
    return sorted(entries, key=lambda e: e.path)


def _demo_note(path: Path) -> str:
    from experiments.demo import load_demo_config

    cfg = load_demo_config(path)
    names = [cfg.pretrain, cfg.detect]
    missing = [n for n in names if not (path.parent / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{path} names {missing}, which do not exist")
    return f"loaded; its run configs ({', '.join(names)}) are swept; the whole demo is `make demo`"


# ---- data and weights in each config's format ---------------------------------------------------
class DataCache:
    """Each format's data written once under `root`, shared by the configs that read it."""

    def __init__(self, root: Path):
        self.root = root
        self._done = {}

    def get(self, key: str, write) -> Path:
        if key not in self._done:
            self._done[key] = write(self.root / key)
        return self._done[key]


def _classification_overrides(cfg, cache: DataCache) -> list[str]:
    data = cfg.data
    if data.kind == "synthetic":
        return []
    # every class folder holds images (an empty one is an error, as in torchvision's ImageFolder):
    # one per class in each split, so the CIFAR copy is evaluated on 10 images; ImageNet's layout
    # gets 6 classes (more than 5: top-5 error means something), its fc following the data's
    if data.preset == "cifar":
        key, classes, size = f"cifar_{data.train_split}_{data.val_split}", 10, (32, 32)
    else:
        key, classes, size = f"imagenet_{data.train_split}_{data.val_split}", 6, IMAGENET_SIZE
    splits = {data.train_split: classes, data.val_split: classes}
    return [f"data.root={cache.get(key, lambda r: write_image_folder(r, splits, classes, size))}"]


def _detection_overrides(cfg, cache: DataCache) -> list[str]:
    data = cfg.data
    if data.kind == "coco":
        def write(root):
            write_coco(root / "train.json", root / "train", TRAIN_IMAGES, seed=1)
            write_coco(root / "val.json", root / "val", VAL_IMAGES, seed=2)
            return root
        root = cache.get("coco_detection", write)
        return [f"data.train_annotations={root / 'train.json'}", f"data.train_images={root / 'train'}",
                f"data.val_annotations={root / 'val.json'}", f"data.val_images={root / 'val'}"]
    train, val = list(data.voc_train), list(data.voc_val)
    key = "voc_detection_" + "_".join(e.replace("/", "-") for e in train + val)

    def write(root):
        for i, entry in enumerate(train + val):
            folder, _, split = entry.rpartition("/")
            count = VAL_IMAGES if entry in val else max(1, TRAIN_IMAGES // len(train))
            write_voc_detection(root / folder, split, count, seed=i)
        return root
    return [f"data.voc_root={cache.get(key, write)}"]


def _segmentation_overrides(cfg, cache: DataCache) -> list[str]:
    data = cfg.data
    splits = {data.train_split: TRAIN_IMAGES, data.val_split: VAL_IMAGES}
    if data.kind == "voc":
        root = cache.get(f"voc_segmentation_{data.train_split}_{data.val_split}",
                         lambda r: write_voc_segmentation(r, splits))
    elif data.kind == "coco":
        from segmentation.coco import VOC_CATEGORY_IDS

        root = cache.get(f"coco_segmentation_{data.train_split}_{data.val_split}",
                         lambda r: write_coco_voc_segmentation(r, splits, VOC_CATEGORY_IDS[1:]))
    else:
        classes = len(data.classes) if data.classes else 21
        root = cache.get(f"folder_segmentation_{classes}", lambda r: write_mask_folder(r, splits, classes))
    return [f"data.root={root}"]


def backbone_file(name: str, cache: DataCache) -> Path:
    """The ImageNet backbone a user brings, with random values: torchvision's or timm's own state
    dict (.pth, their layout) where they have the net, else ours written by `save_weights`."""
    import torchvision

    theirs = name.startswith("timm/") or hasattr(torchvision.models, name)
    file = "weights.pth" if theirs else "weights.safetensors"
    return cache.get(f"weights_{name.replace('/', '_')}", lambda root: write_backbone(name, root / file))


def _weights_overrides(cfg, cache: DataCache) -> list[str]:
    model = cfg.model
    if model.get("weights") or model.backbone_weights == "scratch":
        return []
    return [f"model.backbone_weights={backbone_file(model.backbone, cache)}"]


def overrides_for(path: Path, task: str, cache: DataCache) -> list[str]:
    """The data paths and backbone file a config needs here, plus the batch and the stop."""
    cfg = _task(task).load(path)
    images = 1 if task == "detection" else 2  # a detector: one image per GPU in the paper's runs
    batch = [f"train.batch_size={images * cfg.train.grad_accum}", f"train.stop_at={STOP_AT}"]
    if task == "classification":
        return batch + _classification_overrides(cfg, cache)
    data = _detection_overrides(cfg, cache) if task == "detection" else _segmentation_overrides(cfg, cache)
    return batch + data + _weights_overrides(cfg, cache)


# ---- running ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _TaskRun:
    load: Callable  # (path, overrides, training=) -> config; training=False: no backbone weights asked
    train: Callable  # config -> metrics


def _task(task: str) -> _TaskRun:
    if task == "classification":
        from classification.pretrain import load_pretrain_config, pretrain

        return _TaskRun(lambda p, o=(), training=False: load_pretrain_config(p, o), pretrain)
    if task == "detection":
        from detection.train import load_detection_config, train_detector

        return _TaskRun(lambda p, o=(), training=False: load_detection_config(p, o, training=training),
                        train_detector)
    from segmentation.train import load_segmentation_config, train_segmenter

    return _TaskRun(lambda p, o=(), training=False: load_segmentation_config(p, o, training=training),
                    train_segmenter)


def run_one(path: Path, task: str, overrides: list[str], precision: str, out: Path,
            label: str | None = None) -> Result:
    """Train and evaluate one config in this process; an exception is the result, not the end.
    The result is also written to out/sweep_result.json (what `sweep` reads from its workers);
    the run's checkpoint, its check done, is deleted."""
    from accelerate.state import AcceleratorState, GradientState, PartialState

    argv = [*overrides, f"train.precision={precision}", f"output_dir={out}"]
    start = time.perf_counter()
    try:
        runner = _task(task)
        cfg = runner.load(path, argv, training=True)
        metrics = runner.train(cfg)
        ok, error = bool(metrics), "" if metrics else "no evaluation at the stop"
    except Exception as exc:  # noqa: BLE001  (every failure is reported, the sweep goes on)
        metrics, ok = {}, False
        error = f"{type(exc).__name__}: {exc}".splitlines()[0][:400]
        traceback.print_exc()
    finally:
        AcceleratorState._reset_state(True)
        GradientState._reset_state()
        PartialState._reset_state()
    shutil.rmtree(out / "checkpoints", ignore_errors=True)  # checked; ~1 GB each: 25 GB for the sweep
    result = Result(label or str(path), task, precision, overrides, round(time.perf_counter() - start, 1), ok,
                    {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}, error)
    out.mkdir(parents=True, exist_ok=True)
    (out / RESULT_FILE).write_text(json.dumps(asdict(result)))
    return result


def precisions(flags: set[str] | None = None) -> tuple[list[str], str]:
    """fp32 always; bf16 autocast where the CPU has bf16 units (else said why not)."""
    if cpu_has_bf16(flags):
        return ["fp32", "bf16"], ""
    return ["fp32"], "bf16 not run: this CPU has no bf16 units (avx512_bf16 / amx_bf16), where " \
                     "bf16 autocast is emulated and ~10x slower than fp32"


def sweep(configs: Path, out: Path, only: str | None = None, precision_list: list[str] | None = None,
          jobs: int = 2, log=print) -> dict:
    """Run every run config (or those whose path contains `only`), `jobs` at a time (on 2 cores
    two 1-thread runs outpace one 2-thread run: experiments.jobs); write out/report.json."""
    entries = discover(configs)
    chosen, note = (precision_list, "") if precision_list else precisions()
    cache = DataCache(out / "data")
    planned = []
    for entry in entries:
        if entry.role != "run" or (only and only not in entry.path):
            continue
        path = configs / entry.path
        overrides = overrides_for(path, entry.task, cache)
        log(f"{entry.path}: {' '.join(overrides)}")
        for precision in chosen:
            run_dir = out / "runs" / entry.path.removesuffix(".yaml").replace("/", "__") / precision
            (run_dir / RESULT_FILE).unlink(missing_ok=True)
            planned.append(Job(f"{entry.path} {precision}",
                               partial(run_one, path, entry.task, overrides, precision, run_dir, entry.path),
                               run_dir.with_suffix(".log")))
    results = []

    def done(job: Job, seconds: float) -> None:
        result = json.loads((job.log.with_suffix("") / RESULT_FILE).read_text())
        log(f"{job.title}: {'ok' if result['ok'] else 'FAILED'} in {result['seconds']:.1f} s"
            + (f": {result['error']} (log: {job.log})" if result["error"] else ""))
        results.append(result)

    start = time.perf_counter()
    run_jobs(sorted(planned, key=lambda j: TASK_ORDER.index(j.action.args[1])), jobs, done)
    report = {"precisions": chosen, "note": note, "jobs": jobs, "data": str(cache.root),
              "wall_seconds": round(time.perf_counter() - start, 1),
              "entries": [asdict(e) for e in entries], "results": sorted(results, key=lambda r: r["config"])}
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return report


def summary(report: dict) -> list[str]:
    """The report as markdown: per config its overrides (the generated data's folder as $DATA),
    each precision's seconds and result; the slowest five runs; what was not run as a config."""
    data, precisions_run = report.get("data", ""), report["precisions"]
    by_config = {}
    for r in report["results"]:
        by_config.setdefault(r["config"], {})[r["precision"]] = r
    lines = ["| config | overrides | " + " | ".join(f"{p} s" for p in precisions_run) + " | result |",
             "|---|---|" + "---:|" * len(precisions_run) + "---|"]
    for config, runs in sorted(by_config.items()):
        first = next(iter(runs.values()))
        overrides = " ".join(first["overrides"])
        overrides = overrides.replace(data, "$DATA") if data else overrides
        seconds = " | ".join(f"{runs[p]['seconds']:.1f}" if p in runs else "-" for p in precisions_run)
        failed = [f"{p}: {r['error']}" for p, r in runs.items() if not r["ok"]]
        result = "ok" if not failed else "FAILED " + "; ".join(failed)
        lines.append(f"| {config} | `{overrides}` | {seconds} | {result} |")
    slowest = sorted(report["results"], key=lambda r: -r["seconds"])[:5]
    lines += ["", "Slowest: " + ", ".join(f"{r['config']} {r['precision']} {r['seconds']:.0f} s"
                                         for r in slowest)]
    lines += ["", *(f"- {e['path']} ({e['role']}): {e['note']}" for e in report["entries"] if e["note"])]
    if report["note"]:
        lines += ["", report["note"]]
    return lines
