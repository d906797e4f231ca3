"""Run a trained detector, classifier or segmenter on your images.

    python tools/predict.py --config outputs/my_detector/config.yaml \\
        --checkpoint outputs/my_detector/checkpoints/last.pth photos/ [more.jpg "shots/*.png"] \\
        [--out predictions/] [--score 0.5] [--batch 4] [--task detection|classification|segmentation]

Writes <out>/predictions.json (detections in COCO results format with `image_id` = the file's
name; or each image's top-5 classes; or the share of each class's pixels) and a PNG per image
(boxes, class names, scores and masks drawn; or the class mask). Images of any size and mode
(grey, RGBA, palette, 16-bit) are read upright by their EXIF orientation; an unreadable file is
reported and skipped.
"""

import argparse
from pathlib import Path

from engine.cli import run_tool
from experiments.predict import predict
from experiments.tasks import TASKS


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--config", required=True, help="the run's config (its config.yaml)")
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("images", nargs="+", help="image files, folders or glob patterns")
    parser.add_argument("--out", type=Path, default=Path("predictions"))
    parser.add_argument("--score", type=float, default=0.5, help="lowest detection score kept")
    parser.add_argument("--batch", type=int, default=1, help="images per forward pass")
    parser.add_argument("--task", choices=TASKS, help="default: what the config describes")
    args = parser.parse_args(argv)
    predict(args.config, args.checkpoint, args.images, args.out, score=args.score, batch=args.batch,
            task=args.task)


if __name__ == "__main__":
    run_tool(main)
