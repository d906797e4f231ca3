"""Train a Faster R-CNN or Mask R-CNN detector (model.kind) from a YAML config and overrides.

    python tools/train_detector.py --config configs/detection/paper/coco2014_r101_c4.yaml [key=value ...]
    accelerate launch --multi_gpu --num_processes 8 tools/train_detector.py --config ... [key=value ...]
"""

from detection.train import main
from engine.cli import run_tool

if __name__ == "__main__":
    run_tool(main)
