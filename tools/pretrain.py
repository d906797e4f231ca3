"""Pretrain a backbone on image classification.

    python tools/pretrain.py --config configs/classification/cifar10_resnet20.yaml [key=value ...]
    accelerate launch --multi_gpu --num_processes 8 tools/pretrain.py --config ... [key=value ...]
"""

import argparse

from classification.pretrain import load_pretrain_config, pretrain


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--config", required=True, help="YAML experiment file")
    parser.add_argument("overrides", nargs="*", help="key=value, e.g. optim.lr=0.05 data.root=/data")
    args = parser.parse_args(argv)
    metrics = pretrain(load_pretrain_config(args.config, args.overrides))
    if metrics:
        print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in metrics.items()))


if __name__ == "__main__":
    main()
