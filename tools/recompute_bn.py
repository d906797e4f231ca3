"""Recompute a classifier's BN statistics over its training set, as the paper did for detection.

Appendix A: BN statistics "computed on the ImageNet training set" after pretraining, then fixed.
Every BN layer gets its population mean and variance under the test transform, written as a new
backbone file that records it.

    python tools/recompute_bn.py --config outputs/imagenet_resnet101/config.yaml \\
        --checkpoint outputs/imagenet_resnet101/checkpoints/best.pth \\
        --out outputs/imagenet_resnet101/backbone_bn.safetensors
    # then: tools/train_detector.py --config configs/detection/paper/coco2014_r101_c4.yaml \\
    #           model.backbone_weights=outputs/imagenet_resnet101/backbone_bn.safetensors
"""

import argparse
from pathlib import Path

from classification.pretrain import load_pretrain_config
from classification.recompute_bn import recompute_bn
from engine.cli import run_tool


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--config", required=True, help="the pretraining run's config (config.yaml)")
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--out", type=Path, help="default: backbone_bn.safetensors beside the config")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("overrides", nargs="*", help="key=value, e.g. data.root=/data/imagenet")
    args = parser.parse_args(argv)
    cfg = load_pretrain_config(args.config, args.overrides)
    out = args.out or Path(args.config).parent / "backbone_bn.safetensors"
    meta = recompute_bn(cfg, args.checkpoint, out, batch_size=args.batch, num_workers=args.workers)
    print(f"written {out}: {meta['bn_statistics']}")


if __name__ == "__main__":
    run_tool(main)
