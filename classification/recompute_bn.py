"""`tools/recompute_bn.py`: a pretrained classifier's BN statistics recomputed over its training
set (`bn_statistics`), written as a backbone file that says so."""

from pathlib import Path

import torch
from torch.utils.data import DataLoader

from backbones import load_weights, save_weights

from .bn_statistics import population_statistics
from .datasets import training_set_as_tested
from .pretrain import build_model, build_task


def recompute_bn(cfg, checkpoint: str | Path, out: str | Path, *, batch_size: int = 64,
                 num_workers: int = 2, device: str | None = None) -> dict[str, str]:
    """Load `checkpoint` into the model of the pretraining config `cfg`, set every BN layer to the
    population mean and variance over `cfg.data`'s training split under the test transform, and
    write the backbone to `out` (safetensors, with its description); returns that description."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dataset = training_set_as_tested(cfg.data, seed=cfg.train.seed)
    task = build_task(cfg)
    model = build_model(cfg, len(dataset.classes))
    load_weights(model, checkpoint)
    model.to(device)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=task.collate)
    batches = (task.images({k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()})
               for batch in loader if "image" in batch)
    images = population_statistics(model, batches)
    meta = task.weights_metadata(model)
    meta.update(bn_statistics=f"population mean and variance over {images} training images "
                              f"({cfg.data.train_split}), test transform", source=str(checkpoint))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    save_weights(model, out, description=meta)
    return meta
