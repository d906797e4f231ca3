"""Draw a detector's predictions (and the ground truth, where known) on images.

    python tools/visualize.py --config configs/detection/paper/voc0712_r101_c4.yaml \\
        --checkpoint outputs/voc07_r101_c4/checkpoints/last.pth [--images DIR] [--num 8] [--out DIR]

Without --images: the first --num images of the config's validation set, ground truth in white.
With --images: any folder of images (predictions only); class names still come from the
config's validation annotations, or are numbered when only model.num_classes is set.
"""

import argparse
from pathlib import Path

from detection import load_detection_config
from detection.visualize import visualize_checkpoint
from engine.cli import run_tool


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--images", type=Path, help="a folder of images (default: the val set)")
    parser.add_argument("--num", type=int, default=8, help="images drawn")
    parser.add_argument("--score", type=float, default=0.5, help="lowest score drawn")
    parser.add_argument("--top", type=int, default=0, help="draw at most this many per image, best first")
    parser.add_argument("--scale", type=int, default=1, help="enlarge small images this many times")
    parser.add_argument("--out", type=Path, help="default: <output_dir>/visualize")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    cfg = load_detection_config(args.config, args.overrides, training=False)
    out = args.out or Path(cfg.output_dir) / "visualize"
    try:
        written = visualize_checkpoint(cfg, args.checkpoint, out, images=args.images, num=args.num,
                                       score_threshold=args.score, top=args.top, scale=args.scale)
    except FileNotFoundError as error:
        parser.error(str(error))
    print(f"written {len(written)} images to {out}")


if __name__ == "__main__":
    run_tool(main)
