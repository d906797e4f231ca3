"""GPU check: CUDA present, fp32 / channels-last / bf16-autocast training steps run and agree, and
their throughput. Needs only torch and torchvision (no venv on a lent GPU box)."""

import json
from pathlib import Path

import torch

from backbones import create_backbone

from .timing import compare_steps

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


def gpu_check(out: Path, *, cpu: bool = False, repeats: int = 20) -> str | None:
    """Run every case and variant, print and write the figures to `out` (JSON); returns what
    failed (no CUDA, a variant whose loss disagrees with fp32), or None."""
    if not cpu and not torch.cuda.is_available():
        return "no CUDA device: nothing to check (use --cpu for a dry run of this script)"
    device = torch.device("cpu" if cpu else "cuda")
    report = {"torch": torch.__version__, "device": "cpu" if cpu else torch.cuda.get_device_name(),
              "cuda": torch.version.cuda, "results": []}
    for name, (batch, size, classes) in (CPU_CASES if cpu else CASES).items():
        variants = {"fp32": (False, False), "fp32 channels_last": (True, False),
                    "bf16 autocast channels_last": (True, True)}
        steps, losses = {}, {}
        for label, (channels_last, bf16) in variants.items():
            steps[label], losses[label] = make_step(name, batch, size, classes, device,
                                                    channels_last, bf16)
        medians = compare_steps(steps, repeats=2 if cpu else repeats, warmup=1 if cpu else 5)
        for label, seconds in medians.items():
            first = losses[label][0]
            row = {"model": name, "batch": batch, "size": size, "variant": label,
                   "images_per_s": batch / seconds, "first_loss": first,
                   "agrees_with_fp32": abs(first - losses["fp32"][0]) < 0.05 * abs(losses["fp32"][0])}
            report["results"].append(row)
            print(f"{name:15s} {label:28s} {row['images_per_s']:9.1f} images/s  first loss "
                  f"{first:.4f}  agrees with fp32: {row['agrees_with_fp32']}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"written {out}")
    if not all(r["agrees_with_fp32"] for r in report["results"]):
        return "a precision variant's loss disagrees with fp32"
    return None
