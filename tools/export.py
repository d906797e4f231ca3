"""Export a trained classifier or detector, or a bare registry backbone, to ONNX (checked).

    python tools/export.py --config outputs/my_detector/config.yaml \\
        --checkpoint outputs/my_detector/checkpoints/last.pth --out detector.onnx [--height 800 --width 800]
    python tools/export.py --config outputs/my_classifier/config.yaml --checkpoint ... --out net.onnx
    python tools/export.py --backbone resnet50 [--weights resnet50.pth] [--size 224] --out resnet50.onnx

Classifiers take a dynamic batch of NCHW images (normalised as in training) and give logits;
detectors take one float CHW image in [0, 1] of a fixed size and give boxes, labels, scores (and
masks). The file is run by onnxruntime against PyTorch before it is written (logits to 1e-4,
boxes to 1e-3 px; the max abs difference is printed). A task without an exporter says so.
Needs the `export` extra: pip install -e '.[export]'.
"""

import argparse
from pathlib import Path

from classification.export import export_backbone
from engine.cli import run_tool
from engine.tasks import available_tasks, export_run


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--config", help="a run's config (its config.yaml)")
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--backbone", help="a registry name, instead of --config")
    parser.add_argument("--weights", type=Path, help="with --backbone: its weights")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--size", type=int, help="classifiers: the check's image side")
    parser.add_argument("--height", type=int, help="detectors: the fixed input height")
    parser.add_argument("--width", type=int, help="detectors: the fixed input width")
    parser.add_argument("--task", choices=available_tasks(), help="default: what the config describes")
    parser.add_argument("overrides", nargs="*", help="key=value: the config's, as in every tool")
    args = parser.parse_args(argv)
    if bool(args.backbone) == bool(args.config):
        parser.error("give --config (with --checkpoint) or --backbone")
    if args.config and not args.checkpoint:
        parser.error("--config needs --checkpoint")
    if args.backbone and args.overrides:
        parser.error("key=value overrides are a config's: give --config")
    if args.backbone:
        report = export_backbone(args.backbone, args.weights, args.out, args.size)
    else:
        report = export_run(args.config, args.checkpoint, args.out, task=args.task, overrides=args.overrides,
                            size=args.size, height=args.height, width=args.width)
    print(f"written {args.out}: checked with onnxruntime against PyTorch: {report}")


if __name__ == "__main__":
    run_tool(main)
