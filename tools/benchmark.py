"""Benchmarks (not tests).

    python tools/benchmark.py backbone         # our resnet50 training step vs torchvision's
    python tools/benchmark.py classification   # training and loader images/s on this machine
    python tools/benchmark.py detection        # our R50-FPN vs torchvision's; C4 and VGG-16 heads
    python tools/benchmark.py coco-eval        # faster-coco-eval vs pycocotools, COCO-sized
    python tools/benchmark.py cifar-epoch --data-root data/cifar10-jpeg   # vs a reference loop
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
            print(f"  {name} batch {batch} {size}px fp32 {variant}: {batch / seconds:.1f} images/s")
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


def detection(args) -> None:
    from detection import build_faster_rcnn

    torch.manual_seed(0)
    size = args.size
    common = dict(min_size=size, max_size=size, box_batch_size_per_image=args.rois)
    images = [torch.rand(3, size, size) for _ in range(args.batch)]
    targets = [{"boxes": torch.tensor([[20.0, 30, 200, 220], [250, 100, 400, 380]]),
                "labels": torch.tensor([1, 2])} for _ in images]
    reference = torchvision.models.detection.fasterrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=91,
        norm_layer=torchvision.ops.FrozenBatchNorm2d, **common)
    for name, parameter in reference.backbone.body.named_parameters():
        if name.startswith(("conv1.", "layer1.")):  # what trainable_backbone_layers=3 freezes
            parameter.requires_grad_(False)  # (torchvision ignores it without pretrained weights)
    models = {
        "torchvision fasterrcnn_resnet50_fpn": reference,
        "ours resnet50 fpn": build_faster_rcnn("resnet50", head="fpn", num_classes=91, **common),
        "ours resnet50 c4": build_faster_rcnn("resnet50", head="c4", num_classes=91, **common),
        "ours vgg16 vgg": build_faster_rcnn("vgg16", head="vgg", num_classes=91, **common),
    }

    def train_step(model):
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3)

        def step():
            optimizer.zero_grad()
            sum(model.train()(images, targets).values()).backward()
            optimizer.step()
        return step

    def infer(model):
        def step():
            with torch.no_grad():
                model.eval()(images[:1])
        return step

    print(f"{size}px, batch {args.batch} (training), 1 image (inference), "
          f"{torch.get_num_threads()} threads, {args.rois} sampled RoIs per image")
    for kind, make in (("training iteration", train_step), ("inference latency", infer)):
        medians = compare_steps({n: make(m) for n, m in models.items()}, repeats=args.repeats)
        reference = medians["torchvision fasterrcnn_resnet50_fpn"]
        for name, seconds in medians.items():
            print(f"  {kind:18s} {name:36s} {seconds:7.3f} s  ratio to torchvision "
                  f"{seconds / reference:.3f}")


def coco_eval(args) -> None:
    import time

    import numpy as np

    from detection.evaluation import coco_evaluate

    rng = np.random.default_rng(0)
    images, annotations, results = [], [], []
    for image_id in range(1, args.images + 1):
        images.append({"id": image_id, "width": 640, "height": 480})
        for _ in range(rng.poisson(7.56)):
            w, h = rng.uniform(8, 300, 2)
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            category = int(rng.integers(1, 81))
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "iscrowd": 0,
                                "category_id": category, "bbox": [x, y, w, h], "area": w * h})
            for _ in range(3):
                jx, jy = rng.normal(0, 0.1 * w), rng.normal(0, 0.1 * h)
                results.append({"image_id": image_id, "category_id": category,
                                "bbox": [x + jx, y + jy, w, h], "score": float(rng.uniform())})
        for _ in range(rng.poisson(75)):
            w, h = rng.uniform(8, 300, 2)
            results.append({"image_id": image_id, "category_id": int(rng.integers(1, 81)),
                            "bbox": [rng.uniform(0, 600), rng.uniform(0, 440), w, h],
                            "score": float(rng.uniform())})
    gt = {"images": images, "annotations": annotations,
          "categories": [{"id": c, "name": str(c)} for c in range(1, 81)]}
    print(f"{len(images)} images, {len(annotations)} boxes, {len(results)} detections")
    outcome = {}
    for backend in ("faster_coco_eval", "pycocotools"):
        start = time.perf_counter()
        outcome[backend] = coco_evaluate(gt, results, backend)
        print(f"  {backend:17s} {time.perf_counter() - start:6.1f} s  AP {outcome[backend]['AP']:.6f}")
    same = all(abs(outcome["faster_coco_eval"][k] - outcome["pycocotools"][k]) < 1e-9
               for k in outcome["pycocotools"])
    print(f"  all twelve metrics identical: {same}")


def cifar_epoch(args) -> None:
    from classification import peer_benchmark as peer

    print(f"one epoch of cifar_resnet20 (batch 128) on {args.data_root}, "
          f"{torch.get_num_threads()} threads")
    model, seconds, images = peer.reference_epoch(args.data_root, workers=args.workers)
    rows = {"reference (torchvision ImageFolder + transforms, "
            f"{args.workers} workers)": (seconds, 0.0, images, peer.test_error(model, args.data_root))}
    model, decode, seconds, images = peer.toolkit_epoch(args.config, args.data_root)
    rows[f"toolkit ({args.config.name})"] = (seconds, decode, images,
                                             peer.test_error(model, args.data_root))
    reference = next(iter(rows.values()))[0]
    for name, (seconds, decode, images, error) in rows.items():
        print(f"  {name}: epoch {seconds:.1f} s ({images / seconds:.0f} images/s), "
              f"one-off decoding {decode:.1f} s, test error after 1 epoch {100 * error:.2f}%, "
              f"speed-up {reference / seconds:.2f}x")


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
    p = sub.add_parser("detection", help="detector training iteration and inference latency")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rois", type=int, default=64, help="box_batch_size_per_image, for all models")
    p.set_defaults(run=detection)
    p = sub.add_parser("coco-eval", help="evaluation time of both COCO backends")
    p.add_argument("--images", type=int, default=5000)
    p.set_defaults(run=coco_eval)
    p = sub.add_parser("cifar-epoch", help="one CIFAR epoch: toolkit vs a reference loop")
    p.add_argument("--data-root", type=Path, default=Path("data/cifar10-jpeg"))
    p.add_argument("--config", type=Path,
                   default=Path("configs/classification/cifar10_resnet20_short.yaml"))
    p.add_argument("--workers", type=int, default=2, help="the reference loop's loader workers")
    p.set_defaults(run=cifar_epoch)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
