"""Train an FCN or DeepLabV3 segmenter from a YAML config and key=value overrides.

    python tools/train_segmentation.py --config configs/segmentation/voc12_fcn_r50.yaml [key=value ...]
    accelerate launch --multi_gpu --num_processes 8 tools/train_segmentation.py --config ... [key=value ...]
"""

from engine.cli import run_tool
from segmentation.train import main

if __name__ == "__main__":
    run_tool(main)
