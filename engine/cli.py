"""The library's entry points (`python -m classification.pretrain`, `python -m detection.train`):
a config file and key=value overrides in, a trained run out, its last metrics printed."""

import argparse

from .metrics import format_metrics


def train_from_command_line(description: str, load_config, train, argv=None) -> None:
    """Parse `--config FILE key=value ...`, train `load_config(file, overrides)`, print metrics."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", required=True, help="YAML experiment file")
    parser.add_argument("overrides", nargs="*", help="key=value, e.g. optim.lr=0.05 train.batch_size=64")
    args = parser.parse_args(argv)
    metrics = train(load_config(args.config, args.overrides))
    if metrics:
        print(format_metrics(metrics))
