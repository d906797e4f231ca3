"""Benchmarks (not tests): each prints its figures, measured side by side in one process.

`bench/benchmark.py` is their command line; docs/benchmarks.md records what they printed.
"""

import time
from pathlib import Path

import numpy as np
import torch
import torchvision

import peer_loop as peer
from backbones import create_backbone
from classification.data import ClassificationDataset, SyntheticImages, decode_all, scan_image_folder
from classification.task import ClassificationTask
from classification.transforms import build_transform
from detection import build_faster_rcnn, build_mask_rcnn, load_detector_weights
from detection.evaluation import coco_evaluate
from timing import compare_steps, loader_throughput, make_train_step


def backbone(*, model: str = "resnet50", batch: int = 16, size: int = 224, repeats: int = 7,
             channels_last: bool = False) -> None:
    """Our registry net's training step against torchvision's same-named model."""
    torch.manual_seed(0)
    images = torch.randn(batch, 3, size, size)
    labels = torch.randint(0, 1000, (batch,))
    ours = create_backbone(model)
    reference = getattr(torchvision.models, model)()
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
        ours, reference = (m.to(memory_format=torch.channels_last) for m in (ours, reference))
    medians = compare_steps(
        {"ours": make_train_step(ours, images, labels),
         "torchvision": make_train_step(reference, images, labels)},
        repeats=repeats,
    )
    print(f"{model} training step, batch {batch}, {size}px, "
          f"{torch.get_num_threads()} threads, channels_last={channels_last}")
    for name, seconds in medians.items():
        print(f"  {name:12s} {seconds:.3f} s/step  {batch / seconds:.1f} images/s")
    print(f"  ratio ours/torchvision: {medians['ours'] / medians['torchvision']:.3f}")


def precision(*, batch: int = 128, repeats: int = 6) -> None:
    """Training step images/s, fp32 against bf16 autocast (channels-last), side by side; and what
    `train.precision: auto` picks on this CPU."""
    from engine.precision import cpu_has_bf16, resolve_precision

    print(f"{torch.get_num_threads()} threads; CPU bf16 units: {cpu_has_bf16()}; "
          f"auto -> {resolve_precision('auto', 'cpu')}")
    for name in ("cifar_resnet20", "cifar_resnet56"):
        images = torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
        labels = torch.randint(0, 10, (batch,))
        steps = {}
        for dtype in ("fp32", "bf16"):
            torch.manual_seed(0)
            model = create_backbone(name).to(memory_format=torch.channels_last)
            step = make_train_step(model, images, labels)
            steps[dtype] = _autocast(step, enabled=dtype == "bf16")
        medians = compare_steps(steps, repeats=repeats)
        print(f"  {name} batch {batch} channels-last: " + ", ".join(
            f"{k} {batch / v:.0f} images/s" for k, v in medians.items())
            + f"; bf16/fp32 speed {medians['fp32'] / medians['bf16']:.2f}x")


def recipes(*, model: str = "cifar_resnet20", batch: int = 128, repeats: int = 8) -> None:
    """The training step's cost of the modern recipes' parts (bf16 autocast, channels-last):
    the paper's SGD, SGD + weight EMA every step, AdamW with no decay on norms and biases."""
    from omegaconf import OmegaConf

    from engine.config import OptimConfig
    from engine.ema import EmaConfig, build_ema
    from engine.optim import build_optimizer

    images = torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (batch,))
    steps = {}
    for name, optim, ema in (("sgd", {}, False), ("sgd + ema", {}, True),
                             ("adamw", {"name": "adamw", "no_decay": ["norm", "bias"]}, False)):
        torch.manual_seed(0)
        net = create_backbone(model).to(memory_format=torch.channels_last)
        optimizer = build_optimizer(net, OmegaConf.structured(OptimConfig(**optim)), 0.01)
        average = build_ema(net, EmaConfig(decay=0.9998)) if ema else None
        after = (lambda a=average, n=net: a.update(n)) if average is not None else None
        steps[name] = _autocast(make_train_step(net, images, labels, optimizer, after), enabled=True)
    medians = compare_steps(steps, repeats=repeats)
    print(f"{model} training step, batch {batch}, bf16 autocast, channels-last, "
          f"{torch.get_num_threads()} threads")
    for name, seconds in medians.items():
        print(f"  {name:10s} {batch / seconds:7.0f} images/s  ({seconds / medians['sgd']:.3f}x sgd's time)")


