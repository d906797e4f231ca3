"""Evaluate a trained run's checkpoint on its config's validation set, whatever its task.

Detectors: COCO and VOC metrics; writes detections.json (COCO results), metrics.json (with every
class's AP, AP50, AR100 and VOC AP50) and pr_curves.png; COCO metrics by faster-coco-eval, or
--backend pycocotools (the reference); --per-class prints the per-class table. Classifiers: top-1
and top-5 error under the config's test protocol: centre crop, `data.ten_crop=true` (Tables 2-3)
or `data.multi_scale_test=[224,256,384,480,640]` (Table 4: fully-convolutional, flips, scores
averaged). Segmenters: mIoU, pixel accuracy, mean class accuracy and each class's IoU. The task
is the one the config names (`task:`); `eval.tta` adds test-time views where the task takes them.

    python tools/evaluate.py --config configs/detection/paper/coco2014_r101_c4.yaml \\
        --checkpoint outputs/coco_r101_c4/checkpoints/last.pth [--out DIR] [key=value ...]
    python tools/evaluate.py --config outputs/imagenet_resnet50/config.yaml \\
        --checkpoint outputs/imagenet_resnet50/checkpoints/best.pth \
        "data.multi_scale_test=[224,256,384,480,640]"
    accelerate launch --num_processes 8 tools/evaluate.py --config ... --checkpoint ...
"""

import argparse
import json
from pathlib import Path

from engine.cli import run_tool
from engine.logs import process_rank
from engine.metrics import format_metrics
from engine.tasks import available_tasks, load_task_config, task_spec
from experiments.detection_table import per_class_table


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--task", choices=available_tasks(), help="default: what the config describes")
    parser.add_argument("--backend", choices=("faster_coco_eval", "pycocotools"), help="detection")
    parser.add_argument("--out", type=Path, help="default: <output_dir>/eval")
    parser.add_argument("--batch", type=int, help="images per batch and process")
    parser.add_argument("--per-class", action="store_true", help="detection: print a row per class")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    overrides = list(args.overrides) + ([f"eval.backend={args.backend}"] if args.backend else [])
    task, cfg = load_task_config(args.config, args.task, overrides)
    if task != "detection" and (args.backend or args.per_class):
        parser.error(f"--backend and --per-class are for detectors; {args.config} is a {task} config")
    out = args.out or Path(cfg.output_dir) / "eval"
    batch = {"batch_size": args.batch} if args.batch else {}
    metrics = task_spec(task).evaluate(cfg, args.checkpoint, out, **batch)
    if metrics and process_rank()[0] == 0:  # once per job
        print(format_metrics({k: v for k, v in metrics.items() if "/" not in k}))  # per-class: the file
        if args.per_class:
            summary = json.loads((out / "metrics.json").read_text())
            print(per_class_table(summary["per_class"]), end="")
            print(f"VOC07 AP50: the 11-point AP, VOC AP50: the area under the curve; IoU as "
                  f"eval.voc_convention={summary['voc_convention']}")
        print(f"written {out / 'metrics.json'}")


if __name__ == "__main__":
    run_tool(main)
