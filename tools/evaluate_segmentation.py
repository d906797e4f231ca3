"""Evaluate a segmenter checkpoint on its config's validation split (mIoU and per-class IoU).

Writes metrics.json: mIoU, pixel accuracy, mean class accuracy and each class's IoU.

    python tools/evaluate_segmentation.py --config configs/segmentation/voc12_fcn_r50.yaml \\
        --checkpoint outputs/voc12_fcn_r50/checkpoints/last.pth [--out DIR] [key=value ...]
    accelerate launch --num_processes 8 tools/evaluate_segmentation.py --config ... --checkpoint ...
"""

import argparse
from pathlib import Path

from engine.cli import run_tool
from engine.metrics import format_metrics
from segmentation import load_segmentation_config
from segmentation.evaluate import evaluate_checkpoint


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--out", type=Path, help="default: <output_dir>/eval")
    parser.add_argument("--batch", type=int, default=1, help="images per batch and process")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    cfg = load_segmentation_config(args.config, args.overrides, training=False)
    out = args.out or Path(cfg.output_dir) / "eval"
    metrics = evaluate_checkpoint(cfg, args.checkpoint, out, batch_size=args.batch)
    if metrics:
        print(format_metrics({k: v for k, v in metrics.items() if not k.startswith("val_IoU/")}))
        print(f"written {out / 'metrics.json'}")


if __name__ == "__main__":
    run_tool(main)