def _autocast(step, enabled: bool):
    def run():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
            step()
    return run


def classification(*, data_root: Path | None = None, repeats: int = 6, loader_batches: int = 40) -> None:
    """Training images/s (fp32, with and without channels-last) and the loader's own rate."""

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
        times = repeats if size == 32 else max(3, repeats // 3)
        for variant, seconds in compare_steps(steps, repeats=times).items():
            print(f"  {name} batch {batch} {size}px fp32 {variant}: {batch / seconds:.1f} images/s")
    transform = build_transform("cifar", train=True)
    if data_root:
        paths, labels, classes = scan_image_folder(data_root)
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
                                     batches=loader_batches)
            print(f"  loader alone ({kind}, cifar augmentation, {workers} workers): {rate:.0f} images/s")


def frozen_like_torchvision(reference):
    """Freeze conv1 and layer1, what trainable_backbone_layers=3 freezes (torchvision ignores it
    without pretrained weights), so both sides train the same parameters."""
    for name, parameter in reference.backbone.body.named_parameters():
        if name.startswith(("conv1.", "layer1.")):
            parameter.requires_grad_(False)
    return reference


def _time_detectors(models: dict, images: list, targets: list, reference: str, repeats: int) -> None:
    """Inference latency (one image) and training iteration (batch) of each model, interleaved,
    each with its ratio to `reference`. Inference first, on the models as built: after training
    steps each model keeps a different number of detections, and the heads' cost follows it."""
    def train_step(model):
        return detector_train_step(model, images, targets)

    def infer(model):
        def step():
            with torch.no_grad():
                model.eval()(images[:1])
        return step

    with torch.no_grad():
        kept = {n: len(m.eval()(images[:1])[0]["boxes"]) for n, m in models.items()}
    print("  detections kept at inference: " + ", ".join(f"{n} {k}" for n, k in kept.items()))
    for kind, make in (("inference latency", infer), ("training iteration", train_step)):
        medians = compare_steps({n: make(m) for n, m in models.items()}, repeats=repeats)
        for name, seconds in medians.items():
            print(f"  {kind:18s} {name:36s} {seconds:7.3f} s  ratio to {reference.split()[0]} "
                  f"{seconds / medians[reference]:.3f}")


def detector_train_step(model, images: list, targets: list):
    """One SGD step of a detector on a fixed batch: the sum of its losses, backward, update."""
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3)

    def step():
        optimizer.zero_grad()
        sum(model.train()(images, targets).values()).backward()
        optimizer.step()
    return step


def detection_batch(size: int, batch: int, masks: bool):
    images = [torch.rand(3, size, size) for _ in range(batch)]
    boxes = torch.tensor([[20.0, 30, 200, 220], [250, 100, 400, 380]]) * size / 512
    targets = []
    for _ in images:
        target = {"boxes": boxes, "labels": torch.tensor([1, 2])}
        if masks:  # an ellipse-ish blob inside each box
            target["masks"] = torch.zeros(2, size, size, dtype=torch.uint8)
            for k, (x0, y0, x1, y1) in enumerate(boxes.int().tolist()):
                target["masks"][k, y0 + 10:y1 - 10, x0 + 10:x1 - 10] = 1
        targets.append(target)
    return images, targets


def detection(*, size: int = 512, batch: int = 2, repeats: int = 3, rois: int = 64) -> None:
    """Training iteration and inference latency: our R50-FPN against torchvision's, and the
    paper's C4 and VGG-16 designs."""
    torch.manual_seed(0)
    common = dict(min_size=size, max_size=size, box_batch_size_per_image=rois)
    images, targets = detection_batch(size, batch, masks=False)
    reference = frozen_like_torchvision(torchvision.models.detection.fasterrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=91,
        norm_layer=torchvision.ops.FrozenBatchNorm2d, **common))
    ours = load_detector_weights(build_faster_rcnn("resnet50", head="fpn", num_classes=91, **common),
                                 reference.state_dict())  # the same weights: the same detections
    models = {
        "torchvision fasterrcnn_resnet50_fpn": reference,
        "ours resnet50 fpn": ours,
        "ours resnet50 c4": build_faster_rcnn("resnet50", head="c4", num_classes=91, **common),
        "ours vgg16 vgg": build_faster_rcnn("vgg16", head="vgg", num_classes=91, **common),
    }
    print(f"{size}px, batch {batch} (training), 1 image (inference), "
          f"{torch.get_num_threads()} threads, {rois} sampled RoIs per image")
    _time_detectors(models, images, targets, "torchvision fasterrcnn_resnet50_fpn", repeats)


