"""Evaluate a classifier checkpoint on its config's validation split: top-1 / top-5 error.

The test protocol is the config's: centre crop, `data.ten_crop=true` (Tables 2-3), or
`data.multi_scale_test=[224,256,384,480,640]` (Table 4: fully-convolutional, flips, scores
averaged). Writes metrics.json.

    python tools/evaluate_classifier.py --config outputs/imagenet_resnet50/config.yaml \\
        --checkpoint outputs/imagenet_resnet50/checkpoints/best.pth \\
        "data.multi_scale_test=[224,256,384,480,640]" [--out DIR]
"""

import argparse
from pathlib import Path

from classification.evaluate import evaluate_checkpoint
from classification.pretrain import load_pretrain_config
from engine.cli import run_tool
from engine.metrics import format_metrics


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--out", type=Path, help="default: <output_dir>/eval")
    parser.add_argument("--batch", type=int, help="images per batch and process (multi-scale: 1)")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    cfg = load_pretrain_config(args.config, args.overrides)
    out = args.out or Path(cfg.output_dir) / "eval"
    metrics = evaluate_checkpoint(cfg, args.checkpoint, out, batch_size=args.batch)
    if metrics:
        print(format_metrics(metrics))
        print(f"written {out / 'metrics.json'}")


if __name__ == "__main__":
    run_tool(main)
