"""Run one of the project's benchmarks (not tests) and print its side-by-side figures.

    python bench/benchmark.py backbone         # our resnet50 training step vs torchvision's
    python bench/benchmark.py classification   # training and loader images/s on this machine
    python bench/benchmark.py precision        # fp32 vs bf16 autocast; what train.precision=auto picks
    python bench/benchmark.py recipes          # the step's cost of weight EMA and AdamW vs SGD
    python bench/benchmark.py detection        # our R50-FPN vs torchvision's; C4 and VGG-16 heads
    python bench/benchmark.py mask-rcnn        # our Mask R-CNN R50-FPN vs torchvision's; C4 mask cost
    python bench/benchmark.py miou-eval        # mIoU evaluation images/s, VOC-val-sized
    python bench/benchmark.py coco-eval        # faster-coco-eval vs pycocotools, COCO-sized
    python bench/benchmark.py cifar-epoch --data-root data/cifar10-jpeg   # vs a reference loop
    python bench/benchmark.py cifar-loop       # the trainer's images/s against the bare step's
    python bench/benchmark.py probe-cost       # train.probe_every's cost (Fig. 7 / Sec. 4.1 probes)
    python bench/benchmark.py imagenet-input   # ImageNet input pipelines: before, now, torchvision
    python bench/benchmark.py jpeg-decode      # TorchCodec's vs torchvision's JPEG decoder
"""

import argparse
from pathlib import Path

import benchmarks
import input_benchmark
from engine.cli import run_tool


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("backbone", help="our model's training step vs torchvision's")
    p.add_argument("--model", default="resnet50")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--channels-last", action="store_true")
    p.set_defaults(run=benchmarks.backbone)
    p = sub.add_parser("precision", help="fp32 vs bf16 autocast training steps; what auto picks")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=6)
    p.set_defaults(run=benchmarks.precision)
    p = sub.add_parser("recipes", help="training step cost of EMA and AdamW against SGD")
    p.add_argument("--model", default="cifar_resnet20")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=8)
    p.set_defaults(run=benchmarks.recipes)
    p = sub.add_parser("classification", help="training and data-loader images/s")
    p.add_argument("--data-root", type=Path, help="an ImageFolder split (e.g. the CIFAR-10 JPEG train)")
    p.add_argument("--repeats", type=int, default=6)
    p.add_argument("--loader-batches", type=int, default=40)
    p.set_defaults(run=benchmarks.classification)
    for name, run, what in (("detection", benchmarks.detection, "detector"),
                            ("mask-rcnn", benchmarks.mask_rcnn, "Mask R-CNN")):
        p = sub.add_parser(name, help=f"{what} training iteration and inference latency")
        p.add_argument("--size", type=int, default=512)
        p.add_argument("--batch", type=int, default=2)
        p.add_argument("--repeats", type=int, default=3)
        p.add_argument("--rois", type=int, default=64, help="box_batch_size_per_image, for all models")
        p.set_defaults(run=run)
    p = sub.add_parser("miou-eval", help="mIoU evaluation throughput, VOC-val-sized")
    p.add_argument("--images", type=int, default=1449)
    p.add_argument("--classes", type=int, default=21)
    p.add_argument("--repeats", type=int, default=3)
    p.set_defaults(run=benchmarks.miou_eval)
    p = sub.add_parser("coco-eval", help="evaluation time of both COCO backends")
    p.add_argument("--images", type=int, default=5000)
    p.set_defaults(run=benchmarks.coco_eval)
    p = sub.add_parser("cifar-epoch", help="one CIFAR epoch: toolkit vs a reference loop")
    p.add_argument("--data-root", type=Path, default=Path("data/cifar10-jpeg"))
    p.add_argument("--config", type=Path,
                   default=Path("configs/classification/cifar10_resnet20_short.yaml"))
    p.add_argument("--workers", type=int, default=2, help="the reference loop's loader workers")
    p.set_defaults(run=benchmarks.cifar_epoch)
    p = sub.add_parser("cifar-loop", help="the trainer's images/s beside the bare step's")
    p.add_argument("--data-root", type=Path, default=Path("data/cifar10-jpeg"))
    p.add_argument("--iterations", type=int, default=150)
    p.set_defaults(run=benchmarks.cifar_loop)
    p = sub.add_parser("probe-cost", help="train.probe_every's cost: images/s off, every 10, every step")
    p.add_argument("--data-root", type=Path, default=Path("data/cifar10-jpeg"))
    p.add_argument("--model", default="cifar_resnet56")
    p.add_argument("--iterations", type=int, default=100)
    p.set_defaults(run=benchmarks.probe_cost)
    p = sub.add_parser("imagenet-input", help="ImageNet training input pipelines, images/s")
    p.add_argument("--images", type=int, default=512, help="generated 473x372 q90 JPEGs (or real ones used)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--real", type=Path, help="a folder of real photos (JPEG) to use instead")
    p.set_defaults(run=input_benchmark.imagenet_input)
    p = sub.add_parser("autocast-fallbacks", help="the R101-C4 step in fp32 and bf16; the fp32 ops' share")
    p.add_argument("--repeats", type=int, default=3)
    p.set_defaults(run=benchmarks.autocast_fallbacks)
    p = sub.add_parser("jpeg-decode", help="TorchCodec's and torchvision's JPEG decoders, images/s")
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--real", type=Path, help="a folder of real photos (JPEG) to use instead")
    p.set_defaults(run=input_benchmark.jpeg_decoders)
    options = vars(parser.parse_args(argv))
    run = options.pop("run")
    options.pop("command")
    run(**options)


if __name__ == "__main__":
    run_tool(main)