def mask_rcnn(*, size: int = 512, batch: int = 2, repeats: int = 3, rois: int = 64) -> None:
    """Mask R-CNN: our R50-FPN against torchvision's maskrcnn_resnet50_fpn; and what the C4 mask
    branch costs over the C4 box-only detector. Every model keeps its 100 best detections at
    inference (score threshold 0: random weights would otherwise keep an arbitrary few), so the
    mask branch runs on 100 boxes."""
    torch.manual_seed(0)
    common = dict(min_size=size, max_size=size, box_batch_size_per_image=rois, box_score_thresh=0.0)
    images, targets = detection_batch(size, batch, masks=True)
    reference = frozen_like_torchvision(torchvision.models.detection.maskrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=91,
        norm_layer=torchvision.ops.FrozenBatchNorm2d, **common))
    print(f"{size}px, batch {batch} (training), 1 image (inference), "
          f"{torch.get_num_threads()} threads, {rois} sampled RoIs per image")
    ours = load_detector_weights(build_mask_rcnn("resnet50", head="fpn", num_classes=91, **common),
                                 reference.state_dict())  # the same weights: the same detections
    _time_detectors({"torchvision maskrcnn_resnet50_fpn": reference, "ours mask_rcnn resnet50 fpn": ours},
                    images, targets, "torchvision maskrcnn_resnet50_fpn", repeats)
    boxes_only = build_faster_rcnn("resnet50", head="c4", num_classes=91, **common)
    masks = build_mask_rcnn("resnet50", head="c4", num_classes=91, **common)
    missing = masks.load_state_dict(boxes_only.state_dict(), strict=False).missing_keys
    assert all(k.startswith("roi_heads.mask_predictor.") for k in missing), missing  # shares the rest
    _time_detectors({"ours faster_rcnn resnet50 c4": boxes_only, "ours mask_rcnn resnet50 c4": masks},
                    images, targets, "ours faster_rcnn resnet50 c4", repeats)


def miou_eval(*, images: int = 1449, classes: int = 21, repeats: int = 3) -> None:
    """mIoU evaluation throughput on a VOC-val-sized workload (1449 images of 500x375, 21 classes,
    void borders): our per-image confusion matrices (what the task gathers across processes)
    against torchvision reference's ConfusionMatrix update (one bincount over the flattened
    pair), and whether they agree."""
    from segmentation.metrics import IGNORE_INDEX, confusion_matrices, segmentation_metrics

    generator = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(0, images, 16):  # what an evaluation loop holds: argmax maps and labels
        target = torch.randint(0, classes, (16, 375, 500), generator=generator)
        target[:, ::17] = IGNORE_INDEX
        noise = torch.randint(0, classes, target.shape, generator=generator)
        pred = torch.where(torch.rand(target.shape, generator=generator) < 0.7, target % classes, noise)
        batches.append((pred, target))
    count = sum(len(p) for p, _ in batches)

    def ours():
        return sum(confusion_matrices(pred, target, classes).sum(0) for pred, target in batches)

    def reference():  # torchvision references/segmentation/utils.py ConfusionMatrix.update
        matrix = torch.zeros(classes, classes, dtype=torch.int64)
        for pred, target in batches:
            a, b = target.flatten(), pred.flatten()
            k = (a >= 0) & (a < classes)
            matrix += torch.bincount(classes * a[k].to(torch.int64) + b[k], minlength=classes**2
                                     ).reshape(classes, classes)
        return matrix

    medians = compare_steps({"ours (per image, gathered)": ours,
                             "torchvision reference": reference}, repeats=repeats)
    print(f"{count} images of 500x375, {classes} classes, {torch.get_num_threads()} threads")
    for name, seconds in medians.items():
        print(f"  {name:28s} {seconds:6.2f} s  {count / seconds:7.0f} images/s")
    same = torch.equal(ours(), reference())
    print(f"  identical confusion matrices: {same}; mIoU {segmentation_metrics(ours())['mIoU']:.4f}")


