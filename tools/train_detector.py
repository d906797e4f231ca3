"""Train a Faster R-CNN detector.

    python tools/train_detector.py --config configs/detection/coco_faster_rcnn_r101_c4.yaml [key=value ...]
    accelerate launch --multi_gpu --num_processes 8 tools/train_detector.py --config ... [key=value ...]
"""

import argparse

from detection import load_detection_config, train_detector


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("overrides", nargs="*", help="key=value, e.g. data.train_images=/coco/train2017")
    args = parser.parse_args(argv)
    metrics = train_detector(load_detection_config(args.config, args.overrides))
    if metrics:
        print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()))


if __name__ == "__main__":
    main()
