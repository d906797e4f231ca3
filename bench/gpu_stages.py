"""The stages of the GPU check (`experiments.gpu_check`), each run in its own interpreter:

    python -m bench/gpu_stages.py <a-f> --out DIR [--cpu]

A stage writes DIR/<stage>.json: the device it ran on, its tables, its figures, notes and the
files it made (relative to DIR). `--cpu` runs the same code at toy size on the CPU.
"""

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tarfile
from importlib.metadata import version
from pathlib import Path

import torch

from experiments.paths import CONFIGS, REPO

CIFAR_JPEG = "cifar10-jpeg.tar.xz"  # the CIFAR-10 JPEG copy: data/ (carried) or ../shared/data/


class Result:
    """What a stage found, written as <stage>.json."""

    def __init__(self, device: str):
        self.data = {"device": device, "tables": [], "markdown": [], "figures": {}, "notes": [], "files": []}

    def table(self, title: str, header: list, rows: list) -> None:
        self.data["tables"].append({"title": title, "header": header, "rows": rows})

    def markdown(self, text: str) -> None:
        """A block of the stage's own report (tables and all), shown as written."""
        self.data["markdown"].append(text)

    def figure(self, **values) -> None:
        self.data["figures"].update(values)

    def note(self, text: str) -> None:
        self.data["notes"].append(text)

    def file(self, path: Path, out: Path) -> None:
        self.data["files"].append(str(Path(path).relative_to(out)))


def device_name(cpu: bool) -> str:
    if cpu:
        from experiments.machine import machine
        return machine().split(";")[0]
    return torch.cuda.get_device_name(0)


def sync(cpu: bool):
    return (lambda: None) if cpu else torch.cuda.synchronize


# ---- a. environment ------------------------------------------------------------------------------
def environment(out: Path, cpu: bool, result: Result) -> None:
    from engine.precision import cpu_has_bf16, resolve_precision

    device = "cpu" if cpu else "cuda"
    rows = [["python", platform.python_version()], ["glibc", " ".join(platform.libc_ver())]]
    rows += [[name, version(name)] for name in ("torch", "torchvision", "timm", "accelerate")]
    if cpu:
        rows += [["device", device_name(cpu)], ["bf16 units", str(cpu_has_bf16())]]
    else:
        props = torch.cuda.get_device_properties(0)
        rows += [["GPU", props.name], ["GPU memory", f"{props.total_memory / 2**30:.0f} GiB"],
                 ["multiprocessors", str(props.multi_processor_count)], ["driver", _driver()],
                 ["CUDA (torch)", str(torch.version.cuda)], ["cuDNN", str(torch.backends.cudnn.version())],
                 ["bf16 supported", str(torch.cuda.is_bf16_supported())]]
    rows.append(["train.precision=auto picks", resolve_precision("auto", device)])
    result.table("Environment", ["what", "value"], rows)
    freeze = subprocess.run([sys.executable, "-m", "pip", "list", "--format=freeze"],
                            capture_output=True, text=True).stdout
    (out / "pip-freeze.txt").write_text(freeze)
    result.file(out / "pip-freeze.txt", out)
    result.note("pip-freeze.txt is this node's package list: `make wheelhouse INSTALLED=<it>`.")


def _driver() -> str:
    if not shutil.which("nvidia-smi"):
        return "unknown (no nvidia-smi)"
    done = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                          capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


# ---- b. the demo ---------------------------------------------------------------------------------
def demo(out: Path, cpu: bool, result: Result) -> None:
    from experiments.demo import DEMO_CONFIG, SMOKE_CONFIG, run_demo

    command = "python tools/demo.py" + (" --smoke" if cpu else "")
    lines, report, timings = run_demo(SMOKE_CONFIG if cpu else DEMO_CONFIG, out / "demo", command)
    result.figure(demo_minutes=timings.this_run / 60)
    result.markdown("\n".join(lines))
    result.file(report, out)
    for picture in ("pretrain_curves.png", "visualize/side_by_side.png"):
        result.file(out / "demo" / picture, out)


# ---- c. predict, export, segmentation ------------------------------------------------------------
def predict_export_segment(out: Path, cpu: bool, result: Result) -> None:
    """What tools/predict.py, tools/export.py, tools/train_segmentation.py and tools/evaluate.py
    call, on the demo's residual detector and its semantic masks."""
    from PIL import Image

    from engine.tasks import export_run, predict_run
    from experiments.demo import DEMO_CONFIG, SMOKE_CONFIG, residual_detector_dir

    run = residual_detector_dir(SMOKE_CONFIG if cpu else DEMO_CONFIG, out / "demo")
    config, checkpoint = run / "config.yaml", run / "checkpoints" / "last.pth"
    images = sorted((out / "demo" / "data" / "detection" / "val").glob("*.png"))[:4]
    predict_run(config, checkpoint, [str(p) for p in images], out / "predict", score=0.05, batch=2)
    result.file(out / "predict" / "predictions.json", out)
    width, height = Image.open(images[0]).size
    export_run(config, checkpoint, out / "detector.onnx", height=height, width=width)
    result.note(f"tools/export.py: {run.name} at {width}x{height}, checked against onnxruntime")
    result.figure(**_segmentation(out / "segmentation", out / "demo" / "data" / "segmentation", cpu))


