"""Run a trained detector, classifier or segmenter (any registered task) on your images.

    python tools/predict.py --config outputs/my_detector/config.yaml \\
        --checkpoint outputs/my_detector/checkpoints/last.pth photos/ [more.jpg "shots/*.png"] \\
        [--out predictions/] [--score 0.5] [--batch 4] [--task detection|classification|segmentation] \
        [key=value ...]

Writes <out>/predictions.json (detections in COCO results format with `image_id` = the file's
name; or each image's top-5 classes; or the share of each class's pixels) and a PNG per image
(boxes, class names, scores and masks drawn; or the class mask). Images of any size and mode
(grey, RGBA, palette, 16-bit) are read upright by their EXIF orientation; an unreadable file is
reported and skipped. The class names come from the weights file (older files: the config's data).
A --score below the model's own threshold (model.options.box_score_thresh) lowers it; key=value
arguments override the config, as in every tool.
"""

import argparse
from pathlib import Path

from engine.cli import run_tool
from engine.tasks import available_tasks, load_task_config, predict_run


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--config", required=True, help="the run's config (its config.yaml)")
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("images", nargs="+", help="image files, folders or glob patterns; key=value")
    parser.add_argument("--out", type=Path, default=Path("predictions"))
    parser.add_argument("--score", type=float, help="detectors: lowest detection score kept (default 0.5)")
    parser.add_argument("--batch", type=int, default=1, help="images per forward pass")
    parser.add_argument("--task", choices=available_tasks(), help="default: what the config describes")
    args = parser.parse_args(argv)
    overrides = [a for a in args.images if "=" in a and not Path(a).exists()]
    images = [a for a in args.images if a not in overrides]
    if not images:
        parser.error("no images given (only key=value overrides)")
    task = args.task or load_task_config(args.config, overrides=overrides)[0]
    if args.score is not None and task != "detection":
        parser.error(f"--score is for detectors; {args.config} is a {task} config")
    options = {} if args.score is None else {"score": args.score}
    predict_run(args.config, args.checkpoint, images, args.out, batch=args.batch, task=task,
                overrides=overrides, **options)


if __name__ == "__main__":
    run_tool(main)
