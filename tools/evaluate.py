"""Evaluate a detector checkpoint on its config's validation set: COCO and VOC metrics.

Writes detections.json (COCO results), metrics.json (with every class's AP, AP50, AR100 and VOC
AP50) and pr_curves.png (precision/recall of the best and worst five classes); COCO metrics by
faster-coco-eval, or --backend pycocotools (the reference), and VOC mAP@0.5. --per-class also
prints the per-class table.

    python tools/evaluate.py --config configs/detection/paper/coco2014_r101_c4.yaml \\
        --checkpoint outputs/coco_r101_c4/checkpoints/last.pth [--out DIR] [key=value ...]
"""

import argparse
import json
from pathlib import Path

from detection import load_detection_config
from detection.evaluate import evaluate_checkpoint
from engine.cli import run_tool
from engine.metrics import format_metrics
from experiments.detection_table import per_class_table


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--backend", choices=("faster_coco_eval", "pycocotools"))
    parser.add_argument("--out", type=Path, help="default: <output_dir>/eval")
    parser.add_argument("--per-class", action="store_true", help="print a row per class")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    overrides = list(args.overrides) + ([f"eval.backend={args.backend}"] if args.backend else [])
    cfg = load_detection_config(args.config, overrides, training=False)
    out = args.out or Path(cfg.output_dir) / "eval"
    metrics = evaluate_checkpoint(cfg, args.checkpoint, out)
    if metrics:
        print(format_metrics(metrics))
        if args.per_class:
            print(per_class_table(json.loads((out / "metrics.json").read_text())["per_class"]), end="")
        print(f"written {out / 'metrics.json'}, {out / 'detections.json'} and {out / 'pr_curves.png'}")


if __name__ == "__main__":
    run_tool(main)
