"""Benchmarks (not tests).

    python tools/benchmark.py backbone         # our resnet50 training step vs torchvision's
    python tools/benchmark.py classification   # training and loader images/s on this machine
"""

import argparse
from pathlib import Path

import torch
import torchvision

from backbones import create_backbone
from engine.benchmark import compare_steps, loader_throughput, make_train_step


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


def classification(args) -> None:
    from classification.data import ClassificationDataset, SyntheticImages, decode_all, scan_image_folder
    from classification.task import ClassificationTask
    from classification.transforms import build_transform

    print(f"{torch.get_num_threads()} threads")
    for name, batch, size in (("cifar_resnet20", 128, 32), ("resnet50", 32, 224)):
        classes = 10 if size == 32 else 1000
        images, labels = torch.randn(batch, 3, size, size), torch.randint(0, classes, (batch,))
        steps = {}
        for channels_last in (False, True):
            model = create_backbone(name, num_classes=classes)
            x = images
            if channels_last:
                model = model.to(memory_format=torch.channels_last)
                x = images.contiguous(memory_format=torch.channels_last)
            steps[f"channels_last={channels_last}"] = make_train_step(model, x, labels)
        repeats = args.repeats if size == 32 else max(3, args.repeats // 3)
        for variant, seconds in compare_steps(steps, repeats=repeats).items():
            print(f"  {name} batch {batch} {size}px fp32 {variant}: {batch / seconds:.0f} images/s")
    transform = build_transform("cifar", train=True)
    if args.data_root:
        paths, labels, classes = scan_image_folder(args.data_root)
        keep = torch.randperm(len(paths), generator=torch.Generator().manual_seed(0))[:20000].tolist()
        paths, labels = [paths[i] for i in keep], [labels[i] for i in keep]
        sets = {"files": ClassificationDataset(paths, labels, classes, transform),
                "in_memory": ClassificationDataset(decode_all(paths, "skip"), labels, classes,
                                                   transform)}
    else:
        sets = {"synthetic": SyntheticImages(20000, 32, 10, transform)}
    collate = ClassificationTask().collate
    for kind, dataset in sets.items():
        for workers in (0, 1, 2):
            rate = loader_throughput(dataset, collate, batch_size=128, num_workers=workers,
                                     batches=args.loader_batches)
            print(f"  loader alone ({kind}, cifar augmentation, {workers} workers): {rate:.0f} images/s")


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
    p = sub.add_parser("classification", help="training and data-loader images/s")
    p.add_argument("--data-root", type=Path, help="an ImageFolder split (e.g. the CIFAR-10 JPEG train)")
    p.add_argument("--repeats", type=int, default=6)
    p.add_argument("--loader-batches", type=int, default=40)
    p.set_defaults(run=classification)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
