"""Benchmarks (not tests). `backbone`: our resnet50 training step against torchvision's."""

import argparse

import torch
import torchvision

from backbones import create_backbone
from engine.benchmark import compare_steps, make_train_step


def backbone(args) -> None:
    torch.manual_seed(0)
    images = torch.randn(args.batch, 3, args.size, args.size)
    labels = torch.randint(0, 1000, (args.batch,))
    ours = create_backbone(args.model)
    reference = getattr(torchvision.models, args.model)()
    if args.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
        ours, reference = (m.to(memory_format=torch.channels_last) for m in (ours, reference))
    medians = compare_steps(
        {"ours": make_train_step(ours, images, labels),
         "torchvision": make_train_step(reference, images, labels)},
        repeats=args.repeats,
    )
    print(f"{args.model} training step, batch {args.batch}, {args.size}px, "
          f"{torch.get_num_threads()} threads, channels_last={args.channels_last}")
    for name, seconds in medians.items():
        print(f"  {name:12s} {seconds:.3f} s/step  {args.batch / seconds:.1f} images/s")
    print(f"  ratio ours/torchvision: {medians['ours'] / medians['torchvision']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("backbone", help="our model's training step vs torchvision's")
    p.add_argument("--model", default="resnet50")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--channels-last", action="store_true")
    p.set_defaults(run=backbone)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
