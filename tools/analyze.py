"""The paper's analysis of a trained net: Fig. 7's layer responses and Sec. 4.1's gradient norms.

    python tools/analyze.py responses --config outputs/plain56/config.yaml \
        --checkpoint outputs/plain56/final.safetensors --out outputs/analysis
    python tools/analyze.py responses --backbone cifar_resnet56 --weights resnet56.th \
        --data data/cifar10-jpeg --images 1000 --out outputs/analysis
    python tools/analyze.py gradients \
        --config outputs/plain56/config.yaml --checkpoint outputs/plain56/final.safetensors \
        --config outputs/plain56/config.yaml --checkpoint init --out outputs/analysis

responses: the std of every 3x3 layer's output after its BN, before ReLU or the addition, on the
test images (the run's validation split; --images N: a seeded N of them), one line per net in
<out>/responses.png (by layer index, and sorted) and the numbers in <out>/responses.json.
gradients: the norm of the loss gradient with respect to each layer's weights and each block's
output on a few training batches, at the weights given, in <out>/gradients.{png,json}.
Several nets in one call (repeat --config/--checkpoint, or --backbone/--weights); a later call into
the same --out adds its nets to the figure. Runs under `accelerate launch` too.
"""

import argparse
from pathlib import Path

from classification.analysis import process_state
from engine.cli import run_tool
from experiments.analysis import analyze, subjects


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("kind", choices=("responses", "gradients"))
    parser.add_argument("--config", action="append", help="a classification run's config.yaml")
    parser.add_argument("--checkpoint", action="append", type=Path,
                        help="its checkpoint or weights file; `init`: the net as initialised")
    parser.add_argument("--backbone", action="append", help="a registry name (with --weights)")
    parser.add_argument("--weights", action="append", type=Path, help="a whole classifier's file")
    parser.add_argument("--data", action="append", type=Path,
                        help="ImageFolder split, folder with train/ and test/ (or val/), or CIFAR batches")
    parser.add_argument("--name", action="append", help="each net's label (default: its backbone)")
    parser.add_argument("--images", type=int, help="responses: at most this many test images")
    parser.add_argument("--batches", type=int, default=4, help="gradients: training batches")
    parser.add_argument("--batch-size", type=int, default=128, help="gradients: images per batch")
    parser.add_argument("--all-convs", action="store_true",
                        help="every convolution (1x1s, the 7x7 stem, projections), not only the 3x3s")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    state = process_state()
    options = ({"images": args.images} if args.kind == "responses"
               else {"batches": args.batches, "batch_size": args.batch_size})
    nets = subjects(args.config, args.checkpoint, args.backbone, args.weights, args.data, args.name)
    entries = analyze(args.kind, nets, args.out, state=state,
                      all_convs=args.all_convs, **options)
    if state.is_main_process:
        for entry in entries:
            extra = f", stage 1 / last {entry['stage_ratio']:.3f}" if "stage_ratio" in entry else ""
            print(f"{entry['net']}: {len(entry['layers'])} layers{extra}")
        print(f"written {args.out / (args.kind + '.json')} and {args.out / (args.kind + '.png')}")


if __name__ == "__main__":
    run_tool(main)
