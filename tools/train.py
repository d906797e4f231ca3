"""Train a config of any registered task (the one its `task:` names) from YAML and key=value overrides.

    python tools/train.py --config configs/detection/paper/coco2014_r101_c4.yaml [key=value ...]
    accelerate launch --multi_gpu --num_processes 8 tools/train.py --config ... [key=value ...]

The same as the task's own tool (tools/pretrain.py, train_detector.py, train_segmentation.py);
a task of your own trains here once its package registers it (engine.tasks.register_task).
"""

import argparse

from engine.cli import run_tool
from engine.logs import process_rank
from engine.metrics import format_metrics
from engine.tasks import load_task_config, train


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--config", required=True, help="YAML experiment file")
    parser.add_argument("overrides", nargs="*", help="key=value, e.g. optim.lr=0.05 train.batch_size=64")
    args = parser.parse_args(argv)
    _, cfg = load_task_config(args.config, overrides=args.overrides, training=True)
    metrics = train(cfg)
    if metrics and process_rank()[0] == 0:  # once per job
        print(format_metrics(metrics))


if __name__ == "__main__":
    run_tool(main)
