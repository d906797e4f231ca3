"""GPU check: CUDA present, fp32 / channels-last / bf16-autocast training steps run and agree, and
their throughput. Needs only torch, torchvision and this repository (no venv on a lent GPU box).

    make gpu-check                       # = python3 tools/gpu_check.py --out outputs/gpu_check.json
    python tools/gpu_check.py --cpu      # the same code path on the CPU, tiny, to check the script
"""

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run without installing

from backbones import create_backbone  # noqa: E402
from engine.benchmark import compare_steps  # noqa: E402

CASES = {"cifar_resnet20": (128, 32, 10), "resnet50": (64, 224, 1000)}
CPU_CASES = {"cifar_resnet20": (8, 32, 10)}


def make_step(name, batch, size, classes, device, channels_last, bf16):
    torch.manual_seed(0)
    model = create_backbone(name, num_classes=classes).to(device)
    images = torch.randn(batch, 3, size, size, device=device)
    labels = torch.randint(0, classes, (batch,), device=device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    losses = []

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())  # .item() synchronises, so the timing is honest
    return step, losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("outputs/gpu_check.json"))
    parser.add_argument("--cpu", action="store_true", help="dry run on the CPU")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    if not args.cpu and not torch.cuda.is_available():
        sys.exit("no CUDA device: nothing to check (use --cpu for a dry run of this script)")
    device = torch.device("cpu" if args.cpu else "cuda")
    report = {"torch": torch.__version__, "device": "cpu" if args.cpu else torch.cuda.get_device_name(),
              "cuda": torch.version.cuda, "results": []}
    for name, (batch, size, classes) in (CPU_CASES if args.cpu else CASES).items():
        variants = {"fp32": (False, False), "fp32 channels_last": (True, False),
                    "bf16 autocast channels_last": (True, True)}
        steps, losses = {}, {}
        for label, (channels_last, bf16) in variants.items():
            steps[label], losses[label] = make_step(name, batch, size, classes, device,
                                                    channels_last, bf16)
        medians = compare_steps(steps, repeats=2 if args.cpu else args.repeats, warmup=1 if args.cpu else 5)
        for label, seconds in medians.items():
            first = losses[label][0]
            row = {"model": name, "batch": batch, "size": size, "variant": label,
                   "images_per_s": batch / seconds, "first_loss": first,
                   "agrees_with_fp32": abs(first - losses["fp32"][0]) < 0.05 * abs(losses["fp32"][0])}
            report["results"].append(row)
            print(f"{name:15s} {label:28s} {row['images_per_s']:9.1f} images/s  first loss "
                  f"{first:.4f}  agrees with fp32: {row['agrees_with_fp32']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"written {args.out}")
    if not all(r["agrees_with_fp32"] for r in report["results"]):
        sys.exit("a precision variant's loss disagrees with fp32")


if __name__ == "__main__":
    main()
