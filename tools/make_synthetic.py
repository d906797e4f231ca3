"""Generate the synthetic shapes data set for detection, segmentation and classification.

COCO detection with instance masks, the semantic masks they imply (images/ + masks/ layout), and
single-shape images in the ImageFolder layout.

The same seed gives the same bytes.

    python tools/make_synthetic.py --out data/synthetic [--seed 0] [--num-train 200] [--size 128]
"""

import argparse
from pathlib import Path

from engine.cli import run_tool
from experiments.synthetic import make_synthetic


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-train", type=int, default=200)
    parser.add_argument("--num-val", type=int, default=50)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--num-cls-train", type=int, default=2000)
    parser.add_argument("--num-cls-val", type=int, default=500)
    parser.add_argument("--cls-size", type=int, default=32)
    args = parser.parse_args(argv)
    paths = make_synthetic(args.out, seed=args.seed, num_train=args.num_train, num_val=args.num_val,
                           size=args.size, num_cls_train=args.num_cls_train,
                           num_cls_val=args.num_cls_val, cls_size=args.cls_size)
    for name, path in paths.items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    run_tool(main)