def coco_eval(*, images: int = 5000) -> None:
    """faster-coco-eval against pycocotools on a COCO-sized synthetic workload: time, and whether
    the twelve metrics are identical."""
    rng = np.random.default_rng(0)
    count, images, annotations, results = images, [], [], []
    for image_id in range(1, count + 1):
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


def cifar_epoch(*, data_root: Path, config: Path, workers: int = 2) -> None:
    """One CIFAR-10 epoch of cifar_resnet20: the toolkit's trainer against a reference loop."""
    print(f"one epoch of cifar_resnet20 (batch 128) on {data_root}, "
          f"{torch.get_num_threads()} threads")
    model, seconds, images = peer.reference_epoch(data_root, workers=workers)
    rows = {"reference (torchvision ImageFolder + transforms, "
            f"{workers} workers)": (seconds, 0.0, images, peer.test_error(model, data_root))}
    model, decode, seconds, images = peer.toolkit_epoch(config, data_root)
    rows[f"toolkit ({config.name})"] = (seconds, decode, images, peer.test_error(model, data_root))
    reference = next(iter(rows.values()))[0]
    for name, (seconds, decode, images, error) in rows.items():
        print(f"  {name}: epoch {seconds:.1f} s ({images / seconds:.0f} images/s), "
              f"one-off decoding {decode:.1f} s, test error after 1 epoch {100 * error:.2f}%, "
              f"speed-up {reference / seconds:.2f}x")