def _segmentation(run: Path, data: Path, cpu: bool) -> dict:
    """The smoke segmenter trained on the demo's semantic masks, then evaluated from its checkpoint."""
    from engine.tasks import load_task_config, task_spec
    from experiments.synthetic import SEGMENTATION_CLASSES
    from segmentation.train import load_segmentation_config, train_segmenter

    cfg = load_segmentation_config(CONFIGS / "segmentation" / "smoke.yaml", [
        f"output_dir={run}", f"data.root={data}", f"data.classes=[{','.join(SEGMENTATION_CLASSES)}]",
        "resume=auto", f"train.precision={'fp32' if cpu else 'auto'}",
        f"schedule.total={20 if cpu else 300}"])
    train_segmenter(cfg)
    task, saved = load_task_config(run / "config.yaml")
    metrics = task_spec(task).evaluate(saved, run / "checkpoints" / "last.pth", run / "eval")
    return {f"segmentation_{k}": v for k, v in metrics.items() if "/" not in k}


# ---- d. throughput -------------------------------------------------------------------------------
def throughput(out: Path, cpu: bool, result: Result) -> None:
    from gpu_throughput import classification_rows, detection_rows

    header, rows, notes = classification_rows(cpu, sync(cpu))
    result.table("ResNet-50 training, bf16 autocast, channels-last (ours vs torchvision, one loop)",
                 header, rows)
    header, rows = detection_rows(cpu, sync(cpu))
    result.table("Faster R-CNN R50-FPN training iteration (ours vs torchvision)", header, rows)
    for text in notes:
        result.note(text)


# ---- e. the ImageNet input path ------------------------------------------------------------------
def input_path(out: Path, cpu: bool, result: Result) -> None:
    from input_benchmark import describe, device_decode, input_files, input_table

    workers, count = (1, 16) if cpu else (16, 512)
    paths = input_files(count, out / "jpegs")
    header, rows = input_table(paths, workers, batch=8 if cpu else 32, repeats=1 if cpu else 3)
    result.table(f"ImageNet training input on the CPU cores ({describe(paths, False)})", header, rows)
    device = "cpu" if cpu else "cuda"
    rate = device_decode(paths, device, batch=8 if cpu else 64, repeats=1 if cpu else 3)
    result.table("data.decode_on_device", ["pipeline", "img/s"],
                 [[f"files read and draws made in 1 thread; decode_jpeg(device={device!r}), crop, flip, "
                   f"lighting, normalise on {device}", f"{rate:.0f}"]])
    result.figure(device_decode_images_per_s=rate)


# ---- f. Table 6, first real rows -----------------------------------------------------------------
def table6(out: Path, cpu: bool, result: Result) -> None:
    from engine.metrics import read_metrics
    from experiments.depth_study import reproduce_cifar10

    # The whole set on the device, the guard looking every 100 iterations: no per-step host syncs
    fast = ["data.resident=true", "train.channels_last=true"]
    if cpu:
        root = _toy_cifar(out / "toy_cifar")
        overrides = [f"data.root={root}", "schedule.total=6", "schedule.milestones=[3,5]",
                     "train.batch_size=16", "train.eval_every=6", "train.log_every=3", "train.ckpt_every=6",
                     "train.check_finite_every=3", *fast]
    else:
        overrides = [f"data.root={cifar_jpeg(REPO / 'data')}", "train.check_finite_every=100", *fast]
    report, failed = reproduce_cifar10([20], "paper", out / "cifar10_runs", out / "table6",
                                       jobs=2, overrides=overrides,
                                       note="Trained by `make gpu-check` (stage f).")
    result.markdown("\n".join(line for line in report.read_text().splitlines() if line.startswith("|")))
    for run in ("plain20", "resnet20"):
        rates = [r["images_per_s"] for r in read_metrics(out / "cifar10_runs" / run) if "images_per_s" in r]
        if rates:
            batch = 16 if cpu else 128
            result.figure(**{f"{run}_ms_per_iteration": 1000 * batch / sorted(rates)[len(rates) // 2]})
    result.file(report, out)
    for png in sorted((out / "table6").glob("*.png")):
        result.file(png, out)
    if failed:
        raise RuntimeError(f"runs failed: {', '.join(r.name for r in failed)}")


def _toy_cifar(root: Path) -> Path:
    """A 10-class ImageFolder of 32 px images, train and test, as the CIFAR-10 JPEG copy is laid out."""
    from PIL import Image

    rng = torch.Generator().manual_seed(0)
    for split, count in (("train", 8), ("test", 2)):
        for label in range(10):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                pixels = (torch.rand(32, 32, 3, generator=rng) * 80 + label * 17).clamp(0, 255)
                Image.fromarray(pixels.byte().numpy()).save(folder / f"{index}.jpg")
    return root


def cifar_jpeg(data: Path, shared: Path = REPO.parent / "shared" / "data") -> Path:
    """data/cifar10-jpeg, unpacked from data/ or ../shared/data/'s archive when missing."""
    folder = data / "cifar10-jpeg"
    if (folder / "train").is_dir():
        return folder
    archive = next((p for p in (data / CIFAR_JPEG, shared / CIFAR_JPEG) if p.is_file()), None)
    if archive is None:
        raise FileNotFoundError(f"the CIFAR-10 JPEG copy: neither {folder} nor {data / CIFAR_JPEG} "
                                f"(copy ../shared/data/{CIFAR_JPEG} to data/ and carry it)")
    with tarfile.open(archive) as tar:  # train/<class>/*.jpg and test/<class>/*.jpg at its top
        tar.extractall(folder, filter="data")
    if not (folder / "train").is_dir():
        raise FileNotFoundError(f"{archive} did not unpack to {folder}/train")
    return folder


STAGES = {"a": environment, "b": demo, "c": predict_export_segment, "d": throughput,
          "e": input_path, "f": table6}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("stage", choices=STAGES)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cpu", action="store_true")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    result = Result(device_name(args.cpu))
    try:
        STAGES[args.stage](args.out, args.cpu, result)
    finally:  # what a failed stage found before it failed is reported too
        (args.out / f"{args.stage}.json").write_text(json.dumps(result.data, indent=2))


if __name__ == "__main__":
    from engine.cli import run_tool

    run_tool(main)
