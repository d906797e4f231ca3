"""Pretrain a backbone on image classification from a YAML config and key=value overrides.

    python tools/pretrain.py --config configs/classification/cifar10_resnet20.yaml [key=value ...]
    accelerate launch --multi_gpu --num_processes 8 tools/pretrain.py --config ... [key=value ...]
"""

from classification.pretrain import main
from engine.cli import run_tool

if __name__ == "__main__":
    run_tool(main)