def cifar_loop(*, data_root: Path, iterations: int = 150, repeats: int = 20, rounds: int = 2) -> None:
    """The trainer's training images/s on CIFAR-10 (the loader path, and `data.resident` with the
    guard looking every 50 steps) beside the bare step's on random tensors (the same model,
    batch, precision and memory format), the bare step measured before and after the runs."""
    import tempfile

    from classification.pretrain import load_pretrain_config, pretrain
    from engine.metrics import read_metrics
    from engine.precision import resolve_precision
    from experiments.machine import machine

    bf16 = resolve_precision("auto", "cpu") == "bf16"
    config = Path(__file__).resolve().parents[1] / "configs/classification/cifar10_resnet20.yaml"

    def bare() -> float:
        torch.manual_seed(0)
        model = create_backbone("cifar_resnet20").to(memory_format=torch.channels_last)
        images = torch.randn(128, 3, 32, 32).contiguous(memory_format=torch.channels_last)
        step = _autocast(make_train_step(model, images, torch.randint(0, 10, (128,))), enabled=bf16)
        return 128 / compare_steps({"bare": step}, repeats=repeats, warmup=3)["bare"]

    def loop(*overrides) -> float:
        with tempfile.TemporaryDirectory() as out:
            pretrain(load_pretrain_config(config, [
                f"output_dir={out}", f"data.root={data_root}", f"schedule.total={iterations}",
                "schedule.milestones=[]", "train.log_every=10", "train.eval_every=100000",
                "train.ckpt_every=100000", "train.channels_last=true", *overrides]))
            rates = [r["images_per_s"] for r in read_metrics(out) if "images_per_s" in r][1:]
            return sorted(rates)[len(rates) // 2]  # the median window, the first (warm-up) left out

    variants = {"loader path (data.in_memory, data.batch_augment)": (),
                "data.resident, train.check_finite_every=50": ("data.resident=true",
                                                               "train.check_finite_every=50")}
    print(f"cifar_resnet20 batch 128, channels-last, {'bf16' if bf16 else 'fp32'}, "
          f"{torch.get_num_threads()} threads, {iterations} iterations per run; {machine()}")
    for round_ in range(rounds):  # bare, each loop, bare: each loop against the steps around it
        steps, rates = [bare()], {name: loop(*overrides) for name, overrides in variants.items()}
        steps.append(bare())
        step = sum(steps) / 2
        print(f"  round {round_ + 1}: bare step {steps[0]:.0f} before, {steps[1]:.0f} after images/s")
        for name, rate in rates.items():
            print(f"    trainer, {name}: {rate:.0f} images/s = {100 * rate / step:.0f}% of the bare step's")


def probe_cost(*, data_root: Path, model: str = "cifar_resnet56", iterations: int = 100) -> None:
    """The trainer's images/s with `train.probe_every` off, every 10 steps (a probe in each logged
    window of 10) and every step, each run twice in the order off, 10, 1, 1, 10, off after a
    discarded warm-up run, so a drift of the machine shows as a difference between the two of a
    setting."""
    import tempfile

    from classification.pretrain import load_pretrain_config, pretrain
    from engine.metrics import read_metrics
    from experiments.machine import machine

    config = Path(__file__).resolve().parents[1] / "configs/classification/cifar10_base.yaml"

    def loop(every: int) -> float:
        with tempfile.TemporaryDirectory() as out:
            pretrain(load_pretrain_config(config, [
                f"output_dir={out}", f"model.name={model}", f"data.root={data_root}",
                f"schedule.total={iterations}", "schedule.milestones=[]", "train.log_every=10",
                "train.eval_every=100000", "train.ckpt_every=100000", "train.channels_last=true",
                "train.precision=fp32", f"train.probe_every={every}"]))
            rates = [r["images_per_s"] for r in read_metrics(out) if "images_per_s" in r][1:]
            return sorted(rates)[len(rates) // 2]  # the median window, the first (warm-up) left out

    order = (0, 10, 1, 1, 10, 0)
    loop(0)  # warm-up, discarded: the first run in a process measured 30% slower
    rates = {}
    for every in order:
        rates.setdefault(every, []).append(loop(every))
    print(f"{model} batch 128, channels-last, fp32, {torch.get_num_threads()} threads, {iterations} "
          f"iterations per run, runs in the order {order}; {machine()}")
    base = sum(rates[0]) / 2
    for every, values in rates.items():
        mean = sum(values) / 2
        print(f"  train.probe_every={every}: {values[0]:.0f}, {values[1]:.0f} images/s "
              f"(mean {mean:.0f}, {100 * (mean / base - 1):+.1f}% against off)")


def autocast_fallbacks(*, config: Path = Path("configs/detection/paper/coco2014_r101_c4.yaml"),
                       repeats: int = 3) -> None:
    """The paper's R101-C4 training step (one 600x800 image, the config's RoI counts) in fp32 and
    in bf16 autocast, and the share of the bf16 step spent in the ops that run in fp32 inside it
    (engine.autocast_ops: RoI max pooling, forward and backward, with their casts)."""
    from torch.profiler import ProfilerActivity, profile

    from detection.train import build_detector, load_detection_config
    from engine.autocast_ops import REGISTERED
    from experiments.machine import machine
    from weights_files import with_bn_statistics

    cfg = load_detection_config(config, training=False)
    model = build_detector(cfg, num_classes=81)
    with_bn_statistics(model.backbone)
    images = [torch.rand(3, 600, 800)]
    targets = [{"boxes": torch.tensor([[40.0, 60, 300, 380], [350, 120, 700, 560]]),
                "labels": torch.tensor([3, 17])}]
    step = detector_train_step(model, images, targets)
    times = {}
    for precision in ("fp32", "bf16"):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            step()  # warm-up
            start = time.perf_counter()
            for _ in range(repeats):
                step()
            times[precision] = (time.perf_counter() - start) / repeats
    with profile(activities=[ProfilerActivity.CPU]) as prof, torch.autocast("cpu", dtype=torch.bfloat16):
        step()
    events = {e.key: e for e in prof.key_averages()}
    fallback = sum(events[k].cpu_time_total for k in FALLBACK_EVENTS if k in events) / 1e6
    print(f"{config}: one 600x800 image, {machine()}")
    print(f"ops registered to run in fp32 under autocast: {', '.join(REGISTERED)}")
    print("| step fp32 s | step bf16 s | roi_pool fwd+bwd in the bf16 step (fp32, with casts) s | share |")
    print("|---:|---:|---:|---:|")
    share = 100 * fallback / times["bf16"]
    print(f"| {times['fp32']:.2f} | {times['bf16']:.2f} | {fallback:.3f} | {share:.2f}% |")


FALLBACK_EVENTS = ("torchvision::roi_pool", "torchvision::_roi_pool_backward")
